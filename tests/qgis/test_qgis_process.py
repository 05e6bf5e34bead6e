"""End to end through the real ``qgis_process`` binary, with the plugin staged like `make build`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.qgis.conftest import MARS_TIF
from tests.qgis.helpers import layer_styles, qgis_process

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("qgis_process") is None, reason="qgis_process not installed"),
]


def test_list_shows_algorithms(qgis_env: dict[str, str]) -> None:
    out = qgis_process(qgis_env, "list").stdout
    assert "analog:buildlibrary" in out
    assert "analog:scoretiles" in out


def test_run_build_and_score(qgis_env: dict[str, str], models: dict[str, Path],
                             image_folder: Path, tmp_path: Path) -> None:
    lib, out = tmp_path / "lib.gpkg", tmp_path / "scores.gpkg"
    built: Any = json.loads(qgis_process(
        qgis_env, "--json", "run", "analog:buildlibrary", "--",
        f"IMAGE_FOLDER={image_folder}", f"MODEL={models['mean']}", f"OUTPUT={lib}",
    ).stdout)
    assert built["results"]["N_EXEMPLARS"] == 2
    scored: Any = json.loads(qgis_process(
        qgis_env, "--json", "run", "analog:scoretiles", "--",
        f"INPUT={MARS_TIF}", f"LIBRARY={lib}", f"MODEL={models['mean']}",
        "TILE_UNITS=pixels", "OVERLAP=0", "MIN_VALID=0", "EXTENT=0,90,0,45", f"OUTPUT={out}",
    ).stdout)
    assert scored["results"]["N_TILES"] == 32
    assert scored["results"]["N_SCORED"] == 32
    assert Path(scored["results"]["OUTPUT"]) == out
    styles = layer_styles(out)
    assert any(t == "scores" and d == 1 and "graduatedSymbol" in q for t, d, q in styles)


def test_bad_parameter_fails_without_output(qgis_env: dict[str, str], models: dict[str, Path],
                                            tmp_path: Path) -> None:
    out = tmp_path / "scores.gpkg"
    proc = subprocess.run(
        ["qgis_process", "run", "analog:scoretiles", "--", f"INPUT={MARS_TIF}",
         f"LIBRARY={tmp_path / 'none.gpkg'}", f"MODEL={models['mean']}", "OVERLAP=120",
         f"OUTPUT={out}"],
        env=qgis_env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0
    assert "OVERLAP" in proc.stdout + proc.stderr
    assert not out.exists()


def test_without_onnxruntime_plugin_loads_and_explains(
    qgis_env: dict[str, str], models: dict[str, Path], tmp_path: Path
) -> None:
    probe = subprocess.run(["/usr/bin/python3", "-c", "import onnxruntime"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("onnxruntime is installed for the system Python")
    env = {k: v for k, v in qgis_env.items() if k != "ANALOG_EXTRA_SITE"}
    assert "analog:scoretiles" in qgis_process(env, "list").stdout  # the load did not crash
    out = tmp_path / "scores.gpkg"
    proc = subprocess.run(
        ["qgis_process", "run", "analog:scoretiles", "--", f"INPUT={MARS_TIF}",
         f"LIBRARY={tmp_path / 'lib.gpkg'}", f"MODEL={models['mean']}", f"OUTPUT={out}"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0
    assert "pip install --user onnxruntime" in proc.stdout + proc.stderr
    assert not out.exists()


def test_run_classify_compare_and_rank_sites(qgis_env: dict[str, str], models: dict[str, Path],
                                             image_folder: Path, tmp_path: Path) -> None:
    """One run of each workflow algorithm through the real binary, outputs checked."""
    from osgeo import ogr

    from tests.qgis.test_workflow import _scores_layer

    lib, lf = tmp_path / "lib.gpkg", tmp_path / "landforms.gpkg"
    qgis_process(qgis_env, "run", "analog:buildlibrary", "--", f"IMAGE_FOLDER={image_folder}",
                 f"MODEL={models['mean']}", f"OUTPUT={lib}")
    res: Any = json.loads(qgis_process(
        qgis_env, "--json", "run", "analog:classifylandforms", "--", f"INPUT={MARS_TIF}",
        f"LIBRARY={lib}", f"MODEL={models['mean']}", "TILE_SIZE=32", "K=1", "SMOOTH=mrf",
        "MIN_VALID=0", "EXTENT=0,90,0,45", f"OUTPUT={lf}").stdout)
    assert res["results"]["N_CLASSIFIED"] == 32
    ds = ogr.Open(str(lf))  # keep the datasource alive while its layer is read
    assert {f.GetField("landform") for f in ds.GetLayerByName("landforms")} <= {"bright", "dark"}
    ds = None
    assert any(t == "landforms" and d == 1 and "categorizedSymbol" in q
               for t, d, q in layer_styles(lf))
    png = sorted(image_folder.rglob("*.png"))
    cmp: Any = json.loads(qgis_process(
        qgis_env, "--json", "run", "analog:comparetiles", "--", f"IMAGE_A={png[0]}",
        f"IMAGE_B={png[0]}", f"MODEL={models['mean']}").stdout)
    assert cmp["results"]["SCORE"] == pytest.approx(1.0, abs=1e-6)
    assert cmp["results"]["SAME_LANDFORM"] is True
    scores, sites = _scores_layer(tmp_path), tmp_path / "sites.gpkg"
    ranked: Any = json.loads(qgis_process(
        qgis_env, "--json", "run", "analog:ranksites", "--", f"SCORES={scores}",
        "ELLIPSE_MAJOR_KM=20", "ELLIPSE_MINOR_KM=7", "COUNT=2", "LATITUDE_MAX=1.6",
        f"OUTPUT={sites}").stdout)
    assert ranked["results"]["N_SITES"] == 2
    assert abs(ranked["results"]["TOP_LON"] - 2.0) < 0.2
    assert any(t == "sites" and d == 1 for t, d, _ in layer_styles(sites))


def test_shipped_workflow_model_runs_on_the_demo(qgis_env: dict[str, str],
                                                 tmp_path: Path) -> None:
    """The graphical model (library -> score -> sites, and landforms) with the bundled model."""
    repo = Path(__file__).resolve().parents[2]
    outs = {k: tmp_path / f"{k}.gpkg" for k in ("library", "scores", "landing_sites",
                                                 "landforms")}
    res: Any = json.loads(qgis_process(
        qgis_env, "--json", "run", "analog:analogueworkflow", "--",
        f"exemplars={repo / 'demo' / 'earth_exemplars'}",
        f"mars_raster={repo / 'demo' / 'mars_scene.tif'}", "ellipse_major_km=0.6",
        "ellipse_minor_km=0.4", f"dem={repo / 'demo' / 'mars_dem.tif'}", "max_slope=5",
        *(f"{k}={v}" for k, v in outs.items()), f"heat_map={tmp_path / 'heat.tif'}").stdout)
    for k, path in outs.items():
        assert path.is_file(), (k, res)
    assert (tmp_path / "heat.tif").is_file()
    assert any(t == "sites" and d == 1 for t, d, _ in layer_styles(outs["landing_sites"]))


def test_scoretiles_on_a_local_cluster_matches_in_process(qgis_env: dict[str, str],
                                                          tmp_path: Path) -> None:
    """SCHEDULER=local inside qgis_process (embedded Python: thread workers) gives the same
    scores as the in-process run, plus the source field and the GeoParquet parts."""
    from osgeo import ogr

    repo = Path(__file__).resolve().parents[2]
    lib = tmp_path / "lib.gpkg"
    qgis_process(qgis_env, "run", "analog:buildlibrary", "--",
                 f"IMAGE_FOLDER={repo / 'demo' / 'earth_exemplars'}", f"OUTPUT={lib}")
    common = [f"INPUT={repo / 'demo' / 'mars_scene.tif'}", f"LIBRARY={lib}", "TILE_SIZE=227",
              "TILE_UNITS=metres", "CHUNK_TILES=16"]
    qgis_process(qgis_env, "run", "analog:scoretiles", "--", *common[:5],
                 f"OUTPUT={tmp_path / 'a.gpkg'}")
    res: Any = json.loads(qgis_process(
        qgis_env, "--json", "run", "analog:scoretiles", "--", *common[:5], "SCHEDULER=local",
        f"OUTPUT={tmp_path / 'b.gpkg'}").stdout)
    assert res["results"]["N_SCORED"] == 48

    def scores(p: Path) -> dict[int, float]:
        ds = ogr.Open(str(p))
        out = {f.GetField("tile_id"): f.GetField("score") for f in ds.GetLayer(0)}
        ds = None
        return out

    a, b = scores(tmp_path / "a.gpkg"), scores(tmp_path / "b.gpkg")
    assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-6 for k in a)
    assert list((tmp_path / "b.parts").glob("*.parquet"))
