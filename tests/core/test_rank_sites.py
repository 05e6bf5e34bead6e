"""rank_sites on constructed score layers: the best ellipse lands where the scores say, and never
over exclusions, steep ground, outside the latitude band or outside the scored area.

Oracles are the construction itself: a high-score blob placed by hand, a ramp DEM whose slope is
known analytically, and ellipse areas measured in an independent equal-area projection.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from osgeo import ogr, osr

from analog_plugin.core.errors import NoSiteError, ParameterError
from analog_plugin.core.feedback import RecordingFeedback
from analog_plugin.core.rank_sites_job import rank_sites
from tests.core.conftest import write_raster

MARS_R = 3396190.0
MARS_GEO = "+proj=longlat +R=3396190 +no_defs"
DEG_KM = MARS_R * math.pi / 180 / 1000  # 59.27 km per degree on Mars


def _wkt(proj4: str) -> str:
    srs = osr.SpatialReference()
    srs.ImportFromProj4(proj4)
    return srs.ExportToWkt()


def _square(x0: float, y0: float, x1: float, y1: float) -> bytes:
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)):
        ring.AddPoint_2D(x, y)
    poly = ogr.Geometry(ogr.wkbPolygon)
    poly.AddGeometry(ring)
    return bytes(poly.ExportToWkb())


def scene(step: float = 0.05, blob: tuple[float, float] = (2.0, 1.0), radius: float = 0.35,
          lon: tuple[float, float] = (0.0, 3.0), lat: tuple[float, float] = (0.0, 2.0)
          ) -> tuple[list[bytes], list[float]]:
    """Square tiles of ``step`` degrees; score 0.9 within ``radius`` deg of ``blob``, else 0.3."""
    wkbs, scores = [], []
    for x in np.arange(lon[0], lon[1] - 1e-9, step):
        for y in np.arange(lat[0], lat[1] - 1e-9, step):
            wkbs.append(_square(x, y, x + step, y + step))
            cx, cy = x + step / 2 - blob[0], y + step / 2 - blob[1]
            scores.append(0.9 if math.hypot(cx, cy) <= radius else 0.3)
    return wkbs, scores


def read_sites(path: Path) -> list[dict[str, object]]:
    ds = ogr.Open(str(path))
    lyr = ds.GetLayer(0)
    out = []
    for f in lyr:
        row = {k: f.GetField(k) for k in ("rank", "mean_score", "frac_above", "max_slope",
                                          "mean_elevation", "lat", "lon")}
        row["geom"] = f.GetGeometryRef().Clone()
        out.append(row)
    return sorted(out, key=lambda r: r["rank"])  # type: ignore[arg-type, return-value]


def area_km2(geom: ogr.Geometry, lat0: float, lon0: float) -> float:
    """Area in an equal-area projection on the Mars sphere (independent of the code's AEQD)."""
    g = geom.Clone()
    src = osr.SpatialReference()
    src.ImportFromProj4(MARS_GEO)
    dst = osr.SpatialReference()
    dst.ImportFromProj4(f"+proj=laea +lat_0={lat0} +lon_0={lon0} +R={MARS_R}")
    for s in (src, dst):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    g.Transform(osr.CoordinateTransformation(src, dst))
    return float(g.GetArea() / 1e6)


def test_best_ellipse_sits_on_the_blob(tmp_path: Path) -> None:
    wkbs, scores = scene(radius=0.22)  # 13 km: a 20 x 7 km ellipse fits only near the middle
    res = rank_sites(wkbs, scores, _wkt(MARS_GEO), tmp_path / "s.gpkg", ellipse_major_km=20,
                     ellipse_minor_km=7, azimuth=90, count=1)
    (top,) = read_sites(tmp_path / "s.gpkg")
    assert res.n_sites == 1
    assert abs(top["lon"] - 2.0) < 0.08 and abs(top["lat"] - 1.0) < 0.15  # type: ignore[operator]
    assert top["mean_score"] == pytest.approx(0.9, abs=1e-6)  # the whole ellipse in the blob
    assert top["frac_above"] == pytest.approx(1.0)
    # 20 x 7 km: area pi * 10 * 3.5 km2 measured independently, within the 72-gon's 0.2 %
    assert area_km2(top["geom"], 1.0, 2.0) == pytest.approx(math.pi * 10 * 3.5, rel=0.01)
    env = top["geom"].GetEnvelope()  # azimuth 90: major axis east-west
    assert (env[1] - env[0]) * DEG_KM == pytest.approx(20, rel=0.02)
    assert (env[3] - env[2]) * DEG_KM == pytest.approx(7, rel=0.02)


def test_count_gives_non_overlapping_sites_in_score_order(tmp_path: Path) -> None:
    wkbs, scores = scene()
    rank_sites(wkbs, scores, _wkt(MARS_GEO), tmp_path / "s.gpkg", ellipse_major_km=20,
               ellipse_minor_km=7, azimuth=30, count=6)
    sites = read_sites(tmp_path / "s.gpkg")
    assert len(sites) == 6
    means = [s["mean_score"] for s in sites]
    assert means == sorted(means, reverse=True)  # type: ignore[type-var]
    for i, a in enumerate(sites):
        for b in sites[i + 1:]:
            assert not a["geom"].Intersects(b["geom"])  # type: ignore[attr-defined]


def test_fewer_sites_than_asked_warns(tmp_path: Path) -> None:
    """A 23.7 x 11.9 km area holds one 20 x 7 km east-west ellipse: not two side by side (40 km)
    nor two stacked (14 km > 11.9). COUNT=3 gives one site and says why, not an error."""
    wkbs, scores = scene(blob=(0.2, 0.1), radius=0.1, lon=(0.0, 0.4), lat=(0.0, 0.2))
    fb = RecordingFeedback()
    res = rank_sites(wkbs, scores, _wkt(MARS_GEO), tmp_path / "s.gpkg", ellipse_major_km=20,
                     ellipse_minor_km=7, azimuth=90, count=3, feedback=fb)
    assert res.n_sites == 1 and len(read_sites(tmp_path / "s.gpkg")) == 1
    assert any("only 1 of the 3 requested" in w for w in fb.warnings), fb.warnings


def test_exclusion_zone_is_never_touched(tmp_path: Path) -> None:
    wkbs, scores = scene()
    zone = _square(1.6, 0.6, 2.4, 1.4)  # covers the whole blob
    rank_sites(wkbs, scores, _wkt(MARS_GEO), tmp_path / "s.gpkg", exclude_wkb=[zone], count=3)
    zg = ogr.CreateGeometryFromWkb(zone)
    for s in read_sites(tmp_path / "s.gpkg"):
        assert not s["geom"].Intersects(zg)  # type: ignore[attr-defined]
        assert s["mean_score"] < 0.9  # type: ignore[operator]


def test_latitude_band_holds_on_the_whole_outline(tmp_path: Path) -> None:
    wkbs, scores = scene()
    rank_sites(wkbs, scores, _wkt(MARS_GEO), tmp_path / "s.gpkg", latitude_max=0.8,
               azimuth=0, count=3)  # azimuth 0: major axis north-south, 20 km = 0.34 deg
    for s in read_sites(tmp_path / "s.gpkg"):
        env = s["geom"].GetEnvelope()  # type: ignore[attr-defined]
        assert env[3] <= 0.8 + 1e-9
    top = read_sites(tmp_path / "s.gpkg")[0]
    assert top["lat"] < 0.8 - 10 / DEG_KM + 0.05  # type: ignore[operator]
    assert top["mean_score"] > 0.3  # type: ignore[operator]  # still partly on the blob


def test_steep_dem_area_is_avoided(tmp_path: Path) -> None:
    wkbs, scores = scene()
    # DEM on the same sphere: flat (0 m) except a ramp over lon 1.5..2.5 rising 1 km per km
    # (45 deg), which covers the blob; pixels 0.01 deg.
    px = 0.01
    lon = np.arange(0, 3, px) + px / 2
    z = np.zeros((200, 300), np.float32)
    ramp = (lon >= 1.5) & (lon <= 2.5)
    z[:, ramp] = ((lon[ramp] - 1.5) * DEG_KM * 1000).astype(np.float32)
    from rasterio.transform import from_origin
    dem = write_raster(tmp_path / "dem.tif", z, crs=MARS_GEO,
                       transform=from_origin(0.0, 2.0, px, px))
    res = rank_sites(wkbs, scores, _wkt(MARS_GEO), tmp_path / "s.gpkg", dem=str(dem),
                     max_slope=10, count=2)
    assert res.rejected["too steep"] > 0
    steep = ogr.CreateGeometryFromWkb(_square(1.5, 0.0, 2.5, 2.0))
    for s in read_sites(tmp_path / "s.gpkg"):
        assert s["max_slope"] <= 10  # type: ignore[operator]
        inner = ogr.CreateGeometryFromWkb(_square(1.55, 0.0, 2.45, 2.0))
        assert not s["geom"].Intersects(inner)  # type: ignore[attr-defined]
    # without the slope limit the ramp's 45 deg is measured right (cells on the ramp)
    res2 = rank_sites(wkbs, scores, _wkt(MARS_GEO), tmp_path / "s2.gpkg", dem=str(dem), count=1)
    (top,) = read_sites(tmp_path / "s2.gpkg")
    assert top["max_slope"] == pytest.approx(45.0, abs=1.5)
    assert res2.n_sites == 1 and steep.Intersects(top["geom"])  # type: ignore[arg-type]


def test_no_site_fits_says_why(tmp_path: Path) -> None:
    wkbs, scores = scene(lon=(0.0, 0.2), lat=(0.0, 0.2))  # 12 km square: a 20 km ellipse can't fit
    with pytest.raises(NoSiteError, match="outside the scored area"):
        rank_sites(wkbs, scores, _wkt(MARS_GEO), tmp_path / "s.gpkg")
    assert not (tmp_path / "s.gpkg").exists()


@pytest.mark.parametrize(("kw", "match"), [
    ({"ellipse_minor_km": 30}, "larger than ELLIPSE_MAJOR_KM"),
    ({"latitude_min": 10, "latitude_max": 5}, "not below LATITUDE_MAX"),
    ({"max_slope": 10}, "need a DEM"),
    ({"count": 0}, "COUNT"),
])
def test_bad_parameters(tmp_path: Path, kw: dict[str, float], match: str) -> None:
    wkbs, scores = scene(step=0.2)
    with pytest.raises(ParameterError, match=match):
        rank_sites(wkbs, scores, _wkt(MARS_GEO), tmp_path / "s.gpkg", **kw)  # type: ignore[arg-type]


def test_projected_crs_at_60_degrees_keeps_kilometres(tmp_path: Path) -> None:
    """Equirectangular with lat_ts=0 at 60 N: the map is 2x stretched east-west; the ellipse must
    still be 20 x 7 km on the ground."""
    eqc = "+proj=eqc +lat_ts=0 +lon_0=0 +R=3396190 +units=m +no_defs"
    step = 3000.0
    y0 = 60 * DEG_KM * 1000
    wkbs, scores = [], []
    for i in range(40):
        for j in range(40):
            x, y = i * step, y0 + j * step
            wkbs.append(_square(x, y, x + step, y + step))
            scores.append(0.9 if math.hypot(i - 20, j - 20) < 8 else 0.3)
    rank_sites(wkbs, scores, _wkt(eqc), tmp_path / "s.gpkg", azimuth=90, count=1)
    (top,) = read_sites(tmp_path / "s.gpkg")
    g = top["geom"].Clone()  # type: ignore[attr-defined]
    src, dst = osr.SpatialReference(), osr.SpatialReference()
    src.ImportFromProj4(eqc)
    dst.ImportFromProj4(MARS_GEO)
    for s in (src, dst):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    g.Transform(osr.CoordinateTransformation(src, dst))
    assert area_km2(g, top["lat"], top["lon"]) == pytest.approx(math.pi * 35, rel=0.01)
    env = g.GetEnvelope()  # east-west extent in degrees of longitude at ~61 N
    ew_km = (env[1] - env[0]) * DEG_KM * math.cos(math.radians(top["lat"]))  # type: ignore[arg-type]
    assert ew_km == pytest.approx(20, rel=0.03)
