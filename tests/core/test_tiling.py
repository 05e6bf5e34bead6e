"""Tiling: hand-computed grids plus hypothesis properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analog_plugin.core.errors import TilingError
from analog_plugin.core.tiling import (
    PixelWindow,
    Tile,
    bounds_to_window,
    clip_window,
    compute_stride,
    extent_window,
    make_grid,
    tiles_along,
    window_bounds,
)


def test_hand_computed_grid_100x70_size32_overlap25() -> None:
    g = make_grid(100, 70, 32, overlap_pct=25)
    assert (g.stride_x, g.stride_y) == (24, 24)
    # n = ceil((L - 32) / 24) + 1: cols ceil(68/24)+1 = 4, rows ceil(38/24)+1 = 3
    assert (g.n_cols, g.n_rows, g.n_tiles) == (4, 3, 12)
    tiles = list(g)
    assert tiles[0] == Tile(0, 0, 0, 0, 0, 32, 32)
    assert tiles[3] == Tile(3, 0, 3, 72, 0, 32, 32)  # runs 72..104 past the 100 px raster
    assert tiles[11] == Tile(11, 2, 3, 72, 48, 32, 32)
    assert g.tile(5) == Tile(5, 1, 1, 24, 24, 32, 32)


def test_exact_fit_no_overlap_has_no_padding() -> None:
    g = make_grid(96, 64, 32)
    assert (g.n_cols, g.n_rows) == (3, 2)
    assert max(t.col_off + t.width for t in g) == 96
    assert max(t.row_off + t.height for t in g) == 64


def test_stride_rounding_and_minimum() -> None:
    assert compute_stride(32, 50) == 16
    assert compute_stride(10, 95) == 1  # round(0.5) = 0 -> at least 1
    assert compute_stride(3, 95) == 1
    assert compute_stride(33, 10) == 30  # round(29.7)


def test_grid_over_extent_offsets_and_row_col_are_relative() -> None:
    ext = PixelWindow(10, 20, 50, 40)
    g = make_grid(200, 200, 16, overlap_pct=0, extent=ext)
    t = g.tile(0)
    assert (t.row, t.col, t.col_off, t.row_off) == (0, 0, 10, 20)
    assert (g.n_cols, g.n_rows) == (4, 3)  # ceil(34/16)+1, ceil(24/16)+1


def test_non_square_tiles() -> None:
    g = make_grid(100, 50, 40, 20, overlap_pct=50)
    assert (g.stride_x, g.stride_y) == (20, 10)
    assert (g.n_cols, g.n_rows) == (4, 4)


@pytest.mark.parametrize("overlap", [-1, 95.5, 100, float("nan")])
def test_bad_overlap(overlap: float) -> None:
    with pytest.raises(TilingError, match="overlap"):
        make_grid(100, 100, 32, overlap_pct=overlap)


@pytest.mark.parametrize("size", [0, -5])
def test_bad_size(size: int) -> None:
    with pytest.raises(TilingError, match=str(size)):
        make_grid(100, 100, size)


def test_raster_smaller_than_tile_says_sizes_and_what_to_do() -> None:
    with pytest.raises(TilingError) as ei:
        make_grid(20, 100, 32)
    msg = str(ei.value)
    assert "20 x 100" in msg and "32 x 32" in msg and "smaller TILE_SIZE" in msg


def test_extent_window_and_outside_extent() -> None:
    t = (10.0, 0.0, 1000.0, 0.0, -10.0, 5000.0)  # 10 m pixels, origin (1000, 5000)
    w = extent_window(t, 100, 100, (1100.0, 4500.0, 1300.0, 4900.0))
    assert w == PixelWindow(10, 10, 20, 40)
    # partially outside: clipped to the raster
    assert extent_window(t, 100, 100, (900.0, 4000.0, 1050.0, 5100.0)) == PixelWindow(0, 0, 5, 100)
    # fractional pixel edges snap outward
    snapped = extent_window(t, 100, 100, (1105.0, 4505.0, 1295.0, 4895.0))
    assert snapped == PixelWindow(10, 10, 20, 40)
    with pytest.raises(TilingError, match="does not overlap"):
        extent_window(t, 100, 100, (0.0, 0.0, 10.0, 10.0))
    with pytest.raises(TilingError, match="empty or inverted"):
        extent_window(t, 100, 100, (1300.0, 4500.0, 1100.0, 4900.0))


def test_window_bounds_roundtrip() -> None:
    t = (0.5, 0.0, -10.0, 0.0, -0.25, 20.0)
    w = PixelWindow(3, 4, 8, 6)
    assert bounds_to_window(t, window_bounds(t, w)) == w


@settings(max_examples=150, deadline=None)
@given(
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    tile=st.integers(1, 64),
    overlap=st.floats(0, 95, allow_nan=False),
)
def test_grid_properties(width: int, height: int, tile: int, overlap: float) -> None:
    if width < tile or height < tile:
        with pytest.raises(TilingError):
            make_grid(width, height, tile, overlap_pct=overlap)
        return
    g = make_grid(width, height, tile, overlap_pct=overlap)
    s = g.stride_x
    assert s == g.stride_y == max(1, round(tile * (1 - overlap / 100)))
    assert g.n_cols == math.ceil((width - tile) / s) + 1
    tiles = list(g)
    # ids unique, row-major
    assert [t.tile_id for t in tiles] == list(range(g.n_tiles))
    assert all(t.tile_id == t.row * g.n_cols + t.col for t in tiles)
    # tiles start inside the raster; padding less than one stride
    assert all(0 <= t.col_off < width and 0 <= t.row_off < height for t in tiles)
    assert all(t.col_off + t.width < width + s for t in tiles)
    assert all(t.row_off + t.height < height + s for t in tiles)
    # consecutive origins exactly one stride apart
    assert all(b.col_off - a.col_off == s for a, b in zip(tiles, tiles[1:], strict=False)
               if a.row == b.row)
    # every pixel covered: along each axis the union of tile spans is [0, L)
    cols = sorted({(t.col_off, t.col_off + t.width) for t in tiles})
    assert cols[0][0] == 0 and cols[-1][1] >= width
    assert all(b[0] <= a[1] for a, b in zip(cols, cols[1:], strict=False))
    rows = sorted({(t.row_off, t.row_off + t.height) for t in tiles})
    assert rows[0][0] == 0 and rows[-1][1] >= height
    assert all(b[0] <= a[1] for a, b in zip(rows, rows[1:], strict=False))
    # minimal: dropping the last column would leave pixels uncovered
    assert (g.n_cols - 1 - 1) * s + tile < width or g.n_cols == 1


@settings(max_examples=100, deadline=None)
@given(length=st.integers(1, 500), size=st.integers(1, 64), stride=st.integers(1, 64))
def test_tiles_along_formula(length: int, size: int, stride: int) -> None:
    if length < size:
        with pytest.raises(TilingError):
            tiles_along(length, size, stride)
    else:
        n = tiles_along(length, size, stride)
        assert (n - 1) * stride + size >= length
        assert n == 1 or (n - 2) * stride + size < length


@settings(max_examples=150, deadline=None)
@given(
    width=st.integers(1, 120), height=st.integers(1, 120),
    tw=st.integers(1, 40), th=st.integers(1, 40),
    x0=st.integers(0, 119), y0=st.integers(0, 119), w=st.integers(1, 120), h=st.integers(1, 120),
)
def test_zero_overlap_covers_the_requested_extent_exactly_once(
        width: int, height: int, tw: int, th: int, x0: int, y0: int, w: int, h: int) -> None:
    """Counting oracle: paint every tile into an array; at zero overlap each pixel of the
    requested extent is painted exactly once (tiles may run past its far edges, never before its
    near ones); anything else raises our TilingError."""
    extent = clip_window(PixelWindow(x0, y0, w, h), width, height)
    if extent is None:
        return
    try:
        g = make_grid(width, height, tw, th, overlap_pct=0.0, extent=extent)
    except TilingError:
        assert extent.width < tw or extent.height < th
        return
    count = np.zeros((height + th, width + tw), np.int32)
    for t in g:
        assert t.col_off >= extent.col_off and t.row_off >= extent.row_off
        count[t.row_off:t.row_off + t.height, t.col_off:t.col_off + t.width] += 1
    inside = count[extent.row_off:extent.row_end, extent.col_off:extent.col_end]
    assert (inside == 1).all()
