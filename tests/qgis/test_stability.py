"""Hardening through Processing: every algorithm 50 times in one QGIS process (as a batch or a
long session would), with a bound on memory growth; vector and DEM inputs in another CRS
(reprojected) or on another body (refused with a message that says so).

Memory is the process's resident set (VmRSS) after a warm-up of WARM_UP runs and after the 50th:
a leak of a layer, a model session or a GDAL dataset per run shows as megabytes per run.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qgis.core import QgsFeature, QgsGeometry, QgsProcessingException, QgsVectorLayer

from tests.core.conftest import write_raster
from tests.qgis.conftest import _write_png, half_image

RUNS = 50
WARM_UP = 10
GROWTH_BOUND_MB = 25.0
"""Allowed VmRSS growth between run WARM_UP and run RUNS (40 runs). Measured: 0-2 MB for every
algorithm but ranksites, +19 MB: when SCORES is given as a file path, QGIS's own loading of that
vector layer costs ~0.45 MB per run for the first ~60 runs of a process, then nothing (200 more
runs: +0.0 MB); with a loaded layer object, or through core alone, it is flat. One leaked model
session or library per run would add several MB per run and exceed the bound."""
MARS_LONLAT = "+proj=longlat +R=3396190 +no_defs"
MARS_EQC = "+proj=eqc +R=3396190 +no_defs"
MOON_LONLAT = "+proj=longlat +R=1737400 +no_defs"


def run(alg: str, params: dict[str, Any]) -> dict[str, Any]:
    import processing

    return processing.run(alg, params)


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return math.nan


@pytest.fixture(scope="module")
def data(provider: Any, models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
         ) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("stability")
    for name, m in (("bright", 0.75), ("dark", 0.25)):
        _write_png(d / "ex" / name / f"{name}.png", half_image(m))
    lib = d / "lib.gpkg"
    run("analog:buildlibrary", {"IMAGE_FOLDER": str(d / "ex"), "MODEL": str(models["mean"]),
                                "OUTPUT": str(lib)})
    rng = np.random.default_rng(0)
    raster = write_raster(d / "scene.tif", (rng.random((128, 128)) * 200).astype(np.float32))
    scores = d / "scores.gpkg"
    run("analog:scoretiles", {"INPUT": str(raster), "LIBRARY": str(lib), "TILE_SIZE": 32,
                              "MODEL": str(models["mean"]), "OUTPUT": str(scores)})
    mars = mars_scores(d)
    from rasterio.transform import from_origin

    dem = write_raster(d / "dem.tif", np.zeros((200, 300), np.float32), crs=MARS_LONLAT,
                       transform=from_origin(0.0, 2.0, 0.01, 0.01))
    return {"dir": d, "lib": lib, "raster": raster, "scores": scores, "mars": mars, "dem": dem,
            "model": models["mean"]}


def mars_scores(d: Path) -> Path:
    """0.1 deg tiles on the Mars sphere with a 0.9 blob at (1.5 E, 1 N)."""
    from osgeo import ogr, osr

    srs = osr.SpatialReference()
    srs.ImportFromProj4(MARS_LONLAT)
    path = d / "mars_scores.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer("scores", srs, ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("score", ogr.OFTReal))
    for x in np.arange(0, 3, 0.1):
        for y in np.arange(0, 2, 0.1):
            f = ogr.Feature(lyr.GetLayerDefn())
            f.SetField("score", 0.9 if math.hypot(x + 0.05 - 1.5, y + 0.05 - 1.0) < 0.4 else 0.3)
            f.SetGeometry(ogr.CreateGeometryFromWkt(
                f"POLYGON(({x} {y},{x + .1} {y},{x + .1} {y + .1},{x} {y + .1},{x} {y}))"))
            lyr.CreateFeature(f)
    f = lyr = ds = None
    return path


def zones(crs: str, wkt: str) -> QgsVectorLayer:
    layer = QgsVectorLayer(f"Polygon?crs=proj4:{crs}", "zones", "memory")
    feat = QgsFeature()
    feat.setGeometry(QgsGeometry.fromWkt(wkt))
    layer.dataProvider().addFeatures([feat])
    return layer


def jobs(d: dict[str, Any]) -> dict[str, Callable[[int], Any]]:
    out = d["dir"]
    common = {"LIBRARY": str(d["lib"]), "MODEL": str(d["model"]), "TILE_SIZE": 32}
    return {
        "buildlibrary": lambda i: run("analog:buildlibrary", {
            "IMAGE_FOLDER": str(out / "ex"), "MODEL": str(d["model"]),
            "OUTPUT": str(out / "r_lib.gpkg")}),
        "scoretiles": lambda i: run("analog:scoretiles", {
            "INPUT": str(d["raster"]), **common, "OUTPUT": str(out / "r_scores.gpkg"),
            "OUTPUT_HEATMAP": str(out / "r_heat.tif")}),
        "classifylandforms": lambda i: run("analog:classifylandforms", {
            "INPUT": str(d["raster"]), **common, "SMOOTH": "mrf",
            "OUTPUT": str(out / "r_landforms.gpkg")}),
        "comparetiles": lambda i: run("analog:comparetiles", {
            "IMAGE_A": str(out / "ex" / "bright" / "bright.png"),
            "IMAGE_B": str(out / "ex" / "dark" / "dark.png"), "MODEL": str(d["model"])}),
        "ranksites": lambda i: run("analog:ranksites", {
            "SCORES": str(d["mars"]), "DEM": str(d["dem"]), "MAX_SLOPE": 5, "COUNT": 2,
            "ELLIPSE_MAJOR_KM": 20, "ELLIPSE_MINOR_KM": 7, "OUTPUT": str(out / "r_sites.gpkg")}),
        "diagnostics": lambda i: run("analog:diagnostics", {"MODEL": str(d["model"])}),
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", ["buildlibrary", "scoretiles", "classifylandforms",
                                  "comparetiles", "ranksites", "diagnostics"])
def test_fifty_runs_in_one_process_do_not_grow_memory(data: dict[str, Any], name: str,
                                                      record_property: Any) -> None:
    job = jobs(data)[name]
    before = 0.0
    for i in range(RUNS):
        job(i)
        if i + 1 == WARM_UP:
            gc.collect()
            before = rss_mb()
    gc.collect()
    growth = rss_mb() - before
    record_property("rss_growth_mb", round(growth, 1))
    print(f"{name}: VmRSS growth runs {WARM_UP}->{RUNS}: {growth:+.1f} MB (now {rss_mb():.0f} MB)")
    assert growth < GROWTH_BOUND_MB, f"{name}: +{growth:.1f} MB over {RUNS - WARM_UP} runs"


# ---- layers in another CRS or on another body ------------------------------------------------

def test_exclusion_zone_in_another_crs_is_reprojected(data: dict[str, Any]) -> None:
    """The blob excluded by a zone drawn in Mars equirectangular metres: no site touches it."""
    deg = 3396190 * math.pi / 180
    x0, x1, y0, y1 = 1.0 * deg, 2.0 * deg, 0.5 * deg, 1.5 * deg
    zone = zones(MARS_EQC, f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))")
    out = data["dir"] / "sites_eqc.gpkg"
    run("analog:ranksites", {"SCORES": str(data["mars"]), "EXCLUDE": zone, "COUNT": 3,
                             "ELLIPSE_MAJOR_KM": 20, "ELLIPSE_MINOR_KM": 7, "OUTPUT": str(out)})
    box = QgsGeometry.fromWkt("POLYGON((1 0.5,2 0.5,2 1.5,1 1.5,1 0.5))")
    sites = QgsVectorLayer(f"{out}|layername=sites", "sites", "ogr")
    assert sites.featureCount() == 3
    assert not any(s.geometry().intersects(box) for s in sites.getFeatures())


def test_exclusion_zone_on_another_body_is_refused(data: dict[str, Any]) -> None:
    zone = zones(MOON_LONLAT, "POLYGON((1 0.5,2 0.5,2 1.5,1 1.5,1 0.5))")
    out = data["dir"] / "sites_moon.gpkg"
    with pytest.raises(QgsProcessingException, match="different celestial bodies"):
        run("analog:ranksites", {"SCORES": str(data["mars"]), "EXCLUDE": zone,
                                 "OUTPUT": str(out)})
    assert not out.exists()


def test_dem_on_another_body_is_refused(data: dict[str, Any]) -> None:
    from rasterio.transform import from_origin

    moon_dem = write_raster(data["dir"] / "moon_dem.tif", np.zeros((200, 300), np.float32),
                            crs=MOON_LONLAT, transform=from_origin(0.0, 2.0, 0.01, 0.01))
    with pytest.raises(QgsProcessingException, match="same body"):
        run("analog:ranksites", {"SCORES": str(data["mars"]), "DEM": str(moon_dem),
                                 "MAX_SLOPE": 5, "OUTPUT": str(data["dir"] / "s_md.gpkg")})


def test_mask_in_another_crs_is_reprojected(data: dict[str, Any]) -> None:
    """A lon/lat mask over the UTM raster's top-left 64 x 64 px keeps its 4 tiles of 32 px."""
    from pyproj import Transformer

    to_geo = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    ring = [to_geo.transform(x, y) for x, y in ((500000, 3999360), (500640, 3999360),
                                                 (500640, 4000000), (500000, 4000000))]
    wkt = "POLYGON((" + ",".join(f"{x} {y}" for x, y in [*ring, ring[0]]) + "))"
    mask = QgsVectorLayer("Polygon?crs=EPSG:4326", "mask", "memory")
    feat = QgsFeature()
    feat.setGeometry(QgsGeometry.fromWkt(wkt))
    mask.dataProvider().addFeatures([feat])
    res = run("analog:scoretiles", {"INPUT": str(data["raster"]), "LIBRARY": str(data["lib"]),
                                    "MODEL": str(data["model"]), "TILE_SIZE": 32, "MASK": mask,
                                    "MIN_VALID": 0.9, "OUTPUT": str(data["dir"] / "m.gpkg")})
    assert res["N_SCORED"] == 4


def test_mask_on_another_body_is_refused(data: dict[str, Any]) -> None:
    mask = zones(MOON_LONLAT, "POLYGON((0 0,1 0,1 1,0 1,0 0))")
    with pytest.raises(QgsProcessingException, match="different celestial bodies"):
        run("analog:scoretiles", {"INPUT": str(data["raster"]), "LIBRARY": str(data["lib"]),
                                  "MODEL": str(data["model"]), "TILE_SIZE": 32, "MASK": mask,
                                  "OUTPUT": str(data["dir"] / "mm.gpkg")})
