"""Per-class scores and negative classes (rank and percentile: ``score_writer.RANK_SQL``).

Per class ``c``: ``score_c = (1 + max cos over the exemplars of c) / 2`` (the same mapping as the
overall score, so 0.5 means "orthogonal").

Negatives. Classes named in NEGATIVE_CLASSES are counter-examples (Earth rivers or farmland in a
dune search). With ``p`` the best positive class score and ``n`` the best negative one::

    score = clip(p - max(0, n - p), 0, 1)

so a tile is unchanged while every positive exemplar beats every negative one, and loses twice
the margin by which a negative wins (it drops below tiles that merely look like nothing). The
best class and exemplar are always positive ones: they say what the score is about.

Rank and percentile are properties of the whole run (a threshold of percentile 95 keeps the top
5 % of any scene): rank 1 = highest score (ties in tile order), percentile = 100 x the share of
scored tiles whose score is <= this one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import LibraryError
from .similarity import cosine_matrix, score_from_cosine


@dataclass(frozen=True, eq=False)
class ClassScores:
    """``per_class`` (N, C) in ``classes`` order, ``score`` (N,) after negatives, ``best_index``
    (N,) into the library (a positive exemplar)."""

    classes: tuple[str, ...]
    per_class: np.ndarray
    score: np.ndarray
    best_index: np.ndarray


class ClassScorer:
    """Scores tiles against a library's classes; built once per run (the class index)."""

    def __init__(self, library_classes: Sequence[str], negatives: Sequence[str] = ()) -> None:
        self.exemplar_class = list(library_classes)
        if not self.exemplar_class:
            raise LibraryError("the library has no exemplars; build it with analog:buildlibrary")
        self.classes = tuple(sorted(set(self.exemplar_class)))
        unknown = [c for c in negatives if c not in self.classes]
        if unknown:
            raise LibraryError(
                f"NEGATIVE_CLASSES {unknown} are not classes of the library (it has "
                f"{list(self.classes)}); name library classes, or leave it empty"
            )
        self.negatives = tuple(sorted(set(negatives)))
        if set(self.negatives) == set(self.classes):
            raise LibraryError(
                f"every library class {list(self.classes)} is a negative class; at least one "
                "class must be a positive (what to search for)"
            )
        code = {c: i for i, c in enumerate(self.classes)}
        self._code = np.array([code[c] for c in self.exemplar_class], dtype=np.int64)
        self._negative = np.array([c in self.negatives for c in self.classes])
        self._positive_exemplar = ~self._negative[self._code]
        # Library columns grouped by class once: the per-class maximum of a batch is then one
        # gather and one np.maximum.reduceat instead of a boolean-mask copy per class.
        self._order = np.argsort(self._code, kind="stable")
        self._starts = np.searchsorted(self._code[self._order], np.arange(len(self.classes)))

    def score(self, embeddings: np.ndarray, library: np.ndarray) -> ClassScores:
        if library.shape[0] == 0:
            raise LibraryError("the library has no exemplars; build it with analog:buildlibrary")
        cos = cosine_matrix(embeddings, library)
        n = cos.shape[0]
        if n == 0:
            empty = np.zeros(0)
            return ClassScores(self.classes, np.zeros((0, len(self.classes))), empty,
                               np.zeros(0, dtype=np.int64))
        best_cos = np.maximum.reduceat(cos[:, self._order], self._starts, axis=1)
        per_class = score_from_cosine(best_cos)
        pos = per_class[:, ~self._negative].max(axis=1)
        if self._negative.any():
            neg = per_class[:, self._negative].max(axis=1)
            score = np.clip(pos - np.maximum(0.0, neg - pos), 0.0, 1.0)
        else:
            score = pos
        masked = np.where(self._positive_exemplar[None, :], cos, -np.inf)
        best = np.argmax(masked, axis=1)
        return ClassScores(self.classes, per_class, score, best.astype(np.int64))


def class_field_names(classes: Sequence[str], taken: Sequence[str] = ()) -> list[str]:
    """``score_<class>`` field names, lower case, letters/digits/underscores only, unique."""
    used = {t.lower() for t in taken}
    out = []
    for c in classes:
        base = "score_" + (re.sub(r"[^0-9a-zA-Z]+", "_", c).strip("_").lower() or "class")
        name, i = base, 2
        while name in used:
            name, i = f"{base}_{i}", i + 1
        used.add(name)
        out.append(name)
    return out
