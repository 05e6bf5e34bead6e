"""Landform recognition from embeddings: k-nearest-neighbour votes, neighbour smoothing, decision.

Votes. For a tile, its ``K`` most similar library exemplars (cosine) each vote for their class
with weight ``(1 + cos) / 2`` (the product's score), so a near-duplicate counts more than a
distant neighbour and ties between classes are broken by similarity. ``confidence`` is the winning
class's share of the votes (1 = all K neighbours agree).

Smoothing (``SMOOTH``), because landforms extend over several tiles and one tile's neighbours are
noisy (DoMars16k's mapping smoothed the same way):

- ``majority``: each tile's votes plus those of its 8 grid neighbours (its own counted twice, so a
  lone confident tile is not overruled by a single neighbour); skipped tiles vote nothing;
- ``mrf``: iterated conditional modes on a Potts model: a tile takes the class maximising its own
  vote share plus ``beta`` x the share of its scored neighbours already holding that class
  (``beta`` = 0.5, 5 sweeps, starting from the unsmoothed decision). Keeps sharp boundaries
  where the evidence is strong, removes isolated flips where it is weak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .similarity import cosine_matrix, score_from_cosine

SMOOTHING = ("none", "majority", "mrf")
MRF_BETA = 0.5
MRF_SWEEPS = 5


def knn_votes(embeddings: np.ndarray, library: np.ndarray, codes: np.ndarray, n_classes: int,
              k: int) -> np.ndarray:
    """``(N, C)`` similarity-weighted votes of each tile's ``k`` nearest exemplars; ``codes``
    (E,) is each exemplar's class index."""
    cos = cosine_matrix(embeddings, library)
    n, e = cos.shape
    k = min(int(k), e)
    votes = np.zeros((n, n_classes), np.float64)
    if n == 0:
        return votes
    nearest = np.argpartition(-cos, k - 1, axis=1)[:, :k]
    weight = score_from_cosine(np.take_along_axis(cos, nearest, axis=1))
    np.add.at(votes, (np.repeat(np.arange(n), k), codes[nearest].ravel()), weight.ravel())
    return votes


@dataclass(frozen=True, eq=False)
class Decision:
    """Per tile: ``label`` and ``second`` (class index, -1 = none), ``confidence`` in 0..1."""

    label: np.ndarray
    second: np.ndarray
    confidence: np.ndarray


def decide(votes: np.ndarray) -> Decision:
    """The winning and runner-up class of each row of ``votes``; confidence = winning share."""
    order = np.argsort(-votes, axis=1, kind="stable")
    n = votes.shape[0]
    rows = np.arange(n)
    total = votes.sum(axis=1)
    label = order[:, 0] if n else np.zeros(0, np.int64)
    top = votes[rows, label] if n else np.zeros(0)
    conf = np.where(total > 0, top / np.where(total > 0, total, 1.0), 0.0)
    if votes.shape[1] > 1 and n:
        second = order[:, 1].copy()
        second[votes[rows, second] <= 0] = -1
    else:
        second = np.full(n, -1, np.int64)
    return Decision(label.astype(np.int64), second.astype(np.int64), conf)


def _dense(values: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]
           ) -> np.ndarray:
    grid = np.zeros((*shape, values.shape[1]), values.dtype)
    grid[rows, cols] = values
    return grid


def _neighbour_sum(grid: np.ndarray) -> np.ndarray:
    """Sum over the 8 neighbours of every cell (cells outside count 0)."""
    pad = np.pad(grid, ((1, 1), (1, 1), (0, 0)))
    h, w = grid.shape[:2]
    out = np.zeros_like(grid)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if dr or dc:
                out += pad[1 + dr:1 + dr + h, 1 + dc:1 + dc + w]
    return out


def smooth(votes: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int],
           method: str) -> Decision:
    """The decision after ``method`` (one of SMOOTHING) over the tile grid of ``shape``
    (n_rows, n_cols); ``rows``/``cols`` place each vote row on the grid."""
    if method not in SMOOTHING:
        raise ValueError(f"SMOOTH must be one of {SMOOTHING}, got {method!r}")
    if method == "none" or len(votes) == 0:
        return decide(votes)
    total = votes.sum(axis=1, keepdims=True)
    share = votes / np.where(total > 0, total, 1.0)
    if method == "majority":
        grid = _dense(share, rows, cols, shape)
        summed = 2.0 * grid + _neighbour_sum(grid)
        return decide(summed[rows, cols])
    present = _dense(np.ones((len(rows), 1)), rows, cols, shape)
    n_neigh = np.maximum(_neighbour_sum(present)[rows, cols], 1.0)
    label = decide(share).label
    n_classes = votes.shape[1]
    for _ in range(MRF_SWEEPS):
        onehot = _dense(np.eye(n_classes)[label], rows, cols, shape)
        agree = _neighbour_sum(onehot)[rows, cols] / n_neigh
        new = np.argmax(share + MRF_BETA * agree, axis=1)
        if np.array_equal(new, label):
            break
        label = new
    energy = share + MRF_BETA * agree
    d = decide(energy)
    conf = share[np.arange(len(label)), label]
    second = np.where(d.label == label, d.second, d.label)
    return Decision(label.astype(np.int64), second.astype(np.int64), conf)
