"""Metre tile sizes from the CRS's own ellipsoid (Mars!), geographic and projected."""

from __future__ import annotations

import math

import pytest
import rasterio

from analog_plugin.core.crs_units import crs_info, pixel_size_m, tile_size_pixels
from analog_plugin.core.errors import TilingError
from tests.core.conftest import MARS_TIF, RGB_TIF

MARS_R = 3_396_190.0


def _mars_wkt() -> tuple[str, tuple[float, float]]:
    with rasterio.open(MARS_TIF) as ds:
        return ds.crs.to_wkt(), ds.res


def test_mars_radius_comes_from_the_crs() -> None:
    wkt, _ = _mars_wkt()
    info = crs_info(wkt)
    assert info.is_geographic
    assert info.semi_major_m == MARS_R


def test_mars_pixel_size_at_equator_and_latitude() -> None:
    wkt, (rx, ry) = _mars_wkt()
    assert rx == ry == 0.3515625
    expected = 0.3515625 * math.pi / 180 * MARS_R  # 20 838.76 m, not Earth's 39 137 m
    mx, my = pixel_size_m(wkt, rx, ry, center_lat=0.0)
    assert mx == pytest.approx(expected, rel=1e-12)
    assert my == pytest.approx(expected, rel=1e-12)
    mx60, my60 = pixel_size_m(wkt, rx, ry, center_lat=60.0)
    assert mx60 == pytest.approx(expected * 0.5, rel=1e-12)
    assert my60 == pytest.approx(expected, rel=1e-12)


def test_mars_tile_size_metres_to_pixels() -> None:
    wkt, (rx, ry) = _mars_wkt()
    px = 0.3515625 * math.pi / 180 * MARS_R
    assert tile_size_pixels(32 * px, "metres", wkt, rx, ry, 0.0) == (32, 32)
    # at 60 deg a metre-square tile is twice as many pixels wide
    assert tile_size_pixels(32 * px, "metres", wkt, rx, ry, 60.0) == (64, 32)


def test_earth_geographic_uses_wgs84_radius() -> None:
    with rasterio.open(RGB_TIF) as ds:
        wkt = ds.crs.to_wkt()
    mx, my = pixel_size_m(wkt, 0.0015, 0.0015, 40.0)
    assert my == pytest.approx(0.0015 * math.pi / 180 * 6_378_137.0)
    assert mx == pytest.approx(my * math.cos(math.radians(40.0)))


def test_projected_metres_and_feet() -> None:
    utm = rasterio.crs.CRS.from_epsg(32633).to_wkt()
    assert pixel_size_m(utm, 0.25, 0.25) == (0.25, 0.25)
    assert tile_size_pixels(100, "metres", utm, 0.25, 0.25) == (400, 400)
    ftus = rasterio.crs.CRS.from_epsg(2277).to_wkt()  # Texas Central, US survey feet
    mx, _ = pixel_size_m(ftus, 1.0, 1.0)
    assert mx == pytest.approx(1200 / 3937)


def test_projected_mars_crs() -> None:
    wkt = (
        'PROJCS["Mars equirectangular",GEOGCS["Mars 2000",DATUM["D_Mars_2000",'
        'SPHEROID["Mars_2000_IAU_IAG",3396190,169.894447223612]],PRIMEM["Greenwich",0],'
        'UNIT["Decimal_Degree",0.0174532925199433]],PROJECTION["Equirectangular"],'
        'PARAMETER["standard_parallel_1",0],PARAMETER["central_meridian",0],'
        'PARAMETER["false_easting",0],PARAMETER["false_northing",0],UNIT["Meter",1]]'
    )
    assert crs_info(wkt).semi_major_m == MARS_R
    assert tile_size_pixels(256, "metres", wkt, 0.5, 0.5) == (512, 512)


def test_pixels_units_and_errors() -> None:
    assert tile_size_pixels(48, "pixels") == (48, 48)
    with pytest.raises(TilingError, match="whole number"):
        tile_size_pixels(10.5, "pixels")
    with pytest.raises(TilingError, match="no CRS"):
        tile_size_pixels(100, "metres", "", 1, 1)
    with pytest.raises(TilingError, match="unknown"):
        tile_size_pixels(100, "furlongs")
    with pytest.raises(TilingError, match="> 0"):
        tile_size_pixels(0, "metres", "EPSG:32633")
