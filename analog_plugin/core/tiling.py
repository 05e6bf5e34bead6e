"""Tile geometry as small immutable values and pure functions (no I/O).

Like rasterio's ``Window``, a ``Tile`` is just offsets and sizes in *raster pixel* coordinates;
like TorchGeo's ``tile_to_chips``, the number of tiles along an axis is a closed formula, so the
grid can be reasoned about (and tested) without reading a pixel.

Count formula, per axis, for a processed length ``L`` pixels, tile size ``T`` and stride ``s``::

    stride s = max(1, round(T * (1 - overlap / 100)))
    n        = ceil((L - T) / s) + 1          (requires L >= T)

The first tile starts at the extent's first pixel, tile ``i`` at ``i * s``; the last one may run
past the end of the raster (it is read boundless and padded, its valid fraction lowered), so every
pixel of the extent is covered and tiles never start outside it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .errors import TilingError

MAX_OVERLAP = 95.0
"""Above this the stride becomes ~1 px and the tile count explodes quadratically."""


@dataclass(frozen=True)
class PixelWindow:
    """A rectangle in raster pixel coordinates (col/row offsets of the top-left corner)."""

    col_off: int
    row_off: int
    width: int
    height: int

    @property
    def col_end(self) -> int:
        return self.col_off + self.width

    @property
    def row_end(self) -> int:
        return self.row_off + self.height


@dataclass(frozen=True)
class Tile:
    """One tile. ``row``/``col`` are zero-based tile indices from the top-left of the processed
    extent, ``tile_id = row * n_cols + col``; offsets/sizes are raster pixels (the window may
    extend past the raster: it is then read boundless and padded)."""

    tile_id: int
    row: int
    col: int
    col_off: int
    row_off: int
    width: int
    height: int

    @property
    def window(self) -> PixelWindow:
        return PixelWindow(self.col_off, self.row_off, self.width, self.height)


@dataclass(frozen=True)
class TileGrid:
    """A regular grid of tiles over ``extent`` (a window inside the raster)."""

    extent: PixelWindow
    tile_width: int
    tile_height: int
    stride_x: int
    stride_y: int
    n_cols: int
    n_rows: int

    @property
    def n_tiles(self) -> int:
        return self.n_cols * self.n_rows

    def __len__(self) -> int:
        return self.n_tiles

    def tile(self, tile_id: int) -> Tile:
        """The tile with this id (row-major)."""
        if not 0 <= tile_id < self.n_tiles:
            raise IndexError(f"tile_id {tile_id} outside 0..{self.n_tiles - 1}")
        row, col = divmod(tile_id, self.n_cols)
        return Tile(
            tile_id=tile_id,
            row=row,
            col=col,
            col_off=self.extent.col_off + col * self.stride_x,
            row_off=self.extent.row_off + row * self.stride_y,
            width=self.tile_width,
            height=self.tile_height,
        )

    def __iter__(self) -> Iterator[Tile]:
        """Tiles in row-major order (tile_id 0, 1, 2, ...)."""
        for tile_id in range(self.n_tiles):
            yield self.tile(tile_id)


def compute_stride(size: int, overlap_pct: float) -> int:
    """``max(1, round(size * (1 - overlap / 100)))``: pixels between consecutive tile origins."""
    check_overlap(overlap_pct)
    return max(1, int(round(size * (1.0 - overlap_pct / 100.0))))


def tiles_along(length: int, size: int, stride: int) -> int:
    """``ceil((length - size) / stride) + 1``: tiles needed to cover ``length`` pixels."""
    if length < size:
        raise TilingError(f"length {length} px is smaller than one tile of {size} px")
    if stride < 1:
        raise TilingError(f"stride must be >= 1 px, got {stride}")
    return -(-(length - size) // stride) + 1


def check_overlap(overlap_pct: float) -> None:
    if not (math.isfinite(overlap_pct) and 0.0 <= overlap_pct <= MAX_OVERLAP):
        raise TilingError(
            f"overlap {overlap_pct} % is outside [0, {MAX_OVERLAP:g}] %; "
            "choose e.g. 0 (no overlap) or 50 (half a tile)"
        )


def check_tile_size(size: float, units: str = "pixels") -> None:
    if not (math.isfinite(size) and size > 0):
        raise TilingError(
            f"tile size {size} {units} must be > 0; give e.g. the model input size in pixels"
        )


def make_grid(
    raster_width: int,
    raster_height: int,
    tile_width: int,
    tile_height: int | None = None,
    overlap_pct: float = 0.0,
    extent: PixelWindow | None = None,
) -> TileGrid:
    """Grid of tiles over ``extent`` (default: the whole raster), see the module docstring.

    ``extent`` must already be clipped to the raster (``clip_window``). Raises TilingError when
    the size/overlap are invalid or the extent is smaller than one tile.
    """
    tile_height = tile_width if tile_height is None else tile_height
    check_tile_size(tile_width)
    check_tile_size(tile_height)
    check_overlap(overlap_pct)
    if extent is None:
        extent = PixelWindow(0, 0, raster_width, raster_height)
    if extent.width <= 0 or extent.height <= 0:
        raise TilingError(f"the processed extent is empty ({extent.width} x {extent.height} px)")
    what = "raster" if (extent.width, extent.height) == (raster_width, raster_height) else (
        "processed extent (raster ∩ EXTENT)"
    )
    if extent.width < tile_width or extent.height < tile_height:
        raise TilingError(
            f"the {what} is {extent.width} x {extent.height} px, smaller than one tile of "
            f"{tile_width} x {tile_height} px; choose a smaller TILE_SIZE or a larger extent"
        )
    sx = compute_stride(tile_width, overlap_pct)
    sy = compute_stride(tile_height, overlap_pct)
    return TileGrid(
        extent=extent,
        tile_width=tile_width,
        tile_height=tile_height,
        stride_x=sx,
        stride_y=sy,
        n_cols=tiles_along(extent.width, tile_width, sx),
        n_rows=tiles_along(extent.height, tile_height, sy),
    )


def clip_window(window: PixelWindow, raster_width: int, raster_height: int) -> PixelWindow | None:
    """Intersection of a window with the raster, or None when they do not overlap."""
    c0 = max(window.col_off, 0)
    r0 = max(window.row_off, 0)
    c1 = min(window.col_end, raster_width)
    r1 = min(window.row_end, raster_height)
    if c1 <= c0 or r1 <= r0:
        return None
    return PixelWindow(c0, r0, c1 - c0, r1 - r0)


Transform = Sequence[float]
"""Affine coefficients ``(a, b, c, d, e, f)``: x = a*col + b*row + c, y = d*col + e*row + f
(rasterio's ``Affine`` satisfies it)."""


def _coeffs(transform: Transform) -> tuple[float, float, float, float, float, float]:
    a, b, c, d, e, f = (float(v) for v in tuple(transform)[:6])
    return a, b, c, d, e, f


def pixel_to_map(transform: Transform, col: float, row: float) -> tuple[float, float]:
    a, b, c, d, e, f = _coeffs(transform)
    return a * col + b * row + c, d * col + e * row + f


def map_to_pixel(transform: Transform, x: float, y: float) -> tuple[float, float]:
    a, b, c, d, e, f = _coeffs(transform)
    det = a * e - b * d
    if det == 0:
        raise TilingError("the raster's geotransform is degenerate (zero pixel size)")
    col = (e * (x - c) - b * (y - f)) / det
    row = (-d * (x - c) + a * (y - f)) / det
    return col, row


def bounds_to_window(
    transform: Transform, bounds: tuple[float, float, float, float], eps: float = 1e-6
) -> PixelWindow:
    """Smallest pixel window containing map ``bounds`` (xmin, ymin, xmax, ymax), outward-snapped
    (a sliver of ``eps`` pixel is not counted, so bounds on pixel edges snap exactly)."""
    xmin, ymin, xmax, ymax = bounds
    pts = [map_to_pixel(transform, x, y) for x in (xmin, xmax) for y in (ymin, ymax)]
    cols = [p[0] for p in pts]
    rows = [p[1] for p in pts]
    c0 = math.floor(min(cols) + eps)
    r0 = math.floor(min(rows) + eps)
    c1 = math.ceil(max(cols) - eps)
    r1 = math.ceil(max(rows) - eps)
    return PixelWindow(c0, r0, max(c1 - c0, 0), max(r1 - r0, 0))


def extent_window(
    transform: Transform,
    raster_width: int,
    raster_height: int,
    extent: tuple[float, float, float, float] | None,
) -> PixelWindow:
    """The processed extent: the whole raster, or raster ∩ EXTENT (map coords, raster CRS)."""
    full = PixelWindow(0, 0, raster_width, raster_height)
    if extent is None:
        return full
    xmin, ymin, xmax, ymax = (float(v) for v in extent)
    if not (xmax > xmin and ymax > ymin):
        raise TilingError(
            f"extent {extent} is empty or inverted; give (xmin, ymin, xmax, ymax) in the raster CRS"
        )
    clipped = clip_window(bounds_to_window(transform, (xmin, ymin, xmax, ymax)), *full_size(full))
    if clipped is None:
        rb = window_bounds(transform, full)
        raise TilingError(
            f"extent {tuple(extent)} does not overlap the raster (bounds {_fmt(rb)} in the "
            "raster CRS); give the extent in the raster's CRS or leave it empty"
        )
    return clipped


def full_size(w: PixelWindow) -> tuple[int, int]:
    return w.width, w.height


def window_bounds(transform: Transform, window: PixelWindow) -> tuple[float, float, float, float]:
    """Map bounds (xmin, ymin, xmax, ymax) of a pixel window (it may extend past the raster)."""
    pts = [
        pixel_to_map(transform, c, r)
        for c in (window.col_off, window.col_end)
        for r in (window.row_off, window.row_end)
    ]
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    return min(xs), min(ys), max(xs), max(ys)


def window_ring(transform: Transform, window: PixelWindow) -> list[tuple[float, float]]:
    """Closed polygon ring (map coords) of a window's footprint, exact under rotation too."""
    corners = [
        (window.col_off, window.row_off),
        (window.col_end, window.row_off),
        (window.col_end, window.row_end),
        (window.col_off, window.row_end),
        (window.col_off, window.row_off),
    ]
    return [pixel_to_map(transform, c, r) for c, r in corners]


def _fmt(b: tuple[float, float, float, float]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in b) + ")"
