"""Score one chunk of tiles into one GeoParquet part: the task every cluster worker runs.

A worker keeps the ONNX model and the library loaded across chunks (``_cached``: one model per
worker process, CUDA where the worker has it with DEVICE=auto) and opens the chunk's raster; the
layer statistics come from the driver (``RasterFacts``), so a chunk reads only its own tiles.

The part is written to a temporary name and renamed, so a killed worker leaves no half part and a
rescheduled chunk simply rewrites the same name: finished parts are never duplicated or lost.
Columns: the score fields of analog:scoretiles (without rank/percentile: those need every tile and
are filled at the merge), ``source`` (the raster), and ``geometry`` (WKB, GeoParquet 1.0 metadata).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import temp_path_for
from .batch_plan import Chunk, RasterFacts
from .class_scores import ClassScorer
from .embedding_stream import TileEmbeddingStream, TileRequest
from .feedback import Feedback, ensure_feedback
from .gdal_cache import bounded_gdal_cache, fit_gdal_cache
from .gpkg_io import polygon_wkbs
from .raster_reader import RasterSource
from .score_writer import tile_rings
from .threads import single_threaded_blas

_CACHE: dict[tuple[str, str, str], Any] = {}


def _cached(model_path: str, library_path: str, device: str) -> tuple[Any, Any]:
    key = (model_path, library_path, device)
    if key not in _CACHE:
        from .library import load_library
        from .model import EmbeddingModel

        model = EmbeddingModel(model_path, device=device)
        _CACHE.clear()
        _CACHE[key] = (model, load_library(library_path, model.sha256, "the model"))
    return _CACHE[key]  # type: ignore[no-any-return]


def part_path(parts: Path, chunk: Chunk) -> Path:
    return parts / f"{chunk.name}.parquet"


def score_chunk(chunk: Chunk, facts: RasterFacts, model_path: str, library_path: str,
                negatives: Sequence[str], min_valid: float, batch_size: int, device: str,
                parts_dir: str, feedback: Feedback | None = None) -> tuple[str, int, float]:
    """Score ``chunk`` and write its part; returns (part path, rows, seconds it took). Skips a
    finished part (rows -1). ``feedback`` (in-process runs only; cluster tasks are cancelled by
    the client) lets a cancel stop the chunk between batches, not only between chunks."""
    t0 = time.perf_counter()
    out = part_path(Path(parts_dir), chunk)
    if out.is_file():
        return str(out), -1, 0.0
    model, lib = _cached(model_path, library_path, device)
    scorer = ClassScorer(lib.classes, negatives)
    grid = facts.plan.grid
    tiles = [grid.tile(i) for i in range(chunk.first, chunk.last)]
    cols: dict[str, list[Any]] = {k: [] for k in ("tile_id", "row", "col", "score",
                                                  "best_class", "best_exemplar", "valid_frac")}
    per_class: list[np.ndarray] = []
    wkbs: list[bytes] = []
    with bounded_gdal_cache() as ceiling, single_threaded_blas(), \
            RasterSource(facts.path) as src:
        src.use_row_strips(grid.extent.col_off, grid.extent.width)
        fit_gdal_cache(src, grid.tile_height, ceiling)
        stream = TileEmbeddingStream(src, (TileRequest(t, t.window) for t in tiles), model,
                                     facts.layer, ensure_feedback(feedback), batch_size=batch_size,
                                     min_valid=min_valid)
        for batch in stream:
            m = scorer.score(batch.embeddings, lib.embeddings)
            for t, s, b, v in zip(batch.payloads, m.score, m.best_index, batch.valid_frac,
                                  strict=True):
                cols["tile_id"].append(t.tile_id)
                cols["row"].append(t.row)
                cols["col"].append(t.col)
                cols["score"].append(float(s))
                cols["best_class"].append(lib.classes[int(b)])
                cols["best_exemplar"].append(lib.exemplar_ids[int(b)])
                cols["valid_frac"].append(float(v))
            per_class.append(np.asarray(m.per_class, np.float64))
            wkbs += polygon_wkbs(tile_rings(facts.transform, list(batch.payloads)))
    pc = np.concatenate(per_class) if per_class else np.zeros((0, len(scorer.classes)))
    _write_part(out, facts, cols, scorer.classes, pc, wkbs)
    return str(out), len(wkbs), time.perf_counter() - t0


def _write_part(out: Path, facts: RasterFacts, cols: dict[str, list[Any]],
                classes: Sequence[str], per_class: np.ndarray, wkbs: list[bytes]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    data: dict[str, Any] = {"source": pa.array([facts.path] * len(wkbs), pa.string()),
                            **{k: pa.array(v) for k, v in cols.items()}}
    for j, c in enumerate(classes):
        data[f"class:{c}"] = pa.array(per_class[:, j], pa.float64())
    data["geometry"] = pa.array(wkbs, pa.binary())
    geo = {"version": "1.0.0", "primary_column": "geometry",
           "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["Polygon"],
                                    "crs": _projjson(facts.crs_wkt)}}}
    table = pa.table(data).replace_schema_metadata({"geo": json.dumps(geo)})
    tmp = temp_path_for(out)  # a killed run's leftover is removed by the next run (_claim)
    pq.write_table(table, tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, out)


def _projjson(wkt: str) -> Any:
    """GeoParquet wants PROJJSON (None = unknown CRS)."""
    if not wkt:
        return None
    from osgeo import osr

    srs = osr.SpatialReference()
    if srs.ImportFromWkt(wkt) != 0:
        return None
    try:
        return json.loads(srs.ExportToPROJJSON())
    except (RuntimeError, ValueError):
        return None
