"""Windowed reads: padding, nodata, dtypes, masks, decimation, the per-layer stretch."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from osgeo import ogr

from analog_plugin.core.errors import RasterReadError
from analog_plugin.core.image_files import read_image_file
from analog_plugin.core.preprocess import prepare_image, unit_contract
from analog_plugin.core.raster_reader import RasterSource, decimated_shape
from analog_plugin.core.tiling import PixelWindow
from analog_plugin.core.wkb_geometry import geometries_to_geojson
from tests.core.conftest import MARS_TIF, RGB_TIF, MakeRaster


def test_edge_tile_padding_valid_frac_exact(make_raster: MakeRaster) -> None:
    a = np.arange(70 * 100, dtype=np.uint16).reshape(70, 100) + 1
    with RasterSource(make_raster(a)) as src:
        td = src.read_window(PixelWindow(72, 48, 32, 32))
    # inside: cols 72..99 (28), rows 48..69 (22)
    assert td.valid_frac == pytest.approx(28 * 22 / (32 * 32), abs=0)
    assert td.valid[:22, :28].all() and not td.valid[22:, :].any() and not td.valid[:, 28:].any()
    np.testing.assert_array_equal(td.pixels[0, :22, :28], a[48:70, 72:100])
    assert (td.pixels[0, 22:, :] == 0).all()


def test_window_completely_outside(make_raster: MakeRaster) -> None:
    with RasterSource(make_raster(np.ones((10, 10), np.uint8))) as src:
        td = src.read_window(PixelWindow(20, 20, 5, 5))
    assert td.valid_frac == 0.0 and td.pixels.shape == (1, 5, 5)


@pytest.mark.parametrize(
    ("dtype", "nodata"),
    [(np.uint8, 0), (np.uint16, 65535), (np.int16, -32768), (np.float32, -9999.0)],
)
def test_nodata_lowers_valid_frac(make_raster: MakeRaster, dtype: type, nodata: float) -> None:
    a = np.full((16, 16), 7, dtype=dtype)
    a[:4, :] = nodata  # 64 of 256 pixels
    with RasterSource(make_raster(a, nodata=nodata)) as src:
        td = src.read_window(PixelWindow(0, 0, 16, 16))
    assert td.valid_frac == 0.75
    assert not td.valid[:4].any() and td.valid[4:].all()


def test_float_nan_is_invalid_without_nodata(make_raster: MakeRaster) -> None:
    a = np.full((10, 10), 3.5, np.float32)
    a[0, :5] = np.nan
    a[1, 0] = np.inf
    with RasterSource(make_raster(a)) as src:
        td = src.read_window(PixelWindow(0, 0, 10, 10))
        st = src.layer_stats()
    assert td.valid_frac == pytest.approx(94 / 100)
    assert np.isfinite(st.low[0]) and np.isfinite(st.high[0])
    x = prepare_image(td.pixels, unit_contract(8), td.valid, st)
    assert np.isfinite(x).all()


def test_stretch_excludes_nodata_and_uses_percentiles(make_raster: MakeRaster) -> None:
    a = np.tile(np.arange(100, dtype=np.uint16), (100, 1)) + 1000  # 1000..1099 uniform
    a[:50, :] = 0  # half nodata: must not pull the low percentile to 0
    with RasterSource(make_raster(a, nodata=0)) as src:
        st = src.layer_stats()
    vals = np.arange(1000, 1100, dtype=float)
    assert st.low[0] == pytest.approx(np.percentile(np.tile(vals, 50), 2))
    assert st.high[0] == pytest.approx(np.percentile(np.tile(vals, 50), 98))


def test_stretch_decimated_read_for_large_raster(make_raster: MakeRaster) -> None:
    a = np.tile(np.linspace(0, 1000, 3000, dtype=np.float32), (40, 1))
    with RasterSource(make_raster(a)) as src:
        st = src.layer_stats(max_side=1024)
    assert st.low[0] == pytest.approx(20, abs=2)
    assert st.high[0] == pytest.approx(980, abs=2)


def test_band_selection_and_bad_band() -> None:
    with RasterSource(RGB_TIF, bands=[3, 1]) as src:
        td = src.read_window(PixelWindow(0, 0, 8, 8))
        assert td.pixels.shape == (2, 8, 8)
    with RasterSource(RGB_TIF) as src:
        full = src.read_window(PixelWindow(0, 0, 8, 8))
    np.testing.assert_array_equal(td.pixels[0], full.pixels[2])
    with pytest.raises(RasterReadError, match=r"band\(s\) \[4\].*3 band"):
        RasterSource(RGB_TIF, bands=[4])


def test_missing_raster() -> None:
    with pytest.raises(RasterReadError, match="does not exist"):
        RasterSource("/nonexistent/x.tif")


def test_decimated_read_of_large_window(make_raster: MakeRaster) -> None:
    assert decimated_shape(64, 64, 32) is None
    assert decimated_shape(400, 200, 32) == (32, 64)
    a = np.zeros((400, 400), np.float32)
    a[:, 200:] = 1.0
    with RasterSource(make_raster(a)) as src:
        td = src.read_window(PixelWindow(0, 0, 400, 400), out_shape=(64, 64))
    assert td.pixels.shape == (1, 64, 64)
    assert td.pixels[0, :, :32].max() == 0 and td.pixels[0, :, 32:].min() == 1
    assert td.valid_frac == 1.0


def test_decimated_edge_window_padding(make_raster: MakeRaster) -> None:
    with RasterSource(make_raster(np.ones((100, 100), np.uint8))) as src:
        td = src.read_window(PixelWindow(0, 50, 100, 100), out_shape=(10, 10))
    assert td.valid_frac == pytest.approx(0.5)
    assert td.valid[:5].all() and not td.valid[5:].any()


def test_mask_polygons_lower_valid_frac(make_raster: MakeRaster) -> None:
    # UTM raster, origin (500000, 4000000), 10 m pixels; mask the left half of a 20x20 window
    path = make_raster(np.ones((20, 20), np.uint8))
    poly = ogr.CreateGeometryFromWkt(
        "POLYGON((500000 3999800, 500100 3999800, 500100 4000000, 500000 4000000, "
        "500000 3999800))"
    )
    shapes = geometries_to_geojson([bytes(poly.ExportToWkb())])
    with RasterSource(path) as src:
        td = src.read_window(PixelWindow(0, 0, 20, 20), mask_shapes=shapes)
    assert td.valid_frac == 0.5
    assert td.valid[:, :10].all() and not td.valid[:, 10:].any()


def test_mars_raster_info() -> None:
    with RasterSource(MARS_TIF) as src:
        assert (src.info.width, src.info.height, src.info.nodata) == (1024, 512, 0.0)
        assert "Mars" in src.info.crs_wkt
        assert src.info.center_y == pytest.approx(0.0)


def test_read_image_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import rasterio

    rgba = np.zeros((4, 12, 10), np.uint8)
    rgba[:3] = 100
    rgba[3, :, :5] = 255  # left half opaque
    p = tmp_path / "x.png"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(p, "w", driver="PNG", width=10, height=12, count=4,
                           dtype="uint8") as ds:
            ds.write(rgba)
    pixels, valid = read_image_file(p)
    assert pixels.shape == (3, 12, 10)
    assert valid is not None and valid[:, :5].all() and not valid[:, 5:].any()
    gray = tmp_path / "g.jpg"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(gray, "w", driver="JPEG", width=8, height=8, count=1,
                           dtype="uint8") as ds:
            ds.write(np.full((1, 8, 8), 9, np.uint8))
    pixels, valid = read_image_file(gray)
    assert pixels.shape == (1, 8, 8) and valid is None


@pytest.mark.parametrize(("dtype", "kept"), [(np.uint8, np.uint8), (np.int16, np.int16),
                                              (np.uint16, np.uint16), (np.int32, np.float32),
                                              (np.float64, np.float32)])
def test_pixels_keep_small_integer_types(make_raster: MakeRaster, dtype: type,
                                         kept: type) -> None:
    """8/16-bit pixels travel in their own type (a quarter of the bytes), others as float32;
    edge padding too."""
    a = (np.arange(20 * 20).reshape(20, 20) % 250).astype(dtype)
    with RasterSource(make_raster(a)) as src:
        inner = src.read_window(PixelWindow(2, 3, 8, 8))
        edge = src.read_window(PixelWindow(16, 16, 8, 8))
    assert inner.pixels.dtype == kept and edge.pixels.dtype == kept
    np.testing.assert_array_equal(inner.pixels[0], a[3:11, 2:10].astype(kept))
    np.testing.assert_array_equal(edge.pixels[0, :4, :4], a[16:, 16:].astype(kept))


class _Blocks:
    """Stands in for a RasterSource: only the block geometry matters to fit_gdal_cache."""

    def __init__(self, row_mb: int, rows: int) -> None:
        self.row_mb, self.rows = row_mb, rows

    def block_row_bytes(self) -> int:
        return self.row_mb * 1024 * 1024

    def block_rows(self) -> int:
        return self.rows


@pytest.mark.parametrize(("ceiling_mb", "row_mb", "rows", "strip", "expected_mb"), [
    (200, 40, 256, 128, 80),    # a strip spans 1 block row, +1 for the next strip: 2 x 40
    (200, 10, 64, 256, 50),     # 4 block rows + 1
    (50, 40, 256, 128, 50),     # never above the limit in force before the job
    (200, 2, 256, 128, 16),     # small block rows: the job's bound stays
])
def test_fit_gdal_cache_makes_room_for_a_strip(ceiling_mb: int, row_mb: int, rows: int,
                                               strip: int, expected_mb: int) -> None:
    from osgeo import gdal

    from analog_plugin.core.gdal_cache import bounded_gdal_cache, fit_gdal_cache

    before = gdal.GetCacheMax()
    gdal.SetCacheMax(ceiling_mb * 1024 * 1024)
    try:
        with bounded_gdal_cache(16) as ceiling:
            assert ceiling == ceiling_mb * 1024 * 1024
            fit_gdal_cache(_Blocks(row_mb, rows), strip, ceiling)
            assert gdal.GetCacheMax() == expected_mb * 1024 * 1024
        assert gdal.GetCacheMax() == ceiling_mb * 1024 * 1024
    finally:
        gdal.SetCacheMax(before)


def test_block_geometry_of_a_real_raster(tmp_path: Path) -> None:
    path = tmp_path / "blocks.tif"
    with rasterio.open(path, "w", driver="GTiff", width=1000, height=600, count=2,
                       dtype="uint16", tiled=True, blockxsize=256, blockysize=128) as ds:
        ds.write(np.zeros((2, 600, 1000), np.uint16))
    with RasterSource(path, [2]) as src:
        assert src.block_rows() == 128
        assert src.block_row_bytes() == 128 * 1000 * 2  # one band of uint16


@pytest.mark.parametrize(
    ("dtype", "nodata"),
    [("Byte", 0.0), ("Byte", -9999.0), ("Byte", 7.5), ("UInt16", 65535.0), ("Int16", -32768.0),
     ("Int16", -7.5), ("Int32", -2147483648.0), ("UInt32", 4294967295.0),
     ("Float32", 0.1), ("Float32", -3.4028234663852886e38), ("Float32", -0.0),
     ("Float32", float("nan")), ("Float64", -9999.0)],
)
@pytest.mark.parametrize("bands", [1, 2])
def test_validity_matches_gdals_own_nodata_masks(tmp_path: Path, dtype: str, nodata: float,
                                                 bands: int) -> None:
    """Validity computed from the data (the nodata-only fast path) against GDAL's mask bands,
    the independent oracle: a pixel is valid where every selected band's mask says so. The
    values hold the nodata value as GDAL stores it for the type (float32(0.1), not 0.1), both
    integers around a fractional nodata (-7.5 marks the -7s, not the -8s: truncation, not
    floor), what an out-of-range nodata would wrap to (-9999 as uint8 is 241), 0.0 against
    -0.0, and NaN (which the reader marks invalid whatever the nodata). Not tested: GDAL also
    treats floats within ~5e-7 relative of nodata as nodata; the reader, as before, only exact
    values."""
    from osgeo import gdal

    gdt = getattr(gdal, f"GDT_{dtype}")
    np_type = np.dtype({"Byte": "uint8", "UInt16": "uint16", "Int16": "int16", "Int32": "int32",
                        "UInt32": "uint32", "Float32": "float32", "Float64": "float64"}[dtype])
    rng = np.random.default_rng(11)
    if np_type.kind == "f":
        pool = np.array([nodata, 0.1, 1.0, -1.0, 3.25, 0.0, -0.0, np.nan], dtype=np.float64)
        pool = pool.astype(np_type)
    else:
        info = np.iinfo(np_type)
        pool = np.array([info.min, info.max, 0, 7, 8, 1], dtype=np.int64)
        if info.min < 0:
            pool = np.append(pool, [-7, -8])
        pool = np.append(pool, -9999 % 256)  # 241: -9999 wrapped into a byte
        pool = pool.astype(np_type)
    path = tmp_path / "nd.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 40, 30, bands, gdt)
    for b in range(1, bands + 1):
        band = ds.GetRasterBand(b)
        band.WriteArray(rng.choice(pool, size=(30, 40)))
        band.SetNoDataValue(nodata)
    ds = None
    ds = gdal.Open(str(path))
    oracle = np.ones((30, 40), bool)
    for b in range(1, bands + 1):
        oracle &= ds.GetRasterBand(b).GetMaskBand().ReadAsArray() > 0
        oracle &= np.isfinite(ds.GetRasterBand(b).ReadAsArray())  # our rule on top of GDAL's
    ds = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with RasterSource(path) as src:
            whole = src.read_window(PixelWindow(0, 0, 40, 30))
            src.use_row_strips(0, 40)  # the engine's path: windows cut from row strips
            strip = src.read_window(PixelWindow(8, 5, 16, 16))
    np.testing.assert_array_equal(whole.valid, oracle)
    np.testing.assert_array_equal(strip.valid, oracle[5:21, 8:24])


def test_nodata_as_the_rasters_type_by_hand() -> None:
    """The conversion behind the fast nodata test, on values GDAL never hands it through a
    nodata-only mask (GDAL reports an out-of-range nodata as 'all valid'): out of range -> None
    (no pixel can hold it, nothing may wrap: -9999 is not uint8 241), fractions truncated
    toward zero, float32 rounding, float overflow -> None."""
    from analog_plugin.core.raster_reader import _as_dtype

    u8, i16, f32 = np.dtype("uint8"), np.dtype("int16"), np.dtype("float32")
    assert _as_dtype(-9999.0, u8) is None and _as_dtype(256.0, u8) is None
    assert _as_dtype(255.0, u8) == 255 and _as_dtype(-7.5, i16) == -7 and _as_dtype(7.9, u8) == 7
    assert _as_dtype(0.1, f32) == np.float32(0.1) and _as_dtype(1e300, f32) is None
    assert _as_dtype(-np.inf, f32) == -np.inf
