"""Grouped cross-validation folds: HiRISE by observation, AID per class, every class in every fold.

Why grouped: the tiles of one HiRISE observation are near-duplicates, so an observation on both
sides of a fold turns kNN into a lookup. Why repeated 4-fold and not 5-fold: ``dark_dune`` occurs
in only 4 observations of the landmark set, so with 5 or more folds one validation fold has no dark
dune at all; a repeated grouped 4-fold (2 x 4 = 8 folds) keeps every class in every validation
fold and never puts an observation on both sides of a fold.

The assignment is deterministic and greedy, rarest class first: observations are ordered by the
rank of the rarest class they hold (then by how many tiles of it, then by size; a seeded random
tie-break for repeats > 0) and each goes to the fold that (1) still lacks its rarest classes,
(2) keeps those classes' shares most even, (3) is smallest. AID images are independent scenes:
a seeded shuffle per class, dealt round-robin.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .data import TileLabel


@dataclass(frozen=True)
class Fold:
    """One validation fold: ``repeat`` r, ``index`` f (of ``k``), what is on its validation side."""

    repeat: int
    index: int
    k: int
    val_observations: frozenset[str]
    val_aid: frozenset[str]  # "<Class>/<file>"
    tag: str = ""  # a name of its own (a split not made here, see ``previous_model_split``)

    @property
    def name(self) -> str:
        return self.tag or f"r{self.repeat}f{self.index}"


PREVIOUS_SPLIT = "v1split"
"""Name of the fold that is v1's own train / validation split (``previous_model_split``)."""


def previous_model_split(split: Mapping[str, object]) -> Fold:
    """The train / validation split a previous model was trained with (v1's ``split.json``:
    ``hirise.val_observations`` and ``aid.val`` = {class: [files]}) as a Fold.

    Why: a fixed model evaluated on the grouped folds has trained on most of their validation
    tiles, so its figures there are optimistic. Its own validation side is the only data it
    never saw: training the new recipe on the same training side and evaluating both there is
    the fair head-to-head."""
    hirise, aid = split["hirise"], split["aid"]
    if not isinstance(hirise, Mapping) or not isinstance(aid, Mapping):
        raise ValueError("a model split needs 'hirise' and 'aid' objects (v1's split.json)")
    val_aid = aid["val"]
    if not isinstance(val_aid, Mapping):
        raise ValueError("the split's aid.val must map each class to its validation files")
    return Fold(99, 0, 1, frozenset(hirise["val_observations"]),
                frozenset(f"{c}/{f}" for c, files in val_aid.items() for f in files),
                PREVIOUS_SPLIT)


def observation_folds(labels: Sequence[TileLabel], k: int, repeat: int = 0) -> dict[str, int]:
    """Observation -> fold index in ``range(k)`` (see the module docstring for the rule)."""
    per_obs: dict[str, Counter[str]] = defaultdict(Counter)
    for row in labels:
        per_obs[row.observation][row.cls] += 1
    totals: Counter[str] = Counter()
    for counts in per_obs.values():
        totals.update(counts)
    n_obs = {c: sum(1 for o in per_obs if per_obs[o][c]) for c in totals}
    rank = {c: i for i, c in enumerate(sorted(totals, key=lambda c: (n_obs[c], totals[c], c)))}
    rng = random.Random(repeat)
    tiebreak = {o: rng.random() for o in sorted(per_obs)}

    def order_key(o: str) -> tuple[int, float, int, str]:
        rarest = min(per_obs[o], key=rank.__getitem__)
        second = tiebreak[o] if repeat else -per_obs[o][rarest]
        return rank[rarest], second, -sum(per_obs[o].values()), o

    count = [Counter[str]() for _ in range(k)]
    size = [0] * k
    out: dict[str, int] = {}
    for o in sorted(per_obs, key=order_key):
        classes = sorted(per_obs[o], key=rank.__getitem__)

        def fold_key(f: int, classes: list[str] = classes, o: str = o
                     ) -> tuple[tuple[int, ...], float, int, int]:
            present = tuple(int(count[f][c] > 0) for c in classes)
            fill = sum(((count[f][c] + per_obs[o][c]) / totals[c]) ** 2 for c in classes)
            return present, round(fill, 12), size[f], f

        f = min(range(k), key=fold_key)
        out[o] = f
        count[f].update(per_obs[o])
        size[f] += sum(per_obs[o].values())
    return out


def aid_folds(files_by_class: Mapping[str, Sequence[str]], k: int, repeat: int = 0
              ) -> dict[str, int]:
    """``"<Class>/<file>"`` -> fold: a seeded shuffle per class dealt round-robin."""
    out: dict[str, int] = {}
    for cls in sorted(files_by_class):
        files = sorted(files_by_class[cls])
        random.Random(f"{repeat}:{cls}").shuffle(files)
        for i, f in enumerate(files):
            out[f"{cls}/{f}"] = i % k
    return out


def make_folds(labels: Sequence[TileLabel], files_by_class: Mapping[str, Sequence[str]],
               k: int = 4, repeats: int = 2) -> list[Fold]:
    """``repeats`` x ``k`` folds; ValueError if a validation fold would lack a class."""
    classes = sorted({r.cls for r in labels})
    folds: list[Fold] = []
    for r in range(repeats):
        obs = observation_folds(labels, k, r)
        aid = aid_folds(files_by_class, k, r)
        for f in range(k):
            val_obs = frozenset(o for o, i in obs.items() if i == f)
            present = {row.cls for row in labels if row.observation in val_obs}
            missing = [c for c in classes if c not in present]
            if missing:
                raise ValueError(
                    f"fold r{r}f{f} of {k} has no validation tile of {missing}: too few "
                    f"observations hold them; use fewer folds"
                )
            folds.append(Fold(r, f, k, val_obs, frozenset(a for a, i in aid.items() if i == f)))
    return folds


def fold_table(folds: Sequence[Fold], labels: Sequence[TileLabel]) -> list[dict[str, object]]:
    """Per fold: observations and validation tiles per class (for the model card)."""
    rows = []
    for fold in folds:
        per_cls = Counter(r.cls for r in labels if r.observation in fold.val_observations)
        rows.append({"fold": fold.name, "observations": len(fold.val_observations),
                     "tiles": sum(per_cls.values()), **dict(sorted(per_cls.items())),
                     "aid_images": len(fold.val_aid)})
    return rows
