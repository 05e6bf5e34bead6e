"""Which pairs are similar, which are dissimilar, and how batches are drawn.

Similar (y = 1):
  * two views of the same image (same place, different appearance) -- self-supervised;
  * two images with the same landform label on the same planet (``mars:crater`` with
    ``mars:crater``);
  * cross-planet analogues declared in :data:`CROSS_PLANET_POSITIVES`: an Earth desert dune field
    (AID ``Desert``) and a Mars dune field (dark or bright). This is what lets an Earth exemplar
    find Mars terrain in one metric.
Dissimilar (y = 0): every other pair of *different places* (different labels). Hard negatives are
mined in the batch by the loss (closest dissimilar samples per anchor).

Batches are class-balanced: a label is drawn first (with :data:`LABEL_WEIGHTS`), then an image of
it, so 28 slope-streak tiles are seen as often as 1,100 "other" tiles.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CROSS_PLANET_POSITIVES: frozenset[frozenset[str]] = frozenset(
    {
        frozenset({"earth:Desert", "mars:dark_dune"}),
        frozenset({"earth:Desert", "mars:bright_dune"}),
    }
)
"""Label pairs from different planets that count as the same landform."""

LABEL_WEIGHTS: dict[str, float] = {
    "mars:other": 1.5,  # the catch-all class is the most diverse: see it a bit more often
    "mars:edge": 1.0,
    "mars:dark_dune": 1.0,
    "mars:bright_dune": 1.0,
    "mars:crater": 1.0,
    "mars:slope_streak": 0.7,  # 21 training tiles: more weight would just memorise them
    "earth:Desert": 1.5,  # the cross-planet bridge
    "earth:BareLand": 0.5,  # arid look-alikes that are not dunes: useful hard negatives
    "earth:Mountain": 0.5,
}
DEFAULT_LABEL_WEIGHT = 0.25  # the other Earth classes (Beach, River, Forest, ...)


def labels_similar(a: str, b: str) -> bool:
    """Same landform: identical label or a declared cross-planet analogue pair."""
    return a == b or frozenset({a, b}) in CROSS_PLANET_POSITIVES


def pair_masks(labels: Sequence[str], places: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(similar, dissimilar)`` boolean ``(N, N)`` matrices for a batch.

    ``places`` identifies the place an item shows (the source image id: two views of one image
    share it). Same place -> similar; else similar labels -> similar; else dissimilar. The diagonal
    is similar (the loss drops it).
    """
    n = len(labels)
    if len(places) != n:
        raise ValueError(f"{n} labels but {len(places)} places")
    uniq = sorted(set(labels))
    code = {lab: i for i, lab in enumerate(uniq)}
    lab_sim = np.array([[labels_similar(a, b) for b in uniq] for a in uniq], dtype=bool)
    li = np.array([code[lab] for lab in labels])
    place_code = {p: i for i, p in enumerate(sorted(set(places)))}
    pi = np.array([place_code[p] for p in places])
    similar = lab_sim[li[:, None], li[None, :]] | (pi[:, None] == pi[None, :])
    return similar, ~similar


class BalancedSampler:
    """Draws batches of image indices, label first (weighted) then image, from a seeded RNG."""

    def __init__(
        self,
        labels: Sequence[str],
        seed: int,
        weights: dict[str, float] | None = None,
        default_weight: float = DEFAULT_LABEL_WEIGHT,
    ) -> None:
        table = LABEL_WEIGHTS if weights is None else weights
        self.labels = sorted(set(labels))
        self.members = [np.flatnonzero(np.asarray(labels) == lab) for lab in self.labels]
        w = np.array([table.get(lab, default_weight) for lab in self.labels], dtype=np.float64)
        self.p = w / w.sum()
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> np.ndarray:
        """``size`` image indices (with replacement across batches, not within a label draw)."""
        picks = self.rng.choice(len(self.labels), size=size, p=self.p)
        out = np.empty(size, dtype=np.int64)
        for j, lab_i in enumerate(picks):
            out[j] = self.rng.choice(self.members[lab_i])
        return out

    def state(self) -> dict:
        """RNG state, saved in checkpoints so a resumed run draws the same batches."""
        return dict(self.rng.bit_generator.state)

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state
