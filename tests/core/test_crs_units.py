"""Metre tile sizes measured from the CRS's own geometry (Mars, Moon, Earth).

Every expected value is a closed-form oracle written out by hand below (map projection scale
factors, radii of curvature), never a call into the code under test. Tolerance: rel=1e-6
unless stated. The code measures a central difference over a short step, whose truncation error
is ~(step/R)^2 ~ 1e-9, plus PROJ round-off ~1e-10; 1e-6 leaves margin yet still fails on any
real mistake (a wrong radius, a missing cos(lat), a wrong ellipsoid: all >= 1e-3).
"""

from __future__ import annotations

import math

import pytest
import rasterio
from osgeo import osr

from analog_plugin.core import crs_units
from analog_plugin.core.crs_units import crs_info, pixel_size_m, tile_size_pixels
from analog_plugin.core.errors import TilingError
from tests.core.conftest import MARS_TIF

MARS_R = 3_396_190.0
MOON_R = 1_737_400.0
MARS_2000_RF = 169.894447223612  # IAU Mars 2000 ellipsoid, a = 3 396 190 m
WGS84_A = 6_378_137.0
WGS84_RF = 298.257223563
REL = 1e-6
LATS = (0.0, 60.0, 85.0)


def _wkt(proj4: str) -> str:
    srs = osr.SpatialReference()
    assert srs.ImportFromProj4(proj4) == 0, proj4
    return str(srs.ExportToWkt())


def _geo(deg_px: float, lat: float) -> tuple[tuple[float, ...], float, float]:
    """North-up geographic transform and the (col, row) whose map point is (lon 10, lat)."""
    return (deg_px, 0.0, 10.0, 0.0, -deg_px, 0.0), 0.0, -lat / deg_px


def _proj(px: float, x: float, y: float) -> tuple[tuple[float, ...], float, float]:
    """North-up projected transform with pixel (0, 0) at map point (x, y)."""
    return (px, 0.0, x, 0.0, -px, y), 0.0, 0.0


def _radii(a: float, rf: float, lat_deg: float) -> tuple[float, float]:
    """Meridional M(phi) and prime-vertical N(phi) radii of curvature of an ellipsoid."""
    f = 1.0 / rf if rf else 0.0
    e2 = f * (2.0 - f)
    s2 = math.sin(math.radians(lat_deg)) ** 2
    n = a / math.sqrt(1.0 - e2 * s2)
    m = a * (1.0 - e2) / (1.0 - e2 * s2) ** 1.5
    return m, n


# --- geographic CRSs: deg * pi/180 * R, times cos(lat) east-west -------------------------------


@pytest.mark.parametrize("radius", [MARS_R, MOON_R], ids=["mars", "moon"])
@pytest.mark.parametrize("lat", LATS)
def test_geographic_sphere(radius: float, lat: float) -> None:
    wkt = _wkt(f"+proj=longlat +R={radius} +no_defs")
    transform, col, row = _geo(0.01, lat)
    mx, my = pixel_size_m(wkt, transform, col, row)
    ns = 0.01 * math.pi / 180 * radius
    assert mx == pytest.approx(ns * math.cos(math.radians(lat)), rel=REL)
    assert my == pytest.approx(ns, rel=REL)


def test_earth_wgs84_geographic_at_60() -> None:
    wkt = _wkt("+proj=longlat +ellps=WGS84 +no_defs")
    transform, col, row = _geo(0.01, 60.0)
    m, n = _radii(WGS84_A, WGS84_RF, 60.0)
    dang = math.radians(0.01)
    mx, my = pixel_size_m(wkt, transform, col, row)
    assert mx == pytest.approx(n * math.cos(math.radians(60.0)) * dang, rel=REL)  # 557.6 m
    assert my == pytest.approx(m * dang, rel=REL)  # 1111.7 m


def test_mars_ellipsoid_flattening_comes_from_the_crs() -> None:
    wkt = _wkt(f"+proj=longlat +a={MARS_R} +rf={MARS_2000_RF} +no_defs")
    transform, col, row = _geo(0.01, 60.0)
    m, n = _radii(MARS_R, MARS_2000_RF, 60.0)
    dang = math.radians(0.01)
    mx, my = pixel_size_m(wkt, transform, col, row)
    assert mx == pytest.approx(n * 0.5 * dang, rel=REL)
    assert my == pytest.approx(m * dang, rel=REL)  # a sphere would be 0.4 % off


def test_real_mars_raster_equator_and_60() -> None:
    with rasterio.open(MARS_TIF) as ds:
        wkt, transform, res = ds.crs.to_wkt(), ds.transform, ds.res
    assert crs_info(wkt).semi_major_m == MARS_R
    assert res == (0.3515625, 0.3515625)
    px = 0.3515625 * math.pi / 180 * MARS_R  # 20 838.76 m, not Earth's 39 137 m
    eq_row = (transform.f - 0.0) / -transform.e  # row of latitude 0 (256)
    mx, my = pixel_size_m(wkt, transform, 512.5, eq_row)
    assert (mx, my) == (pytest.approx(px, rel=REL), pytest.approx(px, rel=REL))
    # 5e-6: across a 0.35 deg pixel the great-circle step is shorter than the parallel arc by
    # dlon^2 sin^2(lat) / 24 = 1.2e-6 at 60 deg.
    mx60, my60 = pixel_size_m(wkt, transform, 512.5, (transform.f - 60.0) / -transform.e)
    assert mx60 == pytest.approx(px * 0.5, rel=5e-6)
    assert my60 == pytest.approx(px, rel=REL)
    assert tile_size_pixels(32 * px, "metres", wkt, transform, 512.5, eq_row) == (32, 32)


def test_one_sided_step_half_a_pixel_from_the_pole() -> None:
    """Central end point would be at 90.003 deg; falls back to a forward step."""
    wkt = _wkt(f"+proj=longlat +R={MARS_R} +no_defs")
    _, my = pixel_size_m(wkt, (0.01, 0.0, 0.0, 0.0, -0.01, 90.0), 0.0, 0.2)
    assert my == pytest.approx(0.01 * math.pi / 180 * MARS_R, rel=REL)


# --- equirectangular: x = R cos(lat_ts) lon, y = R lat -> ground x = px cos(lat)/cos(lat_ts) ----


@pytest.mark.parametrize("radius", [MARS_R, MOON_R], ids=["mars", "moon"])
@pytest.mark.parametrize("lat_ts", [0.0, 30.0])
@pytest.mark.parametrize("lat", LATS)
def test_equirectangular(radius: float, lat_ts: float, lat: float) -> None:
    wkt = _wkt(f"+proj=eqc +lat_ts={lat_ts} +R={radius} +units=m +no_defs")
    transform, col, row = _proj(100.0, 0.0, radius * math.radians(lat))
    mx, my = pixel_size_m(wkt, transform, col, row)
    expected_x = 100.0 * math.cos(math.radians(lat)) / math.cos(math.radians(lat_ts))
    assert mx == pytest.approx(expected_x, rel=REL)  # lat_ts=0, 60 deg: 50 m, not 100
    assert my == pytest.approx(100.0, rel=REL)


def test_equirectangular_on_mars_ellipsoid_at_equator() -> None:
    """PROJ's ellipsoidal eqc is x = a lon, y = a lat: a 100 m step in y is M(0)/a * 100 m."""
    wkt = _wkt(f"+proj=eqc +lat_ts=0 +a={MARS_R} +rf={MARS_2000_RF} +units=m +no_defs")
    f = 1.0 / MARS_2000_RF
    mx, my = pixel_size_m(wkt, *_proj(100.0, 0.0, 0.0))
    assert mx == pytest.approx(100.0, rel=REL)  # N(0) = a
    assert my == pytest.approx(100.0 * (1.0 - f * (2.0 - f)), rel=REL)  # M(0) = a (1 - e2)


def test_projected_unit_feet() -> None:
    wkt = _wkt(f"+proj=eqc +lat_ts=0 +R={MARS_R} +units=us-ft +no_defs")
    mx, my = pixel_size_m(wkt, *_proj(100.0, 0.0, 0.0))
    assert (mx, my) == (pytest.approx(120000 / 3937, rel=REL),) * 2


def test_utm_central_meridian_scale() -> None:
    """UTM on the central meridian has scale k0 = 0.9996: a 0.25 m pixel is 0.2501 m."""
    utm = rasterio.crs.CRS.from_epsg(32633).to_wkt()
    mx, my = pixel_size_m(utm, *_proj(0.25, 500_000.0, 0.0))
    assert (mx, my) == (pytest.approx(0.25 / 0.9996, rel=REL),) * 2
    assert tile_size_pixels(100, "metres", utm, *_proj(0.25, 500_000.0, 0.0)) == (400, 400)


# --- polar stereographic on a sphere ---------------------------------------------------------
# With true scale at lat_ts = c: rho = R (1 + sin c) tan(45 - lat/2), and the scale along the
# parallel is k = rho / (R cos lat); as tan(45 - lat/2) = cos lat / (1 + sin lat),
# k = (1 + sin c) / (1 + sin lat) (conformal, so the same along the meridian). lat_ts=90:
# rho = 2R tan((90 - lat)/2), k = 2 / (1 + sin lat). A 100 m map pixel is 100 / k on the ground.


@pytest.mark.parametrize("lat_ts", [90.0, 70.0])
@pytest.mark.parametrize("lat", [60.0, 85.0, 90.0])
def test_polar_stereographic(lat_ts: float, lat: float) -> None:
    wkt = _wkt(f"+proj=stere +lat_0=90 +lat_ts={lat_ts} +R={MARS_R} +units=m +no_defs")
    sin_c, sin_lat = math.sin(math.radians(lat_ts)), math.sin(math.radians(lat))
    rho = MARS_R * (1 + sin_c) * math.tan(math.radians(45.0 - lat / 2))
    k = (1 + sin_c) / (1 + sin_lat)
    mx, my = pixel_size_m(wkt, *_proj(100.0, rho, 0.0))
    assert mx == pytest.approx(100.0 / k, rel=REL)  # lat_ts=90: 93.30 m at 60, 99.81 at 85
    assert my == pytest.approx(100.0 / k, rel=REL)


def test_polar_stereographic_tiny_pixels_at_the_pole() -> None:
    """hypot(M dphi, N cos(phi) dlon) is pi/2 too large at the pole; PROJ's spherical inverse
    also loses precision there for sub-metre steps (0.8 % at 0.25 m)."""
    wkt = _wkt(f"+proj=stere +lat_0=90 +lat_ts=90 +R={MARS_R} +units=m +no_defs")
    mx, my = pixel_size_m(wkt, *_proj(0.25, 0.0, 0.0))
    assert (mx, my) == (pytest.approx(0.25, rel=REL),) * 2


# --- rotated geotransforms -------------------------------------------------------------------


def _rotated(px: float, theta_deg: float, x: float, y: float) -> tuple[float, ...]:
    """Column step (px cos t, px sin t), row step (px sin t, -px cos t), pixel (0, 0) at (x, y)."""
    c, s = math.cos(math.radians(theta_deg)), math.sin(math.radians(theta_deg))
    return (px * c, px * s, x, px * s, -px * c, y)


def test_rotation_does_not_change_a_conformal_scale() -> None:
    wkt = _wkt(f"+proj=stere +lat_0=90 +lat_ts=90 +R={MARS_R} +units=m +no_defs")
    rho = 2 * MARS_R * math.tan(math.radians(15.0))  # 60 deg
    ground = 100.0 * (1 + math.sin(math.radians(60.0))) / 2
    for theta in (0.0, 30.0, 137.0):
        mx, my = pixel_size_m(wkt, _rotated(100.0, theta, rho, 0.0), 0.0, 0.0)
        assert (mx, my) == (pytest.approx(ground, rel=REL),) * 2


def test_rotation_in_equirectangular_at_60() -> None:
    """Ground = hypot(dx cos 60, dy): 90 deg swaps (50, 100); 30 deg gives hypot(43.3, 50)."""
    wkt = _wkt(f"+proj=eqc +lat_ts=0 +R={MARS_R} +units=m +no_defs")
    y60 = MARS_R * math.radians(60.0)
    mx, my = pixel_size_m(wkt, _rotated(100.0, 90.0, 0.0, y60), 0.0, 0.0)
    assert (mx, my) == (pytest.approx(100.0, rel=REL), pytest.approx(50.0, rel=REL))
    mx, my = pixel_size_m(wkt, _rotated(100.0, 30.0, 0.0, y60), 0.0, 0.0)
    c30, s30 = math.cos(math.radians(30.0)), 0.5
    assert mx == pytest.approx(math.hypot(100 * c30 * 0.5, 100 * s30), rel=REL)  # 66.14 m
    assert my == pytest.approx(math.hypot(100 * s30 * 0.5, 100 * c30), rel=REL)  # 90.14 m


# --- tile_size_pixels and errors -------------------------------------------------------------


def test_tile_size_metres_to_pixels_at_60() -> None:
    wkt = _wkt(f"+proj=eqc +lat_ts=0 +R={MARS_R} +units=m +no_defs")
    transform, col, row = _proj(100.0, 0.0, MARS_R * math.radians(60.0))
    assert tile_size_pixels(5000, "metres", wkt, transform, col, row) == (100, 50)
    assert tile_size_pixels(5000, "M", wkt, transform, col, row) == (100, 50)
    assert tile_size_pixels(5000, "meters", wkt, transform, col, row) == (100, 50)
    assert tile_size_pixels(5000, "metres", wkt, *_proj(100.0, 0.0, 0.0)) == (50, 50)
    assert tile_size_pixels(1, "metres", wkt, transform, col, row) == (1, 1)  # never 0


def test_pixel_units_pass_through() -> None:
    assert tile_size_pixels(48, "pixels") == (48, 48)
    assert tile_size_pixels(48.0, " PX ") == (48, 48)
    assert tile_size_pixels(7, "pixel", "not even a CRS") == (7, 7)
    with pytest.raises(TilingError, match="whole number"):
        tile_size_pixels(12.5, "pixels")
    with pytest.raises(TilingError, match="unknown"):
        tile_size_pixels(100, "furlongs")
    with pytest.raises(TilingError, match="> 0"):
        tile_size_pixels(0, "metres", "EPSG:32633")


LOCAL_WKT = 'LOCAL_CS["lab bench",UNIT["metre",1]]'
ENG_WKT = (
    'ENGCRS["eng",EDATUM["d"],CS[Cartesian,2],AXIS["x",east,LENGTHUNIT["metre",1]],'
    'AXIS["y",north,LENGTHUNIT["metre",1]]]'
)
GEOCENTRIC_WKT = 'GEOCCS["g",DATUM["D",SPHEROID["S",3396190,0]],PRIMEM["G",0],UNIT["metre",1]]'
ORTHO = f"+proj=ortho +lat_0=90 +lon_0=0 +R={MARS_R} +units=m +no_defs"


@pytest.mark.parametrize(
    ("crs", "transform", "col", "match"),
    [
        ("", (1, 0, 0, 0, -1, 0), 0.0, "no CRS"),
        (LOCAL_WKT, (1, 0, 0, 0, -1, 0), 0.0, "neither geographic nor projected"),
        (ENG_WKT, (1, 0, 0, 0, -1, 0), 0.0, "neither geographic nor projected"),
        (GEOCENTRIC_WKT, (1, 0, 0, 0, -1, 0), 0.0, "neither geographic nor projected"),
        (ORTHO, (100, 0, 2 * MARS_R, 0, -100, 0), 0.0, "outside the CRS's valid area"),
        (ORTHO, (100, 0, 0, 0, -100, 0), math.nan, "not finite"),
        (ORTHO, (100, 0, 0, 0, 0, 0), 0.0, "degenerate"),
        # inverse eqc returns latitude 114.6 deg here instead of failing
        ("+proj=eqc +R=3396190", (100, 0, 0, 0, -100, 2 * MARS_R), 0.0, "valid area"),
        ("nonsense CRS", (1, 0, 0, 0, -1, 0), 0.0, "cannot parse"),
    ],
)
def test_errors_say_give_pixels(
    crs: str, transform: tuple[float, ...], col: float, match: str
) -> None:
    wkt = _wkt(crs) if crs.startswith("+proj") else crs
    with pytest.raises(TilingError, match=match) as err:
        tile_size_pixels(1000, "metres", wkt, transform, col, 0.0)
    assert "pixels" in str(err.value)


def test_outside_domain_message_names_the_point() -> None:
    with pytest.raises(TilingError) as err:
        pixel_size_m(_wkt(ORTHO), (100, 0, 2 * MARS_R, 0, -100, 0), 3.0, 4.0)
    msg = str(err.value)
    assert "pixel (3, 4)" in msg and "6.79268e+06" in msg and "TILE_SIZE in pixels" in msg


def test_parsed_crs_is_cached_per_wkt() -> None:
    wkt = _wkt(f"+proj=eqc +lat_ts=0 +R={MOON_R} +units=m +no_defs")
    crs_units._geometry.cache_clear()
    for row in range(5):
        pixel_size_m(wkt, (100, 0, 0, 0, -100, 0), 0.0, float(row))
    info = crs_units._geometry.cache_info()
    assert (info.misses, info.hits) == (1, 4)
