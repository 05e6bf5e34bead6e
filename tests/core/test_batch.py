"""The many-raster / cluster engine: identical to the single-process engine, resumable, robust to a
killed worker, and strict about bad input before anything is scheduled."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from osgeo import ogr

from analog_plugin.core.batch_job import score_many
from analog_plugin.core.errors import AnalogCancelled, ParameterError, TilingError
from analog_plugin.core.feedback import ConsoleFeedback
from analog_plugin.core.library_job import build_library
from analog_plugin.core.score_job import score_raster
from tests.core.conftest import MARS_TIF, write_raster

pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tests.onnx_models import make_layout_model

    d = tmp_path_factory.mktemp("batch")
    model = make_layout_model(d / "layout.onnx", input_size=16)
    import rasterio

    with rasterio.open(MARS_TIF) as src:
        a = src.read(1)[:256, :512]
        crs, tr = src.crs.to_wkt(), src.transform
    rasters = [write_raster(d / "m0.tif", a, crs=crs, transform=tr, nodata=0),
               write_raster(d / "m1.tif", a[:, ::-1].copy(), crs=crs, transform=tr, nodata=0),
               write_raster(d / "m2.tif", a[::-1].copy(), crs=crs, transform=tr, nodata=0)]
    ex = d / "ex"
    for k, (r0, c0) in enumerate(((10, 10), (100, 300))):
        (ex / f"c{k}").mkdir(parents=True)
        from PIL import Image

        Image.fromarray(a[r0:r0 + 40, c0:c0 + 40]).save(ex / f"c{k}" / "e.png")
    lib = d / "lib.gpkg"
    build_library(model_path=model, output_path=lib, image_folder=ex, tile_size=32)
    return {"dir": d, "model": model, "rasters": [str(r) for r in rasters], "lib": lib}


def rows(path: Path) -> list[tuple[Any, ...]]:
    ds = ogr.Open(str(path))
    out = sorted((f.GetField("source"), f.GetField("tile_id"), f.GetField("score"),
                  f.GetField("score_c0"), f.GetField("rank"), f.GetField("percentile"),
                  f.GetGeometryRef().ExportToWkt()) for f in ds.GetLayerByName("scores"))
    ds = None
    return out


def run(setup: dict[str, Any], out: Path, **kw: Any) -> Any:
    args = {"rasters": setup["rasters"], "library_path": setup["lib"], "output_path": out,
            "model_path": setup["model"], "tile_size": 32, "overlap": 25, "min_valid": 0.3,
            "chunk_tiles": 40, "feedback": ConsoleFeedback(quiet=True), **kw}
    return score_many(**args)


def test_in_process_equals_the_single_raster_engine(setup: dict[str, Any],
                                                    tmp_path: Path) -> None:
    res = run(setup, tmp_path / "all.gpkg")
    assert res.n_rasters == 3 and res.n_chunks > 3
    got = rows(tmp_path / "all.gpkg")
    assert len(got) == res.n_scored
    ranks = sorted(r[4] for r in got)
    assert ranks == list(range(1, len(got) + 1))  # rank over ALL rasters' tiles
    for path in setup["rasters"]:
        one = tmp_path / (Path(path).stem + ".gpkg")
        score_raster(raster_path=path, library_path=setup["lib"], output_path=one,
                     model_path=setup["model"], tile_size=32, overlap=25, min_valid=0.3)
        ds = ogr.Open(str(one))
        ref = {f.GetField("tile_id"): (f.GetField("score"), f.GetGeometryRef().ExportToWkt())
               for f in ds.GetLayerByName("scores")}
        ds = None
        mine = {r[1]: (r[2], r[6]) for r in got if r[0] == path}
        assert mine.keys() == ref.keys()
        for k, (s, wkt) in ref.items():
            assert mine[k][0] == pytest.approx(s, abs=1e-6) and mine[k][1] == wkt


@pytest.mark.slow
def test_local_cluster_gives_the_same_result(setup: dict[str, Any], tmp_path: Path) -> None:
    run(setup, tmp_path / "proc.gpkg")
    res = run(setup, tmp_path / "dask.gpkg", scheduler="local", workers=2)
    assert res.scheduler == "local"
    a, b = rows(tmp_path / "proc.gpkg"), rows(tmp_path / "dask.gpkg")
    assert len(a) == len(b) > 100
    for x, y in zip(a, b, strict=True):
        assert x[:2] == y[:2] and x[6] == y[6] and x[4] == y[4]
        assert x[2] == pytest.approx(y[2], abs=1e-6)
    # the GeoParquet parts stay for other tools, with GeoParquet metadata
    import pyarrow.parquet as pq

    part = sorted(res.parts_dir.glob("*.parquet"))[0]
    meta = pq.read_schema(part).metadata
    assert b"geo" in meta and b'"primary_column": "geometry"' in meta[b"geo"]


class CancelAfter(ConsoleFeedback):
    def __init__(self, n: int) -> None:
        super().__init__(quiet=True)
        self.n = n

    def isCanceled(self) -> bool:  # noqa: N802
        self.n -= 1
        return self.n < 0


def test_interrupted_run_resumes_without_redoing_parts(setup: dict[str, Any],
                                                       tmp_path: Path) -> None:
    out = tmp_path / "r.gpkg"
    with pytest.raises(AnalogCancelled):
        run(setup, out, feedback=CancelAfter(4))
    assert not out.exists()
    parts = sorted((tmp_path / "r.parts").glob("*.parquet"))
    assert 0 < len(parts)
    stamp = {p.name: p.stat().st_mtime_ns for p in parts}
    res = run(setup, out)
    assert res.n_skipped_chunks == len(parts) < res.n_chunks
    assert {p.name: p.stat().st_mtime_ns for p in parts} == stamp  # not rewritten
    ref = tmp_path / "ref.gpkg"
    run(setup, ref)
    assert rows(out) == rows(ref)
    # a changed run (other overlap) never reuses the old parts
    res2 = run(setup, out, overlap=0)
    assert res2.n_skipped_chunks == 0


@pytest.mark.slow
def test_killed_worker_still_gives_a_complete_duplicate_free_result(
        setup: dict[str, Any], tmp_path: Path) -> None:
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    parts = tmp_path / "k.parts"
    killed: list[int] = []

    def killer() -> None:
        end = time.time() + 60
        while time.time() < end and not list(parts.glob("*.parquet")):
            time.sleep(0.01)
        from distributed import Client

        with Client(cluster) as c:
            pids = c.run(os.getpid)
        pid = sorted(pids.values())[0]
        os.kill(pid, signal.SIGKILL)  # the worker dies mid-run; its nanny restarts it
        killed.append(pid)

    t = threading.Thread(target=killer)
    t.start()
    try:
        res = run(setup, tmp_path / "k.gpkg", scheduler=cluster.scheduler_address,
                  chunk_tiles=16)
    finally:
        t.join()
        cluster.close()
    assert killed
    ref = tmp_path / "ref.gpkg"
    run(setup, ref, chunk_tiles=16)
    got = rows(tmp_path / "k.gpkg")
    assert len({(r[0], r[1]) for r in got}) == len(got) == res.n_scored
    assert got == rows(ref)


@pytest.mark.parametrize(("kw", "err", "match"), [
    ({"rasters": ["/no/such.tif"]}, TilingError, "do not exist"),
    ({"scheduler": "http://x"}, ParameterError, "SCHEDULER"),
    ({"chunk_tiles": 1}, ParameterError, "CHUNK_TILES"),
    ({"overlap": 99}, ParameterError, "OVERLAP"),
])
def test_bad_input_fails_before_scheduling(setup: dict[str, Any], tmp_path: Path,
                                           kw: dict[str, Any], err: type, match: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(err, match=match):
        run(setup, tmp_path / "x.gpkg", **{"scheduler": "tcp://127.0.0.1:9", **kw})
    assert time.perf_counter() - t0 < 10  # nothing was scheduled nor connected to
    assert not (tmp_path / "x.gpkg").exists()


def test_rasters_in_different_crs_are_refused(setup: dict[str, Any], tmp_path: Path) -> None:
    other = write_raster(tmp_path / "utm.tif", np.ones((64, 64), np.uint8) * 7)
    with pytest.raises(TilingError, match="another CRS"):
        run(setup, tmp_path / "x.gpkg", rasters=[setup["rasters"][0], str(other)])


def test_raster_list_file(setup: dict[str, Any], tmp_path: Path) -> None:
    lst = tmp_path / "rasters.txt"
    lst.write_text("# three rasters\n" + "\n".join(setup["rasters"]) + "\n")
    res = run(setup, tmp_path / "l.gpkg", rasters=[str(lst)])
    assert res.n_rasters == 3
