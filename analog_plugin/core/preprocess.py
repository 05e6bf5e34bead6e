"""Pixel preprocessing shared by the plugin and the offline evaluation script.

The model is trained on images that went through exactly these steps, so the plugin and
``scripts/evaluate.py`` both import them from here: a second copy would drift.

Order: per-layer percentile stretch to 0..1 -> band selection / luma -> resize to the model's
input size -> per-channel ``(x - mean) / std``. Nodata pixels are filled before normalisation so
they never leak extreme values into the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LUMA_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights: how RGB Earth imagery becomes panchromatic-like grayscale."""

DEFAULT_PERCENTILES = (2.0, 98.0)


@dataclass(frozen=True)
class Stretch:
    """Per-band linear stretch ``clip((v - low) / (high - low), 0, 1)``.

    Computed once per layer (not per tile) so that neighbouring tiles stay comparable: a per-tile
    stretch would turn a flat, featureless tile into amplified noise.
    """

    low: tuple[float, ...]
    high: tuple[float, ...]

    def apply(self, bands: np.ndarray) -> np.ndarray:
        """Scale a ``(B, H, W)`` array band by band to float32 0..1."""
        if bands.ndim != 3 or bands.shape[0] != len(self.low):
            raise ValueError(
                f"stretch has {len(self.low)} band(s) but the array has shape {bands.shape}; "
                "compute the stretch on the same bands you apply it to"
            )
        low = np.asarray(self.low, dtype=np.float64)[:, None, None]
        high = np.asarray(self.high, dtype=np.float64)[:, None, None]
        span = np.where(high > low, high - low, 1.0)
        out = (bands.astype(np.float64) - low) / span
        return np.clip(out, 0.0, 1.0).astype(np.float32)


def compute_stretch(
    bands: np.ndarray,
    valid: np.ndarray | None = None,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
) -> Stretch:
    """Percentile stretch of a ``(B, H, W)`` sample (e.g. a decimated read of the whole layer).

    ``valid`` is a ``(H, W)`` or ``(B, H, W)`` boolean mask of usable pixels (not nodata). A band
    with no valid pixel, or a constant band, gets a unit span so the result stays finite.
    """
    if bands.ndim != 3:
        raise ValueError(f"expected a (bands, rows, cols) array, got shape {bands.shape}")
    lows: list[float] = []
    highs: list[float] = []
    for b in range(bands.shape[0]):
        band = bands[b]
        if valid is not None:
            mask = valid if valid.ndim == 2 else valid[b]
            values = band[mask]
        else:
            values = band.ravel()
        values = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        if values.size == 0:
            lows.append(0.0)
            highs.append(1.0)
            continue
        lo, hi = np.percentile(values, percentiles)
        if not hi > lo:
            lo, hi = float(values.min()), float(values.max())
            if not hi > lo:
                hi = lo + 1.0
        lows.append(float(lo))
        highs.append(float(hi))
    return Stretch(tuple(lows), tuple(highs))


def to_model_channels(bands01: np.ndarray, channels: int) -> np.ndarray:
    """Map a stretched ``(B, H, W)`` array to the model's channel count.

    1-channel model: 1 band as is, 3 bands -> luma. 3-channel model: 1 band repeated, 3 as is.
    Anything else is ambiguous and must be resolved by the user choosing bands.
    """
    n = bands01.shape[0]
    if n == channels:
        return bands01
    if channels == 1 and n == 3:
        w = np.asarray(LUMA_WEIGHTS, dtype=np.float32)[:, None, None]
        return (bands01 * w).sum(axis=0, keepdims=True).astype(np.float32)
    if channels == 3 and n == 1:
        return np.repeat(bands01, 3, axis=0)
    raise ValueError(
        f"the model takes {channels} channel(s) but {n} band(s) were selected; "
        f"choose 1 or 3 bands with the BANDS parameter"
    )


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resize ``(C, H, W)`` to ``(C, size, size)`` with area averaging when shrinking and bilinear
    interpolation when enlarging (pure numpy, so core needs no extra image library)."""
    c, h, w = image.shape
    if (h, w) == (size, size):
        return image.astype(np.float32, copy=False)
    out = image.astype(np.float32, copy=False)
    out = _resize_axis(out, size, axis=1)
    out = _resize_axis(out, size, axis=2)
    return out


def _resize_axis(a: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    n_in = a.shape[axis]
    if n_in == n_out:
        return a
    if n_in > n_out:
        # Area averaging: each output cell is the mean of the input interval it covers.
        edges = np.linspace(0, n_in, n_out + 1)
        cums = np.cumsum(np.moveaxis(a, axis, -1), axis=-1, dtype=np.float64)
        cums = np.concatenate([np.zeros(cums.shape[:-1] + (1,)), cums], axis=-1)
        idx = np.arange(n_in + 1)
        left = _interp_cumsum(cums, idx, edges[:-1])
        right = _interp_cumsum(cums, idx, edges[1:])
        res = (right - left) / np.diff(edges)
        return np.moveaxis(res.astype(np.float32), -1, axis)
    # Bilinear, pixel centres aligned (half-pixel convention).
    pos = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    pos = np.clip(pos, 0, n_in - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, n_in - 1)
    t = (pos - i0).astype(np.float32)
    a0 = np.take(a, i0, axis=axis)
    a1 = np.take(a, i1, axis=axis)
    shape = [1] * a.ndim
    shape[axis] = n_out
    t = t.reshape(shape)
    return (a0 * (1 - t) + a1 * t).astype(np.float32)


def _interp_cumsum(cums: np.ndarray, idx: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Value of the piecewise-linear cumulative sum at fractional positions ``at``."""
    lo = np.clip(np.floor(at).astype(int), 0, len(idx) - 2)
    frac = at - lo
    return cums[..., lo] + (cums[..., lo + 1] - cums[..., lo]) * frac


def fill_invalid(image: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """Replace invalid pixels by the mean of the valid ones (0.5 when none is valid)."""
    if valid is None or valid.all():
        return image
    out = image.copy()
    for c in range(out.shape[0]):
        vals = out[c][valid]
        out[c][~valid] = float(vals.mean()) if vals.size else 0.5
    return out


def normalise(image01: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Per-channel ``(x - mean) / std`` on a ``(C, H, W)`` or ``(N, C, H, W)`` 0..1 array."""
    m = np.asarray(mean, dtype=np.float32)
    s = np.asarray(std, dtype=np.float32)
    if image01.ndim == 4:
        m, s = m[None, :, None, None], s[None, :, None, None]
    else:
        m, s = m[:, None, None], s[:, None, None]
    return ((image01 - m) / s).astype(np.float32)


def prepare_image(
    image: np.ndarray,
    size: int,
    channels: int,
    mean: Sequence[float],
    std: Sequence[float],
    valid: np.ndarray | None = None,
    stretch: Stretch | None = None,
) -> np.ndarray:
    """One whole image or tile ``(B, H, W)`` in raw values -> model input ``(C, size, size)``.

    Without ``stretch`` the image's own 2-98 % stretch is used: that is how single image files
    (library exemplars, training and evaluation tiles) are treated, the per-layer stretch of a
    raster being the same operation on the whole layer.
    """
    if image.ndim == 2:
        image = image[None]
    st = stretch if stretch is not None else compute_stretch(image, valid)
    x = st.apply(image)
    x = fill_invalid(x, valid)
    x = to_model_channels(x, channels)
    x = resize(x, size)
    return normalise(x, mean, std)
