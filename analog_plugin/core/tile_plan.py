"""From user parameters to a tile grid over an opened raster: tile size (model default, pixels or
metres), extent, overlap, and the ground size of a tile for the run's log and scale checks.

Why here and not in ``tiling``: ``tiling`` is pure arithmetic on pixel windows; this module knows
about the raster's CRS and the model's training tile (``tile_px``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .crs_units import pixel_size_m, tile_size_pixels
from .errors import AnalogError, TilingError
from .raster_reader import RasterSource
from .tiling import PixelWindow, TileGrid, extent_window, make_grid

SCALE_WARN_RATIO = 2.0
"""Scoring at a ground size this many times away from the library's warns."""


@dataclass(frozen=True)
class TilePlan:
    """A grid and what a tile is on the ground (``tile_m`` None when the CRS cannot say)."""

    grid: TileGrid
    tile_w: int
    tile_h: int
    tile_m: float | None
    variation: float

    def describe(self) -> str:
        g = self.grid
        ground = f" (~{self.tile_m:.4g} m on the ground)" if self.tile_m else ""
        return (
            f"Tiling: {g.n_cols} x {g.n_rows} = {g.n_tiles} tiles of {self.tile_w} x "
            f"{self.tile_h} px{ground}, stride {g.stride_x} x {g.stride_y} px, over "
            f"{g.extent.width} x {g.extent.height} px"
        )


def tile_pixels(
    src: RasterSource, default_px: int, tile_size: float | None, tile_units: str,
    window: PixelWindow,
) -> tuple[int, int]:
    """(width, height) in pixels: the model's training tile when ``tile_size`` is None, else
    ``tile_size`` in ``tile_units`` measured at the centre of ``window``."""
    if tile_size is None:
        return default_px, default_px
    return tile_size_pixels(
        float(tile_size), tile_units, src.info.crs_wkt, src.info.transform,
        window.col_off + window.width / 2, window.row_off + window.height / 2,
    )


def ground_size_m(src: RasterSource, tw: int, th: int, col: float, row: float) -> float | None:
    """Mean ground side (m) of a tw x th px tile centred at (col, row); None without a CRS."""
    try:
        mx, my = pixel_size_m(src.info.crs_wkt, src.info.transform, col, row)
    except AnalogError:
        return None
    return (tw * mx + th * my) / 2


def plan_tiles(
    src: RasterSource,
    default_px: int,
    tile_size: float | None,
    tile_units: str,
    overlap: float,
    extent: tuple[float, float, float, float] | None,
) -> TilePlan:
    """The grid of a run. In metres the pixel size is taken at the extent's centre (one grid, equal
    tiles in pixels); ``variation`` is the ratio of the largest to the smallest ground size of a
    tile across the extent's rows, so callers can warn when one scale does not fit all."""
    ext = extent_window(src.info.transform, src.info.width, src.info.height, extent)
    tw, th = tile_pixels(src, default_px, tile_size, tile_units, ext)
    grid = make_grid(src.info.width, src.info.height, tw, th, float(overlap), ext)
    cx = ext.col_off + ext.width / 2
    sizes = [
        ground_size_m(src, tw, th, cx, r)
        for r in (ext.row_off + th / 2, ext.row_off + ext.height / 2, ext.row_end - th / 2)
    ]
    known = [s for s in sizes if s]
    variation = max(known) / min(known) if len(known) == 3 else 1.0
    return TilePlan(grid, tw, th, sizes[1], variation)


def scale_warning(plan: TilePlan, library_tile_m: float | None) -> str | None:
    """A warning when the run's ground tile is > 2x away from the library's, or varies > 25 %."""
    parts: list[str] = []
    if plan.tile_m and library_tile_m:
        ratio = plan.tile_m / library_tile_m
        if ratio > SCALE_WARN_RATIO or ratio < 1 / SCALE_WARN_RATIO:
            parts.append(
                f"the tiles cover ~{plan.tile_m:.4g} m on the ground but the library's exemplars "
                f"were cut at ~{library_tile_m:.4g} m ({ratio:.2g}x); landforms then appear at "
                "another scale: set TILE_SIZE in metres to match, or rebuild the library"
            )
    if plan.variation > 1.25:
        parts.append(
            f"the ground size of a tile varies {plan.variation:.2g}x across the extent (map "
            "projection scale); process latitude bands separately or use an equal-area CRS"
        )
    return "; ".join(parts) if parts else None


def check_channels(n_bands: int, channels: int) -> None:
    """TilingError unless the selected bands map onto the model's channels (see preprocess)."""
    if n_bands == channels or (channels == 1 and n_bands == 3) or (channels == 3 and n_bands == 1):
        return
    raise TilingError(
        f"the model takes {channels} channel(s) but {n_bands} band(s) are selected; "
        f"choose 1 or 3 bands with the BANDS parameter"
    )
