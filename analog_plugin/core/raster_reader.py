"""Windowed raster reads with rasterio: band selection, valid masks, padding, decimation, stretch.

Design choices and why:
- Edge tiles are read "boundless" by hand (read the part inside the raster, paste it into a
  padded array) rather than with rasterio's ``boundless=True``, which builds a WarpedVRT per call;
  the padding is marked invalid so it lowers the tile's valid fraction.
- Validity comes from GDAL's mask bands (``read_masks``: nodata value, alpha band, .msk) plus
  ``isfinite`` for float data, so NaN never reaches the network. Masks are read only when the
  raster has a nodata value or a real mask: reading an all-valid mask costs time and fills GDAL's
  block cache with mask blocks.
- A window much larger than the model input (metre-sized tiles on a 25 cm HiRISE image) is read
  with ``out_shape`` at ~2x the model size: GDAL averages (or uses overviews) instead of us
  reading a huge window at full resolution. Windows up to DECIMATE_FACTOR x the model input are
  read at full resolution and resized by ``preprocess`` (the same code as for image files).
- Pixels come back in their own type when it is an integer of at most 16 bits (a quarter of
  float32's memory traffic in the reader thread; the workers convert whole batches), else as
  float32 (not float64).
- Layer statistics (2-98 percentiles of a decimated read of the *whole* layer) are computed once,
  so the span floor of the per-tile stretch does not depend on EXTENT.
- GDAL's block cache is bounded while a job reads (``gdal_cache.bounded_gdal_cache``): by
  default it may grow to 5 % of RAM and, streaming through a large raster, it keeps every block
  it ever read.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.features import geometry_mask
from rasterio.windows import Window

from .errors import RasterReadError
from .preprocess import DEFAULT_PERCENTILES, LayerStats, band_stats
from .tiling import PixelWindow, clip_window

STRETCH_MAX_SIDE = 1024
"""Long side (pixels) of the decimated read used for the per-layer percentile stretch."""

DECIMATE_FACTOR = 4
"""Windows larger than DECIMATE_FACTOR x model input are read with out_shape at 2x the input."""

STRIP_MAX_BYTES = 96 * 1024 * 1024
"""Largest row strip (float32, all selected bands) kept to serve a tile row's reads."""

@dataclass(frozen=True)
class RasterInfo:
    """Static facts about an opened raster."""

    path: str
    width: int
    height: int
    count: int
    dtypes: tuple[str, ...]
    nodata: float | None
    crs_wkt: str
    transform: tuple[float, float, float, float, float, float]
    res: tuple[float, float]

    @property
    def center_y(self) -> float:
        """Map y of the raster centre (latitude for geographic CRSs)."""
        a, b, c, d, e, f = self.transform
        return d * self.width / 2 + e * self.height / 2 + f


def _pixel_dtype(dtypes: Sequence[str]) -> np.dtype[Any]:
    """The type pixels are handed on in: the bands' common type if it is an integer of at most
    16 bits (exact in float32 later), else float32."""
    common = np.result_type(*[np.dtype(d) for d in dtypes])
    if common.kind in "ui" and common.itemsize <= 2:
        return common
    return np.dtype(np.float32)


@dataclass(frozen=True, eq=False)
class TileData:
    """Raw pixels of one window: ``pixels`` (B, h, w) in the source's own type when it is an
    integer of at most 16 bits, else float32; ``valid`` (h, w) bool."""

    pixels: np.ndarray
    valid: np.ndarray
    valid_frac: float


def decimated_shape(width: int, height: int, model_size: int) -> tuple[int, int] | None:
    """(rows, cols) to read a width x height window at, or None for full resolution.

    Only windows larger than DECIMATE_FACTOR x the model input are decimated, to about twice the
    model size (keeping the aspect ratio), so the final area-average resize still has >= 2x
    oversampling.
    """
    longest = max(width, height)
    if longest <= DECIMATE_FACTOR * model_size:
        return None
    k = 2 * model_size / longest
    return max(1, int(round(height * k))), max(1, int(round(width * k)))


def _every_band(ok: np.ndarray) -> np.ndarray:
    """``(B, h, w)`` booleans -> ``(h, w)``: true where every band is. One band (the usual Mars
    image) is returned as is: a reduction over a length-1 axis is still a full pass and a copy."""
    return ok[0] if ok.shape[0] == 1 else np.all(ok, axis=0)


def _as_dtype(value: float, dtype: np.dtype[Any]) -> Any:
    """The nodata ``value`` as GDAL's nodata mask reads it for ``dtype``: a scalar of that type
    (a fraction on an integer type truncated, as GDAL 3.6 casts it: 7.5 marks the 7s), or None
    when no pixel can be nodata (out of the type's range).

    Why: numpy compares a uint8 array with the float nodata rasterio reports (``0.0``) in
    float64; with a uint8 scalar the nodata test of a strip is 9x faster (one 256-row strip of a
    16384 px wide scene: 0.64 against 0.07 ms; with the reduction :func:`_every_band` saves, 2.7
    ms before). Like GDAL, a float32 raster's nodata is rounded to float32 (0.1 marks the pixels
    that hold float32(0.1)); tested against GDAL's own masks."""
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return dtype.type(int(value)) if info.min <= value <= info.max else None
    if dtype.kind == "f":
        with np.errstate(over="ignore"):
            typed = dtype.type(value)
        return typed if np.isfinite(typed) or not np.isfinite(value) else None
    return value  # other types (complex rasters are refused at open): numpy's comparison


class RasterSource:
    """An opened raster with the selected bands (1-based). Use as a context manager."""

    def __init__(self, path: str | os.PathLike[str], bands: Sequence[int] | None = None) -> None:
        self.path = str(path)
        # Plain file paths get a clear message; GDAL paths (/vsizip/..., NETCDF:...) go to GDAL.
        is_gdal_path = self.path.startswith("/vsi") or re.match(r"^[A-Za-z]\w+:", self.path)
        if not is_gdal_path and not Path(self.path).exists():
            raise RasterReadError(f"raster '{self.path}' does not exist; check the path")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self._ds = rasterio.open(self.path)
        except (RasterioIOError, OSError) as err:
            raise RasterReadError(
                f"cannot open raster '{self.path}' ({err}); check it is a GDAL-readable image"
            ) from err
        ds = self._ds
        if bands is None or len(bands) == 0:
            self.bands: tuple[int, ...] = tuple(range(1, ds.count + 1))
        else:
            self.bands = tuple(int(b) for b in bands)
            bad = [b for b in self.bands if not 1 <= b <= ds.count]
            if bad:
                self.close()
                raise RasterReadError(
                    f"band(s) {bad} requested but '{Path(self.path).name}' has {ds.count} "
                    f"band(s); BANDS takes 1-based band numbers between 1 and {ds.count}"
                )
        # by name: rasterio calls GDAL's CInt16 'complex_int16', which numpy does not know
        complex_bands = [b for b in self.bands if ds.dtypes[b - 1].startswith("complex")]
        if complex_bands:
            self.close()
            raise RasterReadError(
                f"band(s) {complex_bands} of '{Path(self.path).name}' hold complex numbers "
                f"({ds.dtypes[complex_bands[0] - 1]}, e.g. SAR data): the model needs real "
                "values; convert to amplitude first (Raster Calculator abs(), or gdal_calc.py "
                "--calc='abs(A)'), or choose real bands with BANDS"
            )
        t = ds.transform
        self.info = RasterInfo(
            path=self.path,
            width=ds.width,
            height=ds.height,
            count=ds.count,
            dtypes=tuple(ds.dtypes),
            nodata=ds.nodata,
            crs_wkt=ds.crs.to_wkt() if ds.crs else "",
            transform=(t.a, t.b, t.c, t.d, t.e, t.f),
            res=(float(ds.res[0]), float(ds.res[1])),
        )
        self._affine: Affine = t
        # Masks only where they can say something: a nodata value, an alpha band, a .msk file.
        # Float data is checked with isfinite anyway.
        flags = [list(f) for i, f in enumerate(ds.mask_flag_enums) if i + 1 in self.bands]
        self.has_mask = ds.nodata is not None or any(f != [MaskFlags.all_valid] for f in flags)
        # A mask that only says "pixel == nodata" is computed from the data itself: reading the
        # mask band too would double the I/O and fill GDAL's cache with mask blocks.
        self._nodata_only = ds.nodata is not None and all(f == [MaskFlags.nodata] for f in flags)
        self._is_float = any(np.dtype(ds.dtypes[b - 1]).kind == "f" for b in self.bands)
        self.pixel_dtype = _pixel_dtype([ds.dtypes[b - 1] for b in self.bands])
        self._strip_cols: tuple[int, int] | None = None
        self._strip: tuple[int, int, np.ndarray, np.ndarray] | None = None

    def block_rows(self) -> int:
        """Rows of one block of the selected bands (the tallest, if they differ)."""
        return max(self._ds.block_shapes[b - 1][0] for b in self.bands)

    def block_row_bytes(self) -> int:
        """Bytes of one full-width row of blocks over the selected bands."""
        return sum(self._ds.block_shapes[b - 1][0] * self.info.width
                   * np.dtype(self._ds.dtypes[b - 1]).itemsize for b in self.bands)

    def use_row_strips(self, col_off: int, width: int) -> bool:
        """Serve full-resolution window reads from row strips ``[col_off, col_off + width)``.

        Why: a grid read in row-major order asks GDAL for thousands of small windows, each with
        its own Python and GDAL call overhead; one strip per tile row costs one call. Enabled only
        when a strip of the tallest plausible tile (512 rows) stays under STRIP_MAX_BYTES.
        """
        if len(self.bands) * width * 512 * 4 > STRIP_MAX_BYTES:
            return False
        self._strip_cols = (col_off, width)
        return True

    def _read_inner(
        self, inner: PixelWindow, out_shape: tuple[int, int] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """An in-raster window: from the row strip when it can serve it, else from GDAL
        (decimated with average resampling when ``out_shape`` is given)."""
        cols = self._strip_cols
        if out_shape is None and cols is not None and cols[0] <= inner.col_off \
                and inner.col_end <= cols[0] + cols[1]:
            return self._strip_read(inner, *cols)
        resampling = Resampling.nearest if out_shape is None else Resampling.average
        return self._read(inner, out_shape, resampling)

    def _strip_read(self, inner: PixelWindow, c0: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        s = self._strip
        if s is None or not (s[0] <= inner.row_off and inner.row_end <= s[1]):
            win = PixelWindow(c0, inner.row_off, w, inner.height)
            pixels, valid = self._read(win, None, Resampling.nearest)
            s = self._strip = (inner.row_off, inner.row_end, pixels, valid)
        r0, r1 = inner.row_off - s[0], inner.row_end - s[0]
        k0, k1 = inner.col_off - c0, inner.col_end - c0
        return s[2][:, r0:r1, k0:k1], s[3][r0:r1, k0:k1]

    # -- context manager -------------------------------------------------------------------
    def close(self) -> None:
        self._ds.close()

    def __enter__(self) -> RasterSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- reads ------------------------------------------------------------------------------
    def _read(
        self, window: PixelWindow, out_shape: tuple[int, int] | None, resampling: Resampling
    ) -> tuple[np.ndarray, np.ndarray]:
        """Read an in-raster window -> (pixels (B,h,w) float32, valid (h,w))."""
        win = Window(window.col_off, window.row_off, window.width, window.height)
        shape = None if out_shape is None else (len(self.bands), *out_shape)
        try:
            data = self._ds.read(
                indexes=list(self.bands), window=win, out_shape=shape, resampling=resampling
            )
            masks = None
            if self.has_mask and not self._nodata_only:
                masks = self._ds.read_masks(
                    indexes=list(self.bands), window=win, out_shape=shape,
                    resampling=Resampling.nearest,
                )
        except (RasterioIOError, OSError, ValueError) as err:
            raise RasterReadError(
                f"cannot read window {window} of raster '{self.path}' ({err})"
            ) from err
        if masks is not None:
            valid = _every_band(masks > 0)
        elif self._nodata_only:
            nd = self._ds.nodata
            if np.isnan(nd):
                valid = _every_band(~np.isnan(data))
            else:
                same = _as_dtype(nd, data.dtype)
                valid = (np.ones(data.shape[1:], dtype=bool) if same is None
                         else _every_band(data != same))
        else:
            valid = np.ones(data.shape[1:], dtype=bool)
        pixels = data.astype(self.pixel_dtype, copy=False)
        if self._is_float:
            finite = np.isfinite(pixels)
            valid &= _every_band(finite)
            pixels = np.where(finite, pixels, 0.0).astype(np.float32, copy=False)
        return pixels, valid

    def read_window(
        self,
        window: PixelWindow,
        out_shape: tuple[int, int] | None = None,
        mask_shapes: Sequence[dict[str, Any]] | None = None,
    ) -> TileData:
        """Read ``window`` (it may extend past the raster; the outside is padded, invalid).

        ``out_shape`` (rows, cols) reads decimated (GDAL average resampling). ``mask_shapes``
        (GeoJSON-like polygons in the raster CRS) make pixels whose centre is outside them
        invalid. valid_frac = valid pixels / all pixels of the (padded) window.
        """
        oh, ow = out_shape if out_shape is not None else (window.height, window.width)
        inner = clip_window(window, self.info.width, self.info.height)
        if inner == window and out_shape is None and not mask_shapes:  # common case: no padding
            px, ok = self._read_inner(window, None)
            return TileData(pixels=px, valid=ok,
                            valid_frac=float(np.count_nonzero(ok)) / float(ok.size))
        pixels = np.zeros((len(self.bands), oh, ow), dtype=self.pixel_dtype)
        valid = np.zeros((oh, ow), dtype=bool)
        if inner is not None:
            sx, sy = ow / window.width, oh / window.height
            c0 = int(round((inner.col_off - window.col_off) * sx))
            r0 = int(round((inner.row_off - window.row_off) * sy))
            c1 = max(int(round((inner.col_end - window.col_off) * sx)), c0 + 1)
            r1 = max(int(round((inner.row_end - window.row_off) * sy)), r0 + 1)
            c1, r1 = min(c1, ow), min(r1, oh)
            c0, r0 = min(c0, c1 - 1), min(r0, r1 - 1)
            full_res = (r1 - r0, c1 - c0) == (inner.height, inner.width)
            sub, sub_valid = self._read_inner(inner, None if full_res else (r1 - r0, c1 - c0))
            pixels[:, r0:r1, c0:c1] = sub
            valid[r0:r1, c0:c1] = sub_valid
        if mask_shapes:
            out_t = (
                self._affine
                * Affine.translation(window.col_off, window.row_off)
                * Affine.scale(window.width / ow, window.height / oh)
            )
            inside = geometry_mask(mask_shapes, out_shape=(oh, ow), transform=out_t, invert=True)
            valid &= inside
        frac = float(valid.sum()) / float(valid.size) if valid.size else 0.0
        return TileData(pixels=pixels, valid=valid, valid_frac=frac)

    def coverage(
        self,
        window: PixelWindow,
        shapes: Sequence[dict[str, Any]],
        out_shape: tuple[int, int] | None = None,
    ) -> float:
        """Fraction of the window's pixels (centres) inside ``shapes``; no pixel is read."""
        oh, ow = out_shape if out_shape is not None else (window.height, window.width)
        t = (
            self._affine
            * Affine.translation(window.col_off, window.row_off)
            * Affine.scale(window.width / ow, window.height / oh)
        )
        inside = geometry_mask(shapes, out_shape=(oh, ow), transform=t, invert=True)
        return float(inside.mean())

    def layer_stats(
        self,
        percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
        max_side: int = STRETCH_MAX_SIDE,
    ) -> LayerStats:
        """Per-band percentiles of the whole layer from a decimated (nearest, so real values)
        read: the per-layer stretch, and the span floor of the per-tile stretch."""
        w, h = self.info.width, self.info.height
        f = max(1.0, max(w, h) / max_side)
        shape = (max(1, int(math.ceil(h / f))), max(1, int(math.ceil(w / f))))
        out_shape = None if shape == (h, w) else shape
        pixels, valid = self._read(PixelWindow(0, 0, w, h), out_shape, Resampling.nearest)
        return band_stats(pixels.astype(np.float32, copy=False), valid, percentiles)
