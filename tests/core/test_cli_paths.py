"""CLI (in-process), paths, and the no-qgis rule for core."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from osgeo import ogr, osr

from analog_plugin.core import cli as analog_cli
from analog_plugin.core import paths
from tests.core.conftest import MakeRaster

REPO = Path(__file__).resolve().parents[2]


def _vector(path: Path, wkts: list[tuple[str, str]], epsg: int) -> Path:
    drv = ogr.GetDriverByName("GPKG")
    ds = drv.CreateDataSource(str(path))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    lyr = ds.CreateLayer("ex", srs, ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("class_name", ogr.OFTString))
    for wkt, cls in wkts:
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetField("class_name", cls)
        f.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        lyr.CreateFeature(f)
    ds = None
    return path


def test_cli_build_and_score(tmp_path: Path, three_band_raster: Path, mean_model: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    # polygons given in WGS84-UTM 33N (= raster CRS) -> no reprojection needed
    vec = _vector(tmp_path / "ex.gpkg", [
        ("POLYGON((500640 3999680,500960 3999680,500960 4000000,500640 4000000,"
         "500640 3999680))", "high"),
    ], 32633)
    lib = tmp_path / "lib.gpkg"
    rc = analog_cli.main(["-q", "build-library", "--model", str(mean_model), "--output",
                          str(lib), "--raster", str(three_band_raster), "--polygons", str(vec),
                          "--class-field", "class_name"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"n_exemplars": 1, "classes": ["high"], "output_path": str(lib)}
    scores = tmp_path / "s.gpkg"
    rc = analog_cli.main(["-q", "score", "--model", str(mean_model), "--raster",
                          str(three_band_raster), "--library", str(lib), "--output",
                          str(scores), "--tile-size", "32", "--overlap", "0"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["n_tiles"], out["n_scored"]) == (3, 3)


def test_cli_reprojects_polygons(tmp_path: Path, make_raster: MakeRaster, mean_model: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    r = make_raster(np.full((64, 64), 5, np.uint8))
    # a polygon in EPSG:4326 around the raster's UTM 33N location (lon ~15 E, lat ~36.1 N)
    srs_utm = osr.SpatialReference()
    srs_utm.ImportFromEPSG(32633)
    srs_ll = osr.SpatialReference()
    srs_ll.ImportFromEPSG(4326)
    srs_ll.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    srs_utm.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ct = osr.CoordinateTransformation(srs_utm, srs_ll)
    g = ogr.CreateGeometryFromWkt("POLYGON((500000 3999360,500320 3999360,500320 3999680,"
                                  "500000 3999680,500000 3999360))")
    g.Transform(ct)
    vec = _vector(tmp_path / "ll.gpkg", [(g.ExportToWkt(), "rock")], 4326)
    lib = tmp_path / "lib.gpkg"
    rc = analog_cli.main(["-q", "build-library", "--model", str(mean_model), "--output",
                          str(lib), "--raster", str(r), "--polygons", str(vec),
                          "--class-field", "class_name"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["n_exemplars"] == 1


def test_cli_error_exit_code(tmp_path: Path, mean_model: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    rc = analog_cli.main(["score", "--model", str(mean_model), "--raster", "x.tif",
                          "--library", "l.gpkg", "--output", str(tmp_path / "o.shp")])
    assert rc == 1
    assert "error:" in capsys.readouterr().err


def test_paths_point_into_repo_or_plugin() -> None:
    m = paths.bundled_model_path()
    assert m.name == "analog-siamese.onnx" and m.parent.name == "models"
    assert m.parent.parent in (paths.PLUGIN_DIR, paths.REPO_ROOT)
    s = paths.style_path("scores.qml")
    assert s.parent.name == "styles" and s.parent.parent.name == "resources"


def test_core_imports_no_qgis() -> None:
    code = (
        "import sys, importlib, pkgutil\n"
        "import analog_plugin.core as c\n"
        "for m in pkgutil.iter_modules(c.__path__):\n"
        "    importlib.import_module('analog_plugin.core.' + m.name)\n"
        "bad = [m for m in sys.modules if m == 'qgis' or m.startswith('qgis.')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


PY311_ONLY = re.compile(
    r"\bdatetime\.UTC\b|from datetime import[^\n]*\bUTC\b|\btomllib\b|\bStrEnum\b"
    r"|from typing import[^\n]*\bSelf\b|\bExceptionGroup\b|\bTaskGroup\b|\bexcept\*"
)


def test_plugin_code_runs_on_python_310() -> None:
    """QGIS 3.34 embeds Python 3.10: no 3.11-only names in the plugin (ruff checks the syntax
    with a py310 target), and it compiles under 3.10 where one is installed."""
    sources = sorted((REPO / "analog_plugin").rglob("*.py"))
    bad = [f"{p.relative_to(REPO)}:{i}" for p in sources
           for i, line in enumerate(p.read_text().splitlines(), 1)
           if PY311_ONLY.search(line.split("#", 1)[0])]
    assert not bad, bad
    for py310 in [shutil.which("python3.10"), *map(str, Path("/").glob(
            "root/.pyenv/versions/3.10*/bin/python3.10"))]:
        if py310 and subprocess.run([py310, "-c", "pass"], capture_output=True).returncode == 0:
            subprocess.run([py310, "-m", "compileall", "-q", "analog_plugin"], cwd=REPO,
                           check=True)
            break
