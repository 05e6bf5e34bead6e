"""Retrieval and classification metrics on embedding sets (pure numpy, unit-testable).

All similarities are cosine similarities of L2-normalised rows, as in the plugin.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np


def l2n(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def ranking(query: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Gallery indices sorted by decreasing cosine similarity, per query; ties by index."""
    sims = l2n(query) @ l2n(gallery).T
    return np.argsort(-sims, axis=1, kind="stable")


def knn_predict(
    query: np.ndarray, gallery: np.ndarray, gallery_labels: Sequence[str], k: int = 5
) -> list[str]:
    """Majority vote of the ``k`` most similar gallery items; a tie goes to the label with the
    larger summed similarity (then to the nearest neighbour's label)."""
    sims = l2n(query) @ l2n(gallery).T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    glab = np.asarray(gallery_labels)
    out: list[str] = []
    for qi, nn in enumerate(order):
        votes: Counter[str] = Counter(glab[nn].tolist())
        score: dict[str, float] = {}
        for j in nn:
            score[str(glab[j])] = score.get(str(glab[j]), 0.0) + float(sims[qi, j])
        best = max(votes.values())
        tied = [lab for lab, v in votes.items() if v == best]
        out.append(max(tied, key=lambda lab: score[lab]))
    return out


def accuracy(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    return float(np.mean([a == b for a, b in zip(y_true, y_pred, strict=True)]))


def f1_per_class(y_true: Sequence[str], y_pred: Sequence[str]) -> dict[str, float]:
    """F1 of each label in ``y_true`` or ``y_pred`` (0 where undefined, like scikit-learn)."""
    labels = sorted(set(y_true) | set(y_pred))
    out: dict[str, float] = {}
    for lab in labels:
        tp = sum(1 for a, b in zip(y_true, y_pred, strict=True) if a == lab and b == lab)
        fp = sum(1 for a, b in zip(y_true, y_pred, strict=True) if a != lab and b == lab)
        fn = sum(1 for a, b in zip(y_true, y_pred, strict=True) if a == lab and b != lab)
        out[lab] = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return out


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    """Unweighted mean of per-label F1 over labels seen in truth or prediction."""
    return float(np.mean(list(f1_per_class(y_true, y_pred).values())))


def map_at_r(
    query: np.ndarray,
    query_labels: Sequence[str],
    gallery: np.ndarray,
    gallery_labels: Sequence[str],
) -> np.ndarray:
    """mAP@R per query (Musgrave et al. 2020): R = number of gallery items of the query's label;
    ``AP@R = (1/R) * sum_{i<=R} P@i * rel_i``. Queries whose label is absent get NaN."""
    glab = np.asarray(gallery_labels)
    order = ranking(query, gallery)
    out = np.full(len(query_labels), np.nan)
    for qi, lab in enumerate(query_labels):
        r = int((glab == lab).sum())
        if r == 0:
            continue
        rel = (glab[order[qi, :r]] == lab).astype(np.float64)
        prec = np.cumsum(rel) / np.arange(1, r + 1)
        out[qi] = float((prec * rel).sum() / r)
    return out


def precision_at_k(
    query: np.ndarray,
    gallery: np.ndarray,
    gallery_labels: Sequence[str],
    relevant: Sequence[set[str]] | Sequence[str],
    k: int,
) -> np.ndarray:
    """Fraction of the top ``k`` gallery items whose label is relevant, per query. ``relevant`` is
    the query's label or a set of labels (e.g. both dune classes for an Earth desert query)."""
    glab = np.asarray(gallery_labels)
    order = ranking(query, gallery)[:, :k]
    out = np.empty(len(query))
    for qi in range(len(query)):
        rel = relevant[qi]
        rel_set = {rel} if isinstance(rel, str) else set(rel)
        out[qi] = float(np.mean([g in rel_set for g in glab[order[qi]]]))
    return out


def per_class_mean(values: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """Mean of ``values`` per label (NaNs ignored)."""
    lab = np.asarray(labels)
    return {str(c): float(np.nanmean(values[lab == c])) for c in sorted(set(labels))}


def cosine_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-by-row cosine similarity of two equally long embedding arrays."""
    return np.sum(l2n(a) * l2n(b), axis=1)
