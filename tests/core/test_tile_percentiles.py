"""Per-row percentiles over valid values (core/tile_percentiles.py), where masks land on the
resized grid (core/area_resize.nearest_mask) and the nodata fill before resizing, against
hand-computed values, a sorting oracle, np.percentile and per-tile loops."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from analog_plugin.core.area_resize import nearest_mask
from analog_plugin.core.preprocess import _fill_invalid
from analog_plugin.core.tile_percentiles import row_counts, row_percentiles


def test_percentiles_over_valid_values_by_hand() -> None:
    rows = np.array([[5, 1, 4, 2, 3], [10, 20, 30, 40, 50]], dtype=np.float32)
    valid = np.array([[False, True, True, True, True], [True] * 5])
    lo, mid, hi = row_percentiles(rows, np.array([25.0, 50.0, 100.0]), valid)
    # row 0: 1, 2, 3, 4 -> 25 % at place 0.75 = 1.75, 50 % at 1.5 = 2.5, 100 % = 4 (not the 5)
    np.testing.assert_array_equal(lo, [1.75, 20.0])
    np.testing.assert_array_equal(mid, [2.5, 30.0])
    np.testing.assert_array_equal(hi, [4.0, 50.0])


def test_a_row_without_valid_values_uses_all_of_them() -> None:
    rows = np.array([[4, 3, 2, 1]], dtype=np.float32)
    lo, hi = row_percentiles(rows, np.array([0.0, 100.0]), np.zeros((1, 4), bool))
    assert (lo[0], hi[0]) == (1.0, 4.0)


def test_shape_follows_the_leading_axes_and_masks_broadcast_over_bands() -> None:
    x = np.arange(2 * 3 * 10, dtype=np.float32).reshape(2, 3, 10)
    valid = np.ones((2, 1, 10), bool)
    valid[1, 0, 5:] = False  # tile 1: first half of every band
    lo, hi = row_percentiles(x, np.array([0.0, 100.0]), valid)
    assert lo.shape == hi.shape == (2, 3)
    np.testing.assert_array_equal(hi[1], x[1, :, 4])
    np.testing.assert_array_equal(hi[0], x[0, :, 9])


def contract_percentile(values: np.ndarray, frac: float) -> np.float32:
    """The oracle: sort, take order statistics i = floor(f (c - 1)) and min(i + 1, c - 1), and
    interpolate in float32 as the pixel contract does (v_i (1 - t) + v_j t)."""
    v = np.sort(values.astype(np.float32))
    pos = frac * (v.size - 1)
    i = int(np.floor(pos))
    j = min(i + 1, v.size - 1)
    t = np.float32(pos - i)
    return v[i] * (np.float32(1) - t) + v[j] * t  # float32 throughout


@settings(max_examples=200, deadline=None)
@given(
    n_rows=st.integers(1, 12),
    bands=st.integers(1, 3),
    length=st.integers(1, 300),
    q=st.tuples(st.floats(0, 100), st.floats(0, 100), st.floats(0, 100)),
    seed=st.integers(0, 2**32 - 1),
    contiguous=st.booleans(),
    levels=st.sampled_from([3, 256, 0]),  # ties (few grey levels) or continuous values
)
def test_equals_a_sort_of_each_rows_valid_values_bit_for_bit(
    n_rows: int, bands: int, length: int, q: tuple[float, float, float], seed: int,
    contiguous: bool, levels: int,
) -> None:
    """Tiles x bands rows with one mask per tile shared by its bands (as the stretch calls it):
    bit-identical to the sorting oracle, and within float32 rounding of np.percentile."""
    rng = np.random.default_rng(seed)
    shape = (n_rows, bands, length)
    x = (rng.integers(0, levels, shape) if levels
         else rng.normal(100, 30, shape)).astype(np.float32)
    if contiguous:  # nodata edges: a valid run of random length per tile (0 .. all)
        start = rng.integers(0, length + 1, n_rows)
        valid = np.arange(length)[None, :] >= start[:, None]
    else:
        valid = rng.random((n_rows, length)) < rng.random((n_rows, 1))
    valid[0] = True  # always one whole tile beside the partial ones
    got = row_percentiles(x, np.asarray(q), valid[:, None, :])
    for r in range(n_rows):
        for b in range(bands):
            values = x[r, b][valid[r]] if valid[r].any() else x[r, b]
            want = np.percentile(values.astype(np.float64), q)
            for k in range(3):
                assert got[k][r, b] == contract_percentile(values, q[k] / 100.0)
                np.testing.assert_allclose(got[k][r, b], want[k], rtol=2e-6, atol=1e-4)
    np.testing.assert_array_equal(row_counts(valid), valid.sum(axis=1))


def test_nearest_mask_whole_factor_and_other_ratios_by_hand() -> None:
    v = np.zeros((1, 4, 6), bool)
    v[0, 1, 1] = v[0, 3, 4] = v[0, 0, 0] = True  # 2 x 2 centres on 4 x 6: rows 1, 3; cols 1, 4
    np.testing.assert_array_equal(nearest_mask(v, 2)[0], [[True, False], [False, True]])
    v2 = np.zeros((1, 4, 4), bool)
    v2[0, 1, 1] = v2[0, 3, 3] = True  # 4 -> 2: samples at (1, 1), (1, 3), (3, 1), (3, 3)
    np.testing.assert_array_equal(nearest_mask(v2, 2)[0], [[True, False], [False, True]])
    v3 = np.zeros((1, 5, 5), bool)
    v3[0, 0, 0] = v3[0, 4, 2] = True  # 5 -> 3: floor((i + .5) * 5 / 3) = 0, 2, 4
    np.testing.assert_array_equal(nearest_mask(v3, 3)[0],
                                  [[True, False, False], [False] * 3, [False, True, False]])
    v4 = np.eye(2, dtype=bool)[None]  # 2 -> 4 (enlarge): floor((i + .5) / 2) = 0, 0, 1, 1
    np.testing.assert_array_equal(nearest_mask(v4, 4)[0], np.kron(np.eye(2), np.ones((2, 2))))


def test_fill_invalid_sets_each_tiles_valid_mean_per_band_and_leaves_whole_tiles_alone() -> None:
    """A batch mixing a whole tile, partial tiles and a tile with no valid pixel, 2 bands: each
    invalid pixel becomes its tile's valid mean of that band (a per-tile loop in float64), the
    fallback where nothing is valid; valid pixels keep their values; the input is not changed."""
    rng = np.random.default_rng(3)
    px = rng.integers(0, 4000, (4, 2, 6, 5)).astype(np.uint16)
    valid = np.ones((4, 6, 5), bool)
    valid[1, :2] = False
    valid[2] = rng.random((6, 5)) < 0.5
    valid[3] = False
    before = px.copy()
    fallback = np.array([7.0, 9.0])
    x = _fill_invalid(px, valid, fallback)
    assert x.dtype == np.float32 and x.shape == px.shape
    np.testing.assert_array_equal(px, before)
    for t in range(4):
        for b in range(2):
            ok = valid[t]
            fill = px[t, b][ok].astype(np.float64).mean() if ok.any() else fallback[b]
            np.testing.assert_array_equal(x[t, b][ok], px[t, b][ok].astype(np.float32))
            np.testing.assert_array_equal(x[t, b][~ok], np.float32(fill))
    assert _fill_invalid(px[:0], valid[:0], fallback).shape == (0, 2, 6, 5)
    # float32 tiles whose invalid pixels are NaN (how readers mark float nodata): the NaN must
    # not reach the sums; the means are the float64 means of the valid values, rounded once
    fx = rng.normal(300.0, 80.0, px.shape).astype(np.float32)
    fx[~np.broadcast_to(valid[:, None], fx.shape)] = np.nan
    y = _fill_invalid(fx, valid, fallback)
    assert np.isfinite(y).all()
    for t in range(4):
        for b in range(2):
            ok = valid[t]
            fill = fx[t, b][ok].astype(np.float64).mean() if ok.any() else fallback[b]
            np.testing.assert_array_equal(y[t, b][~ok], np.float32(fill))
