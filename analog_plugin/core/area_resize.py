"""Area-average resizing of tile batches to the model's input size, and where validity masks land
on the resized grid. Part of the pixel contract (:mod:`.preprocess`): training and scoring resize
through these same functions, so a tile gets the same numbers on either path.

Why not GDAL's or an image library's resampling: the contract needs exact area weights for any
ratio (160 -> 128, 256 -> 96) in float32, vectorised over a batch; measured on the 2-core bench,
GDAL's average decimation of 256 -> 128 px cost more than a full read plus these strided adds.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=64)
def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` float32 matrix whose rows average the input interval each output cell
    covers (exact area weights; bilinear-like tent weights when enlarging)."""
    w = np.zeros((n_out, n_in), dtype=np.float64)
    if n_in >= n_out:
        edges = np.linspace(0.0, n_in, n_out + 1)
        for i in range(n_out):
            a, b = edges[i], edges[i + 1]
            j0, j1 = int(np.floor(a)), int(np.ceil(b))
            for j in range(j0, min(j1, n_in)):
                w[i, j] = min(b, j + 1) - max(a, j)
            w[i] /= b - a
    else:  # enlarge: linear interpolation, pixel centres aligned
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        i0 = np.floor(pos).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        t = pos - i0
        w[np.arange(n_out), i0] += 1 - t
        w[np.arange(n_out), i1] += t
    w.setflags(write=False)
    return w.astype(np.float32)


BLOCK_MAX = 64
"""Ratios p:q (lowest terms) with p up to this are resized block by block (see resize_batch)."""


INTEGER_FACTOR_MAX = 8
"""Whole-number shrink factors up to this are averaged with strided adds (see _shrink_axis)."""


def _whole_factor(n_in: int, size: int) -> bool:
    """True when ``n_in`` shrinks to ``size`` by a whole factor of at most INTEGER_FACTOR_MAX."""
    return n_in > size and n_in % size == 0 and n_in // size <= INTEGER_FACTOR_MAX


def _shrink_axis(x: np.ndarray, axis: int, k: int) -> np.ndarray:
    """Average each run of ``k`` samples along ``axis`` (float32): the area weights of an exact
    k:1 shrink are all 1/k, so k strided slices added up give the same numbers as the matrix
    product without its BLAS call (a 256 -> 128 px tile: ~4x faster; the 2-core bench's
    resampled-tile configuration spent 11 % of its time preparing tiles)."""
    idx: list[slice] = [slice(None)] * x.ndim
    idx[axis] = slice(0, None, k)
    out = np.array(x[tuple(idx)], dtype=np.float32)
    for j in range(1, k):
        idx[axis] = slice(j, None, k)
        out += x[tuple(idx)]
    out *= np.float32(1.0 / k)
    return out


def _resize_last(x: np.ndarray, size: int) -> np.ndarray:
    """Area-resize the last axis of ``x`` (float32) to ``size``."""
    n_in = x.shape[-1]
    if n_in == size:
        return x
    if _whole_factor(n_in, size):
        return _shrink_axis(x, -1, n_in // size)
    g = math.gcd(n_in, size)
    p, q = n_in // g, size // g
    if p <= BLOCK_MAX and n_in > size:
        # The weights repeat every p inputs / q outputs: one (rows, p) @ (p, q) product (a
        # single BLAS call), q multiply-adds per input pixel instead of `size` with the full
        # matrix.
        flat = np.ascontiguousarray(x).reshape(-1, p)
        return (flat @ area_weights(p, q).T).reshape(*x.shape[:-1], size)
    return x @ area_weights(n_in, size).T


def resize_batch(x: np.ndarray, size: int) -> np.ndarray:
    """``(..., h, w)`` -> ``(..., size, size)`` float32 by area averaging (see area_weights):
    each axis on its own (the same exact weights either way): whole-number shrinks by strided
    adds, other ratios block-wise when the ratio allows."""
    x = np.asarray(x, dtype=np.float32)
    if x.shape[-2:] == (size, size):
        return x
    h = x.shape[-2]
    if _whole_factor(h, size):  # rows first, on the contiguous axis: no transposed copies
        return _resize_last(_shrink_axis(x, -2, h // size), size)
    x = _resize_last(x, size)
    x = _resize_last(np.ascontiguousarray(np.swapaxes(x, -1, -2)), size)
    return np.ascontiguousarray(np.swapaxes(x, -1, -2))


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """``(C, H, W)`` -> ``(C, size, size)`` float32 (kept for callers that resize one image)."""
    return resize_batch(image, size)


def nearest_mask(valid: np.ndarray, size: int) -> np.ndarray:
    """``(N, h, w)`` validity sampled at the centres of a ``size x size`` grid (no arithmetic:
    which resized pixels may enter the percentile sample). Sample ``i`` of an axis of ``h`` is
    input ``floor((i + 0.5) h / size)``; for a whole shrink factor ``k`` that is ``i k + k // 2``,
    a strided view of ``valid`` (read-only use: it is not a copy), else one gather (a copy)."""
    h, w = valid.shape[-2:]
    if h % size == 0 and w % size == 0:
        ky, kx = h // size, w // size
        return valid[:, ky // 2::ky, kx // 2::kx]
    iy = ((np.arange(size) + 0.5) * h / size).astype(np.int64)
    ix = ((np.arange(size) + 0.5) * w / size).astype(np.int64)
    return valid[:, iy[:, None], ix[None, :]]
