"""How pixels become model input: ONE function for training, export, evaluation, library building
and scoring, driven by the model contract's ``preprocessing`` and ``tile_px`` keys.

Why one function: a network only means something on the numbers it was trained on. When the
plugin stretched a whole layer while training stretched each tile, dune precision on the demo fell
from 0.85 to 0.46. Every path (a tile cut from a raster, an exemplar image file, a training image)
therefore calls :func:`prepare_batch` (or :func:`prepare_image`, its one-image form).

Order, for a batch ``(N, B, h, w)`` of raw pixel values (any dtype, any window size):

1. invalid pixels (nodata, outside the raster or mask) -> the tile's valid mean per band, so they
   neither bias the stretch nor leak extreme values;
2. area-average resize to the model's ``S x S`` (:mod:`.area_resize`: exact area weights, fast
   in float32 for any ratio, e.g. 256 -> 96);
3. stretch to 0..1 per band: ``tile`` mode uses the tile's own 2-98 % percentiles with the span
   floored at ``min_span_fraction`` of the layer's span (a flat tile stays flat instead of becoming
   amplified noise), taken over every ``percentile_step``-th row and column of the resized tile
   (step 2 reads a quarter of the pixels: the 2-98 % ranks of 2,304 or more samples move by well
   under one grey level, and the selection, the costliest step, runs 4x faster; training uses the
   same step, so the model sees exactly these numbers; :mod:`.tile_percentiles` selects them for
   a whole batch at once); ``layer`` mode uses the layer's percentiles for every tile;
4. bands -> model channels (RGB -> BT.601 luma for a 1-channel model, 1 band repeated for 3);
5. ``(x - mean) / std`` per channel.

For one image file the "layer" is the image itself (:func:`image_stats`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .area_resize import nearest_mask, resize_batch
from .tile_percentiles import row_counts, row_percentiles

LUMA_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights: how RGB Earth imagery becomes panchromatic-like grayscale."""

DEFAULT_PERCENTILES = (2.0, 98.0)
MAX_PERCENTILE_STEP = 8
STRETCH_MODES = ("tile", "layer")


@dataclass(frozen=True)
class PixelContract:
    """Everything that decides the numbers a tile becomes (decoded from the ONNX metadata).

    ``tile_px`` is the side, in source pixels, of the tile the model was trained to see (before
    resizing to ``input_size``): the default TILE_SIZE.
    """

    input_size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    stretch: str = "tile"
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES
    min_span_fraction: float = 0.1
    tile_px: int = 0
    percentile_step: int = 1  # 1 for models without the key (every pixel, as they were trained)

    def __post_init__(self) -> None:
        if self.stretch not in STRETCH_MODES:
            raise ValueError(f"stretch {self.stretch!r} unknown; use one of {STRETCH_MODES}")
        if not 1 <= self.percentile_step <= MAX_PERCENTILE_STEP:
            raise ValueError(
                f"percentile_step {self.percentile_step!r} must be 1..{MAX_PERCENTILE_STEP}"
            )
        if self.tile_px <= 0:
            object.__setattr__(self, "tile_px", self.input_size)

    def describe(self) -> str:
        lo, hi = self.percentiles
        how = (
            f"per-tile {lo:g}-{hi:g} % stretch (span >= {self.min_span_fraction:g} x layer span"
            + (f", percentiles sampled every {self.percentile_step} px"
               if self.percentile_step > 1 else "")
            + ")"
            if self.stretch == "tile"
            else f"per-layer {lo:g}-{hi:g} % stretch"
        )
        return f"{how}, area resize to {self.input_size} px, tile {self.tile_px} px"


@dataclass(frozen=True)
class LayerStats:
    """Per-band percentiles of a whole layer (or image): ``low``/``high`` tuples."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    @property
    def span(self) -> np.ndarray:
        return np.maximum(np.asarray(self.high) - np.asarray(self.low), 0.0)

    def describe(self) -> str:
        pairs = ", ".join(f"{lo:.4g}..{hi:.4g}" for lo, hi in zip(self.low, self.high, strict=True))
        return f"layer 2-98 % range per band: {pairs}"


def band_stats(
    bands: np.ndarray,
    valid: np.ndarray | None = None,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
) -> LayerStats:
    """Percentiles of a ``(B, H, W)`` sample (e.g. a decimated read of the whole layer).

    A band with no valid pixel gets 0..1; a constant band gets a unit span so results stay finite.
    """
    if bands.ndim != 3:
        raise ValueError(f"expected a (bands, rows, cols) array, got shape {bands.shape}")
    lows: list[float] = []
    highs: list[float] = []
    for b in range(bands.shape[0]):
        values = bands[b][valid] if valid is not None else bands[b].ravel()
        values = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        if values.size == 0:
            lows.append(0.0)
            highs.append(1.0)
            continue
        lo, hi = (float(v) for v in np.percentile(values, percentiles))
        if not hi > lo:
            lo, hi = float(values.min()), float(values.max())
            if not hi > lo:
                hi = lo + 1.0
        lows.append(lo)
        highs.append(hi)
    return LayerStats(tuple(lows), tuple(highs))


def image_stats(
    image: np.ndarray, valid: np.ndarray | None, contract: PixelContract
) -> LayerStats:
    """The "layer" statistics of a stand-alone image: the image itself."""
    return band_stats(image if image.ndim == 3 else image[None], valid, contract.percentiles)


def _fill_invalid(pixels: np.ndarray, valid: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Raw ``(N, B, h, w)`` -> float32 with each tile's invalid pixels set to that tile's valid
    mean per band (``fallback`` when it has none). Tiles without invalid pixels are only
    converted; each of the others is filled in place through views of the converted batch: zero
    its invalid pixels, sum (float64), divide by the valid count, write the means back.

    Why a loop over tiles rather than one vectorised pass: gathering the partial tiles into a
    sub-array (``x[part]``) and scattering them back cost two copies of most of the batch, and
    those multi-MB temporaries were often fresh memory from the OS (up to 107 page faults per
    256 px tile); the loop allocates one ``h x w`` mask per tile. Real 256 px tiles with nodata
    edges: 0.044 against 0.055 ms per tile (0.23 when the temporaries faulted), bit for bit the
    same numbers."""
    x = np.array(pixels, dtype=np.float32)  # always a copy: the caller's pixels stay intact
    n, bands = x.shape[:2]
    if n == 0:
        return x
    count = row_counts(valid.reshape(n, -1))
    fill_with = np.asarray(fallback, dtype=np.float64).astype(np.float32)
    for i in np.flatnonzero(count < valid[0].size):
        tile, invalid = x[i], ~valid[i]
        if count[i]:
            np.copyto(tile, 0.0, where=invalid)
            sums = tile.reshape(bands, -1).sum(axis=-1, dtype=np.float64)
            means = (sums / count[i]).astype(np.float32)
        else:
            means = fill_with
        np.copyto(tile, means[:, None, None], where=invalid)
    return x


def _tile_bounds(
    x: np.ndarray, valid: np.ndarray | None, contract: PixelContract, layer: LayerStats
) -> tuple[np.ndarray, np.ndarray]:
    """Per-tile, per-band stretch bounds ``(N, B)`` for tile mode (see module docstring):
    percentiles of the resized tile's valid pixels on a ``percentile_step`` grid, span floored at
    a fraction of the layer's."""
    step = contract.percentile_step
    if step > 1:
        x = x[..., ::step, ::step]
        valid = None if valid is None else valid[..., ::step, ::step]
    n, b = x.shape[:2]
    flat = x.reshape(n, b, -1)
    q = np.asarray(contract.percentiles, dtype=np.float64)
    v = None if valid is None else valid.reshape(n, 1, -1)
    lo, hi = row_percentiles(flat, q, v)  # a tile with no valid pixel: over all of them
    floor = contract.min_span_fraction * layer.span[None, :]
    short = (hi - lo) < floor
    if short.any():
        mid = (lo + hi) / 2
        lo = np.where(short, mid - floor / 2, lo)
        hi = np.where(short, mid + floor / 2, hi)
    hi = np.where(hi > lo, hi, lo + 1.0)
    return lo, hi


def to_model_channels(bands01: np.ndarray, channels: int) -> np.ndarray:
    """``(N, B, S, S)`` 0..1 -> ``(N, channels, S, S)``: luma for RGB -> 1, repeat for 1 -> 3."""
    n_bands = bands01.shape[1]
    if n_bands == channels:
        return bands01
    if channels == 1 and n_bands == 3:
        w = np.asarray(LUMA_WEIGHTS, dtype=np.float32)[None, :, None, None]
        return (bands01 * w).sum(axis=1, keepdims=True, dtype=np.float32)
    if channels == 3 and n_bands == 1:
        return np.repeat(bands01, 3, axis=1)
    raise ValueError(
        f"the model takes {channels} channel(s) but {n_bands} band(s) were selected; "
        f"choose 1 or 3 bands with the BANDS parameter"
    )


def prepare_batch(
    pixels: np.ndarray,
    contract: PixelContract,
    layer: LayerStats,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Raw tiles ``(N, B, h, w)`` (+ optional valid masks ``(N, h, w)``) -> model input
    ``(N, C, S, S)`` float32, following the contract (module docstring)."""
    if pixels.ndim != 4:
        raise ValueError(f"expected (tiles, bands, rows, cols), got shape {pixels.shape}")
    if len(layer.low) != pixels.shape[1]:
        raise ValueError(
            f"layer statistics have {len(layer.low)} band(s) but the tiles have "
            f"{pixels.shape[1]}; compute them on the same bands"
        )
    if valid is not None and valid.all():
        valid = None
    if valid is not None:
        mid = (np.asarray(layer.low) + np.asarray(layer.high)) / 2
        x = _fill_invalid(pixels, valid, mid)
    else:
        x = np.asarray(pixels, dtype=np.float32)
    size = contract.input_size
    x = resize_batch(x, size)
    small_valid = None if valid is None else nearest_mask(valid, size)
    if contract.stretch == "tile":
        lo, hi = _tile_bounds(x, small_valid, contract, layer)
    else:
        lo = np.broadcast_to(np.asarray(layer.low), x.shape[:2])
        hi = np.broadcast_to(np.asarray(layer.high), x.shape[:2])
        hi = np.where(hi > lo, hi, lo + 1.0)
    scale = (1.0 / (hi - lo)).astype(np.float32)[:, :, None, None]
    shift = lo.astype(np.float32)[:, :, None, None]
    # in place unless x is still the caller's array (float32 input already at model size)
    x = x - shift if np.may_share_memory(x, pixels) else np.subtract(x, shift, out=x)
    x *= scale
    np.clip(x, 0.0, 1.0, out=x)
    x = to_model_channels(x, contract.channels)  # x (or its channel copy) is ours to overwrite
    return normalise(x, contract.mean, contract.std, in_place=True)


def prepare_image(
    image: np.ndarray,
    contract: PixelContract,
    valid: np.ndarray | None = None,
    layer: LayerStats | None = None,
) -> np.ndarray:
    """One image or tile ``(B, H, W)`` / ``(H, W)`` of raw values -> ``(C, S, S)`` model input.

    Without ``layer`` the image is its own layer (image files, training and evaluation tiles).
    """
    if image.ndim == 2:
        image = image[None]
    stats = layer if layer is not None else image_stats(image, valid, contract)
    v = None if valid is None else valid[None]
    return prepare_batch(image[None], contract, stats, v)[0]


def normalise(
    image01: np.ndarray, mean: Sequence[float], std: Sequence[float], *, in_place: bool = False
) -> np.ndarray:
    """Per-channel ``(x - mean) / std`` on a ``(C, H, W)`` or ``(N, C, H, W)`` 0..1 array.

    ``in_place`` (a float32 array the caller owns, as in :func:`prepare_batch`) overwrites it
    with the same numbers and without two batch-sized temporaries (64 tiles of 128 px: 4 MB
    each; prepare_batch took 0.071-0.072 against 0.075-0.076 ms per tile)."""
    m = np.asarray(mean, dtype=np.float32)
    s = np.asarray(std, dtype=np.float32)
    shape: Any = (1, -1, 1, 1) if image01.ndim == 4 else (-1, 1, 1)
    if in_place and image01.dtype == np.float32:
        np.subtract(image01, m.reshape(shape), out=image01)
        np.divide(image01, s.reshape(shape), out=image01)
        return image01
    return ((image01 - m.reshape(shape)) / s.reshape(shape)).astype(np.float32, copy=False)


def unit_contract(size: int, channels: int = 1, **kw: Any) -> PixelContract:
    """A contract with mean 0 / std 1, i.e. the 0..1 values (what training caches)."""
    return PixelContract(size, channels, (0.0,) * channels, (1.0,) * channels, **kw)
