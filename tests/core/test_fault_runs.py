"""Hardening (third part): runs that go wrong while they write.

- an output equal to one of the run's inputs, for every algorithm that writes a file;
- cancellation at random points of every writing algorithm (seeded, so a failure replays);
- two processes writing the same output at once;
- a process killed with SIGKILL in the middle of a run, and the next run after it.

The oracle in each case is the file system itself: the old output byte for byte, no temporary
file left (or, after a kill, removed by the next run), never a mixed file.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from osgeo import ogr
from rasterio.transform import Affine

from analog_plugin.core.batch_job import score_many
from analog_plugin.core.classify_job import classify_landforms
from analog_plugin.core.errors import AnalogCancelled, OutputError
from analog_plugin.core.exemplar_plan import ExemplarPolygon
from analog_plugin.core.feedback import RecordingFeedback
from analog_plugin.core.library_job import build_library
from analog_plugin.core.rank_sites_job import rank_sites
from analog_plugin.core.score_job import score_raster
from analog_plugin.core.vector_io import read_scores
from tests.onnx_models import make_mean_model

REPO = Path(__file__).resolve().parents[2]
OLD = b"old output"
UTM = "EPSG:32633"


def write_raster(path: Path, side: int, seed: int = 0) -> Path:
    arr = (np.random.default_rng(seed).random((side, side)) * 200 + 20).astype(np.uint8)
    with rasterio.open(path, "w", driver="GTiff", width=side, height=side, count=1,
                       dtype="uint8", crs=UTM, transform=Affine(10, 0, 500000, 0, -10, 4000000),
                       tiled=True, blockxsize=256, blockysize=256) as ds:
        ds.write(arr, 1)
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from PIL import Image

    d = tmp_path_factory.mktemp("runs")
    model = make_mean_model(d / "m.onnx", input_size=32, channels=1)
    for cls in ("dune", "crater"):
        (d / "ex" / cls).mkdir(parents=True)
        for i in range(2):
            img = (np.random.default_rng(hash(cls) % 97 + i).random((40, 40)) * 255)
            Image.fromarray(img.astype(np.uint8)).save(d / "ex" / cls / f"{i}.png")
    lib = d / "lib.gpkg"
    build_library(model_path=model, output_path=lib, image_folder=d / "ex")
    ras = write_raster(d / "scene.tif", 256)
    scores = d / "scores.gpkg"
    score_raster(raster_path=ras, library_path=lib, output_path=scores, model_path=model,
                 tile_size=32, min_valid=0.0)
    return {"dir": d, "model": model, "lib": lib, "raster": ras, "scores": scores}


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if ".tmp-" in p.name]


Job = Callable[[dict[str, Path], Path, Any], Any]


def _score(env: dict[str, Path], out: Path, fb: Any) -> Any:
    return score_raster(raster_path=env["raster"], library_path=env["lib"], output_path=out,
                        model_path=env["model"], tile_size=16, min_valid=0.0, batch_size=16,
                        feedback=fb)


def _heatmap(env: dict[str, Path], out: Path, fb: Any) -> Any:
    return score_raster(raster_path=env["raster"], library_path=env["lib"],
                        output_path=out.with_name(out.stem + "_s.gpkg"), model_path=env["model"],
                        tile_size=16, min_valid=0.0, batch_size=16, heatmap_path=out,
                        feedback=fb)


def _classify(env: dict[str, Path], out: Path, fb: Any) -> Any:
    return classify_landforms(str(env["raster"]), env["lib"], out, model_path=env["model"],
                              tile_size=16, min_valid=0.0, batch_size=16, smooth="mrf",
                              feedback=fb)


def _library(env: dict[str, Path], out: Path, fb: Any) -> Any:
    x0, y1 = 500000.0, 4000000.0
    polys = []
    for i in range(12):
        ring = ogr.Geometry(ogr.wkbLinearRing)
        a, b = x0 + 200 * i, y1 - 200 * i
        for x, y in ((a, b - 160), (a + 160, b - 160), (a + 160, b), (a, b), (a, b - 160)):
            ring.AddPoint_2D(x, y)
        poly = ogr.Geometry(ogr.wkbPolygon)
        poly.AddGeometry(ring)
        polys.append(ExemplarPolygon(bytes(poly.ExportToWkb()), "dune", f"p{i}"))
    return build_library(output_path=out, model_path=env["model"], raster_path=env["raster"],
                         polygons=polys, tile_size=16, batch_size=4, feedback=fb)


def _batch(env: dict[str, Path], out: Path, fb: Any) -> Any:
    return score_many(rasters=[str(env["raster"])] * 2, library_path=env["lib"],
                      output_path=out, model_path=env["model"], tile_size=16, min_valid=0.0,
                      chunk_tiles=64, batch_size=16, feedback=fb)


def _sites(env: dict[str, Path], out: Path, fb: Any) -> Any:
    wkb, values, wkt = read_scores(str(env["scores"]), "score")
    return rank_sites(wkb, values, wkt, out, ellipse_major_km=0.6, ellipse_minor_km=0.4,
                      spacing_km=0.1, count=3, feedback=fb,
                      inputs=[("SCORES", str(env["scores"]))])


JOBS: dict[str, tuple[Job, str]] = {
    "scoretiles": (_score, ".gpkg"), "heatmap": (_heatmap, ".tif"),
    "classifylandforms": (_classify, ".gpkg"), "buildlibrary": (_library, ".gpkg"),
    "batch": (_batch, ".gpkg"), "ranksites": (_sites, ".gpkg"),
}


# ---- output equal to an input -----------------------------------------------------------------

SAME_AS_INPUT: dict[str, Callable[[dict[str, Path]], Any]] = {
    "scoretiles OUTPUT=LIBRARY": lambda e: score_raster(
        raster_path=e["raster"], library_path=e["lib"], output_path=e["lib"],
        model_path=e["model"], tile_size=32),
    "scoretiles OUTPUT_HEATMAP=INPUT": lambda e: score_raster(
        raster_path=e["raster"], library_path=e["lib"], output_path=e["dir"] / "h_s.gpkg",
        model_path=e["model"], tile_size=32, heatmap_path=e["raster"]),
    "classifylandforms OUTPUT=LIBRARY": lambda e: classify_landforms(
        str(e["raster"]), e["lib"], e["lib"], model_path=e["model"], tile_size=32),
    "batch OUTPUT=LIBRARY": lambda e: score_many(
        rasters=[str(e["raster"])], library_path=e["lib"], output_path=e["lib"],
        model_path=e["model"], tile_size=32),
    "ranksites OUTPUT=SCORES": lambda e: _sites(e, e["scores"], None),
}


@pytest.mark.parametrize("case", sorted(SAME_AS_INPUT))
def test_output_equal_to_an_input_is_refused_for_every_algorithm(env: dict[str, Path],
                                                                 case: str) -> None:
    before = {k: env[k].read_bytes() for k in ("lib", "raster", "scores")}
    with pytest.raises(OutputError, match="is the same file as"):
        SAME_AS_INPUT[case](env)
    assert {k: env[k].read_bytes() for k in before} == before


# ---- cancellation at random points -------------------------------------------------------------

def checks_in_a_full_run(job: Job, env: dict[str, Path], suffix: str) -> int:
    fb = RecordingFeedback()
    job(env, env["dir"] / f"count{suffix}", fb)
    return fb.cancel_checks


@pytest.mark.parametrize("name", sorted(JOBS))
def test_cancel_at_random_points_keeps_the_old_output(env: dict[str, Path], name: str) -> None:
    """Cancel after k cancel checks for 6 seeded random k over the whole run (the first check
    included): always AnalogCancelled, the old file intact, no temporary file."""
    job, suffix = JOBS[name]
    total = checks_in_a_full_run(job, env, suffix)
    assert total >= 3, f"{name} checks for cancel only {total} times"
    rng = np.random.default_rng(sum(map(ord, name)))
    points = sorted({0, total - 1, *rng.integers(0, total, 4).tolist()})
    out = env["dir"] / f"cancel_{name}{suffix}"
    for k in points:
        out.write_bytes(OLD)
        # the batch job resumes finished chunks (by design): start each attempt afresh
        shutil.rmtree(out.with_name(f"{out.stem}.parts"), ignore_errors=True)
        with pytest.raises(AnalogCancelled):
            job(env, out, RecordingFeedback(cancel_after=k))
        assert out.read_bytes() == OLD, f"{name}: cancel after {k}/{total} checks"
        assert temp_files(env["dir"]) == [], f"{name}: cancel after {k}/{total} checks"


# ---- processes: two writers at once, SIGKILL -------------------------------------------------

def cli(env: dict[str, Path], raster: Path, out: Path, tile: int) -> list[str]:
    return [sys.executable, "-m", "analog_plugin", "score", "--input", str(raster),
            "--library", str(env["lib"]), "--model", str(env["model"]), "--tile-size",
            str(tile), "--min-valid", "0", "--output", str(out)]


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "ANALOG_THREADS": "1"}


def feature_count(gpkg: Path) -> int:
    ds = ogr.Open(str(gpkg))  # keep the datasource referenced while its layer is used
    return int(ds.GetLayerByName("scores").GetFeatureCount())


def tile_sizes(gpkg: Path) -> set[int]:
    """Side (px at 10 m) of every tile polygon in a scores GeoPackage."""
    ds = ogr.Open(str(gpkg))
    lyr = ds.GetLayerByName("scores")
    sides = set()
    for f in lyr:
        env_ = f.GetGeometryRef().GetEnvelope()
        sides.add(round((env_[1] - env_[0]) / 10))
    return sides


@pytest.mark.slow
def test_two_runs_writing_the_same_output_never_mix(env: dict[str, Path]) -> None:
    """Two processes score into one file at once, with 16 px and 32 px tiles: both succeed, and
    the file is a complete GeoPackage of exactly one of the two runs (the last rename wins)."""
    out = env["dir"] / "contended.gpkg"
    big = write_raster(env["dir"] / "contended.tif", 768, seed=4)
    procs = [subprocess.Popen(cli(env, big, out, tile), env=child_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for tile in (16, 32)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1][-500:] for r in results]
    sides = tile_sizes(out)
    assert sides in ({16}, {32})
    assert feature_count(out) == (768 // sides.pop()) ** 2
    assert temp_files(env["dir"]) == []


@pytest.mark.slow
def test_killed_run_keeps_the_old_output_and_the_next_run_cleans_up(env: dict[str, Path]) -> None:
    out = env["dir"] / "killed.gpkg"
    out.write_bytes(OLD)
    big = write_raster(env["dir"] / "killed.tif", 2048, seed=5)
    proc = subprocess.Popen(cli(env, big, out, 8), env=child_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not temp_files(env["dir"]) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)  # well inside the run: the temp GeoPackage is being written
    assert proc.poll() is None, "the run ended before it could be killed; use a larger raster"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert out.read_bytes() == OLD
    leftovers = temp_files(env["dir"])
    assert leftovers, "a killed run leaves its temp file (removed by the next run)"
    small = write_raster(env["dir"] / "after.tif", 128, seed=6)
    done = subprocess.run(cli(env, small, out, 32), env=child_env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-500:]
    assert temp_files(env["dir"]) == []
    assert feature_count(out) == 16
