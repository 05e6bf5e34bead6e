"""Per-row percentiles of many tiles at once, over each row's valid values only.

The per-tile stretch (:mod:`.preprocess`) needs the 2 % and 98 % points of every tile in a batch,
and of the valid pixels only where a tile touches nodata. It is the costliest step of preparing a
tile, so it is done here by linear-time selection (plus a sort of a few dozen values where
tiles touch nodata), without a per-tile loop:

* ``np.percentile`` (linear method) of ``c`` values at fraction ``f`` interpolates between the
  order statistics ``i = floor(f (c - 1))`` and ``min(i + 1, c - 1)``: only those are needed, and
  ``np.partition`` finds them without sorting (half the cost of a sort on a 96 x 96 tile).
* A batch of whole rows (no invalid value) needs the same ranks: one partition for all of them.
* Rows with different valid counts need different ranks, and numpy partitions a whole array at
  the same ranks. So invalid values are padded with ``+inf`` for a low percentile (valid values
  come first, rank ``r`` at place ``r``) and with ``-inf`` for a high one (valid values come last,
  at place ``L - c + r``). Either way a row's place moves by only ``min(f, 1 - f)`` per missing
  value, so the places all rows need lie in a short span ``[a, b]`` (at most 83 places for 2 %
  of 4,096 samples); one partition at ``a`` and ``b`` gathers exactly those order statistics in
  that span, and a sort of the span orders them; whole rows in such a batch take the same path
  (their offset is 0 either way). On real HiRISE tiles with nodata edges this replaced one
  partition per distinct valid count.

The interpolation is the pixel contract's own float32 ``v_i (1 - t) + v_j t`` (what the engine
always computed, and what the shipped model was trained on): bit for bit the same as a sort of each
row's valid values followed by that formula (tested), and within float32 rounding of
``np.percentile``, which computes in float64 (tested too). Values marked valid must be finite (the
readers mark NaN and infinities invalid): a valid NaN would sort among the padding.
"""

from __future__ import annotations

import numpy as np


def row_percentiles(
    flat: np.ndarray, q: np.ndarray, valid: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """Percentiles ``q`` (in %) of the last axis of ``flat``, one ``flat.shape[:-1]`` float64
    array per entry of ``q``; with ``valid`` (same shape as ``flat``, or broadcastable), over each
    row's valid values only (a row with none uses all its values)."""
    length = flat.shape[-1]
    rows = flat.reshape(-1, length)
    fracs = np.asarray(q, dtype=np.float64) / 100.0
    out = np.empty((fracs.size, rows.shape[0]), dtype=np.float64)
    ok = None if valid is None else np.broadcast_to(valid, flat.shape).reshape(-1, length)
    counts = np.full(rows.shape[0], length) if ok is None else row_counts(ok)
    empty = counts == 0
    if ok is not None and empty.any():  # no valid value: use them all
        ok = np.where(empty[:, None], True, ok)
        counts = np.where(empty, length, counts)
    if ok is None or (counts == length).all():  # the usual batch: one selection, no padding
        _select(rows, fracs, counts, out)
    else:
        _select_padded(rows, ok, counts, fracs, out)
    shape = flat.shape[:-1]
    return tuple(out[k].reshape(shape) for k in range(fracs.size))


def row_counts(mask: np.ndarray) -> np.ndarray:
    """True values per row of a 2-D boolean array, int64. A loop of whole-row counts: numpy's
    ``count_nonzero(axis=1)`` is a generic reduction, 5x slower on rows of 4,096-65,536 values
    (0.015 against 0.003 ms per 256 px tile), and batches have only tens of rows."""
    return np.fromiter((np.count_nonzero(r) for r in mask), dtype=np.int64, count=mask.shape[0])


def _ranks(fracs: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(i, j, t)``, each ``(len(fracs), rows)``: the order statistics numpy's linear percentile
    interpolates between, and the float32 weight of the upper one."""
    last = np.maximum(counts.astype(np.int64) - 1, 0)
    pos = fracs[:, None] * last[None, :]
    i = np.floor(pos).astype(np.int64)
    j = np.minimum(i + 1, last[None, :])
    return i, j, (pos - i).astype(np.float32)


def _interpolate(seg: np.ndarray, i: np.ndarray, j: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Rows of ``seg`` hold ordered statistics; pick columns ``i`` and ``j`` and interpolate."""
    r = np.arange(seg.shape[0])
    return seg[r, i] * (1 - t) + seg[r, j] * t


def _select(rows: np.ndarray, fracs: np.ndarray, counts: np.ndarray, out: np.ndarray) -> None:
    """All rows valid and of one length: one partition at every rank any percentile needs."""
    i, j, t = _ranks(fracs, counts)
    kth = sorted({int(v) for v in np.concatenate([i[:, 0], j[:, 0]])})
    part = np.partition(rows, kth, axis=-1)
    for k in range(fracs.size):
        out[k] = _interpolate(part, i[k], j[k], t[k])


def _select_padded(rows: np.ndarray, ok: np.ndarray, counts: np.ndarray, fracs: np.ndarray,
                   out: np.ndarray) -> None:
    """Rows with different valid counts (see the module docstring): per percentile, pad the
    invalid values so the needed places cluster, partition at the span's ends, sort the span."""
    length = rows.shape[-1]
    i, j, t = _ranks(fracs, counts)
    for k, frac in enumerate(fracs):
        high = frac > 0.5
        offset = length - counts if high else np.zeros_like(counts)
        pi, pj = i[k] + offset, j[k] + offset
        a, b = int(pi.min()), int(pj.max())
        padded = np.where(ok, rows, -np.inf if high else np.inf)
        part = np.partition(padded, sorted({a, b}), axis=-1)[:, a:b + 1]
        if b - a >= 2:
            part = np.sort(part, axis=-1)
        out[k] = _interpolate(part, pi - a, pj - a, t[k])
