"""score_many: score the tiles of many rasters, in this process or on a dask.distributed cluster,
into one GeoPackage (plus the GeoParquet parts), resumable, identical either way.

1. Checks and per-raster facts on the driver, before anything is scheduled (``batch_plan``): bad
   input fails in seconds with the same messages as analog:scoretiles.
2. Chunks whose part already exists (same run key) are skipped: an interrupted run resumes.
3. The other chunks run: in this process one by one, or as dask tasks (``retries``: a killed
   worker's chunk is re-run elsewhere and rewrites the same part name atomically).
4. The merge streams the parts, in chunk order, into the atomic GeoPackage writer, fills rank and
   percentile over all tiles and stores the fitted style.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from osgeo import ogr

from . import params as P
from .atomic import check_not_an_input, clean_stale_temps_in, validate_output_path
from .batch_chunk import part_path, score_chunk
from .batch_plan import DEFAULT_CHUNK_TILES, plan_chunks, raster_facts, read_raster_list, run_key
from .class_scores import ClassScorer, class_field_names
from .errors import NoValidTilesError, ParameterError
from .feedback import Feedback, check_cancelled, ensure_feedback
from .gpkg_io import resolve_style, utc_now
from .paths import bundled_model_path
from .score_writer import BASE_FIELDS, ScoreWriter
from .tile_run import check_tiling, open_model_and_library


@dataclass(frozen=True)
class BatchSummary:
    n_rasters: int
    n_chunks: int
    n_skipped_chunks: int
    n_scored: int
    seconds: float
    output_path: Path
    parts_dir: Path
    scheduler: str
    task_seconds: float = 0.0  # the chunks' own run time, summed (overhead = the rest)
    merge_seconds: float = 0.0


def check_scheduler(value: str | None) -> str:
    text = (value or "").strip()
    if text and text != "local" and not text.startswith(("tcp://", "tls://", "inproc://")):
        raise ParameterError(f"SCHEDULER = {value!r}: give 'local', an address such as "
                             "tcp://HOST:8786, or leave it empty to score in this process")
    return text


def score_many(
    *,
    rasters: Sequence[str],
    library_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    model_path: str | os.PathLike[str] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    chunk_tiles: int = DEFAULT_CHUNK_TILES,
    tile_size: float | None = None,
    tile_units: str = "pixels",
    overlap: float = 0.0,
    bands: Sequence[int] | None = None,
    min_valid: float = 0.5,
    negative_classes: Sequence[str] | str | None = None,
    device: str = "auto",
    batch_size: int = 64,
    feedback: Feedback | None = None,
    style_qml: str | os.PathLike[str] | None = None,
) -> BatchSummary:
    t0 = time.perf_counter()
    fb = ensure_feedback(feedback)
    scheduler = check_scheduler(scheduler)
    tile_size, tile_units, overlap, min_valid, device, batch_size = check_tiling(
        tile_size, tile_units, overlap, min_valid, device, batch_size)
    workers = P.check(P.WORKERS, workers)
    negatives = tuple(P.check(P.NEGATIVE_CLASSES, negative_classes) or ())
    paths = read_raster_list(rasters)
    model_path = str(model_path or bundled_model_path())
    out = validate_output_path(output_path)
    check_not_an_input(out, [*(("INPUT", r) for r in paths), ("LIBRARY", library_path),
                             ("MODEL", model_path)])
    model, lib = open_model_and_library(model_path, library_path, device, fb)
    scorer = ClassScorer(lib.classes, negatives)
    facts = raster_facts(paths, model, tile_size, tile_units, overlap, bands)
    chunks = plan_chunks(facts, chunk_tiles)
    settings = {"tile_size": tile_size, "tile_units": tile_units, "overlap": overlap,
                "min_valid": min_valid, "negatives": negatives, "bands": bands}
    key = run_key(facts, model.sha256, str(library_path), settings)
    parts = out.with_name(f"{out.stem}.parts")
    _claim(parts, key)
    todo = [c for c in chunks if not part_path(parts, c).is_file()]
    n_tiles = sum(c.n_tiles for c in chunks)
    fb.pushInfo(f"{len(paths)} raster(s), {n_tiles} tiles in {len(chunks)} chunks of <= "
                f"{chunk_tiles}; {len(chunks) - len(todo)} already done in {parts}")
    check_cancelled(fb, "validation")
    args = (model_path, str(library_path), negatives, min_valid, batch_size, device, str(parts))
    by_index = {f.index: f for f in facts}
    done_tiles = sum(c.n_tiles for c in chunks) - sum(c.n_tiles for c in todo)
    progress = _Progress(fb, n_tiles, done_tiles)
    task_s = 0.0
    if not scheduler:
        for c in todo:
            check_cancelled(fb, "scoring")
            task_s += score_chunk(c, by_index[c.raster], *args, feedback=fb)[2]
            progress.add(c.n_tiles)
    else:
        task_s = _run_on_cluster(scheduler, workers, todo, by_index, args, progress, fb)
    check_cancelled(fb, "scoring")
    tm = time.perf_counter()
    n = _merge(parts, chunks, facts[0].crs_wkt, facts[0].transform, out, scorer, model, lib,
               resolve_style(style_qml, "scores.qml"), fb, settings, paths)
    seconds = time.perf_counter() - t0
    fb.setProgress(100.0)
    fb.pushInfo(f"Scored {n} tiles of {len(paths)} raster(s) in {seconds:.1f} s "
                f"({'in process' if not scheduler else scheduler}); parts kept in {parts}")
    return BatchSummary(len(paths), len(chunks), len(chunks) - len(todo), n, seconds, out,
                        parts, scheduler or "in process", task_s, time.perf_counter() - tm)


def _claim(parts: Path, key: str) -> None:
    """The parts folder belongs to one run: a different run starts it afresh."""
    marker = parts / "RUN_KEY"
    if marker.is_file() and marker.read_text().strip() != key:
        for p in parts.glob("*.parquet"):
            p.unlink()
    parts.mkdir(parents=True, exist_ok=True)
    clean_stale_temps_in(parts)
    marker.write_text(key + "\n")


class _Progress:
    def __init__(self, fb: Feedback, total: int, done: int) -> None:
        self.fb, self.total, self.done, self.t0, self.last = fb, max(total, 1), done, \
            time.perf_counter(), 0.0
        self.start_done = done

    def add(self, n: int) -> None:
        self.done += n
        self.fb.setProgress(95.0 * self.done / self.total)
        now = time.perf_counter()
        rate = (self.done - self.start_done) / max(now - self.t0, 1e-9)
        if now - self.last > 5 or self.done >= self.total:
            self.last = now
            eta = (self.total - self.done) / max(rate, 1e-9)
            self.fb.pushInfo(f"{self.done}/{self.total} tiles, {rate:.0f} tiles/s, "
                             f"ETA {eta:.0f} s")


def _run_on_cluster(scheduler: str, workers: int | None, todo: Sequence[Any],
                    facts: dict[int, Any], args: tuple[Any, ...], progress: _Progress,
                    fb: Feedback) -> float:
    """Run the chunks as dask tasks; returns the tasks' summed run time."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as err:
        raise ParameterError("SCHEDULER needs the Python package 'distributed' (pip install "
                             "'dask[distributed]' for the Python that runs this)") from err
    from .threads import default_threads

    cluster = None
    if scheduler == "local":
        # Inside QGIS the interpreter is embedded and sys.executable is the QGIS binary or some
        # other python3 found on PATH: spawned workers would start a foreign interpreter. Worker
        # processes only when sys.executable really is this Python; else threads of this process
        # (onnxruntime and GDAL release the GIL).
        exe = Path(sys.executable).resolve()
        processes = (exe.parent.parent == Path(sys.base_prefix).resolve()
                     and "qgis" not in exe.name.lower())
        cluster = LocalCluster(n_workers=int(workers or default_threads()), threads_per_worker=1,
                               processes=processes, dashboard_address=None)
        client = Client(cluster)
    else:
        client = Client(scheduler, timeout="30s")
    try:
        fb.pushInfo(f"Cluster: {len(client.scheduler_info()['workers'])} worker(s) at "
                    f"{client.scheduler.address}")
        env = {"OMP_NUM_THREADS": "1", "ANALOG_THREADS": "1"}
        client.run(lambda: os.environ.update(env))
        futures = [client.submit(score_chunk, c, facts[c.raster], *args, key=f"analog-{c.name}",
                                 pure=False, retries=3) for c in todo]
        by_key = {f.key: c for f, c in zip(futures, todo, strict=True)}
        task_s = 0.0
        for fut in as_completed(futures):
            if fb.isCanceled():
                client.cancel(futures)
                break
            task_s += fut.result()[2]  # re-raises a chunk's error here
            progress.add(by_key[fut.key].n_tiles)
        return task_s
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _merge(parts: Path, chunks: Sequence[Any], crs_wkt: str, transform: Any, out: Path,
           scorer: ClassScorer, model: Any, lib: Any, style: Any, fb: Feedback,
           settings: dict[str, Any], paths: Sequence[str]) -> int:
    import pyarrow.parquet as pq

    fields = class_field_names(scorer.classes, [f for f, _ in BASE_FIELDS])
    meta = {"analog_model_sha256": model.sha256, "analog_model_version": model.metadata.version,
            "analog_parameters": json.dumps({"INPUT": list(paths), "LIBRARY": str(lib.path),
                                             **{k.upper(): v for k, v in settings.items()}},
                                            default=str),
            "analog_created_utc": utc_now()}
    with ScoreWriter(out, crs_wkt, transform, meta, style, fb, fields,
                     extra_fields=[("source", ogr.OFTString)]) as writer:
        for c in chunks:
            check_cancelled(fb, "merging")
            t = pq.read_table(part_path(parts, c))
            d = t.to_pydict()
            per = np.column_stack([d[f"class:{k}"] for k in scorer.classes]) if t.num_rows \
                else np.zeros((0, len(scorer.classes)))
            writer.append_records(d, per, [bytes(g) for g in d["geometry"]])
        if writer.count == 0:
            raise NoValidTilesError("no tile of any raster reached MIN_VALID; check nodata and "
                                    "MIN_VALID")
        writer.finish()
        return writer.count
