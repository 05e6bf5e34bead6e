"""score_raster: score every tile of a raster against an analogue library (the main job).

Order of work: validate everything cheap first (parameters, output path, model contract, device,
library/model identity, bands, tiling) so a mistake fails in a second, not after an hour; then the
layer statistics once; then the tile-embedding stream, each batch matched against the library and
written to the temp GeoPackage as it comes; finally the atomic publish.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import params as P
from .atomic import check_not_an_input, validate_output_path
from .class_scores import ClassScorer, class_field_names
from .embedding_stream import Progress
from .errors import NoValidTilesError
from .feedback import Feedback, check_cancelled, ensure_feedback
from .gpkg_io import resolve_style
from .heatmap import HeatmapWriter
from .paths import bundled_model_path
from .raster_reader import RasterSource
from .score_writer import BASE_FIELDS, ScoreWriter
from .tile_run import check_tiling, open_model_and_library, run_metadata, tile_run


@dataclass(frozen=True)
class ScoreSummary:
    n_tiles: int
    n_scored: int
    n_skipped: int
    provider: str
    seconds: float
    output_path: Path
    timing: dict[str, float]
    heatmap_path: Path | None = None
    class_fields: tuple[str, ...] = ()


def score_raster(
    *,
    raster_path: str | os.PathLike[str],
    library_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    model_path: str | os.PathLike[str] | None = None,
    tile_size: float | None = None,
    tile_units: str = "pixels",
    overlap: float = 0.0,
    extent: tuple[float, float, float, float] | None = None,
    mask_wkb: Sequence[bytes] = (),
    bands: Sequence[int] | None = None,
    min_valid: float = 0.5,
    negative_classes: Sequence[str] | str | None = None,
    device: str = "auto",
    batch_size: int = 64,
    feedback: Feedback | None = None,
    style_qml: str | os.PathLike[str] | None = None,
    heatmap_path: str | os.PathLike[str] | None = None,
    heatmap_cell: int | None = None,
    heatmap_style_qml: str | os.PathLike[str] | None = None,
) -> ScoreSummary:
    """Score every tile of a raster against the library; write the ``scores`` GeoPackage.

    Tiles with valid_frac < min_valid (and always those with no valid pixel) are skipped and
    counted. Raises an AnalogError subclass on any user-fixable problem, AnalogCancelled on
    cancel (the existing output untouched).
    """
    t0 = time.perf_counter()
    fb = ensure_feedback(feedback)
    tile_size, tile_units, overlap, min_valid, device, batch_size = check_tiling(
        tile_size, tile_units, overlap, min_valid, device, batch_size)
    negatives = P.check(P.NEGATIVE_CLASSES, negative_classes) or ()
    heatmap_cell = P.check(P.HEATMAP_CELL, heatmap_cell)
    model_path = model_path or bundled_model_path()
    out = validate_output_path(output_path)
    inputs = [("INPUT", raster_path), ("LIBRARY", library_path), ("MODEL", model_path)]
    check_not_an_input(out, inputs)
    heat = None
    if heatmap_path:
        heat = validate_output_path(heatmap_path, suffix=".tif")
        check_not_an_input(heat, [*inputs, ("OUTPUT", out)])
    style = resolve_style(style_qml, "scores.qml")
    heat_style = resolve_style(heatmap_style_qml, "heatmap.qml") if heat else None
    model, lib = open_model_and_library(model_path, library_path, device, fb)
    scorer = ClassScorer(lib.classes, negatives)
    fields = class_field_names(scorer.classes, [f for f, _ in BASE_FIELDS])
    if negatives:
        fb.pushInfo(f"Negative classes {list(scorer.negatives)}: score = clip(p - max(0, n - p), "
                    "0, 1) with p / n the best positive / negative class score")
    check_cancelled(fb, "validation")

    with tile_run(raster_path, bands, model, lib.tile_m, tile_size, tile_units, overlap, extent,
                  mask_wkb, batch_size, min_valid, fb) as run:
        src, grid, stream = run.src, run.grid, run.stream
        meta = run_metadata(model, run, lib.path, tile_size=tile_size,
                            tile_units=tile_units, overlap=overlap, min_valid=min_valid,
                            batch_size=batch_size, negative_classes=list(negatives),
                            extent=extent, bands=list(bands) if bands else None)
        progress = Progress(fb, grid.n_tiles)
        heat_writer = _heatmap(heat, grid, src, heatmap_cell, heat_style, fb)
        with ScoreWriter(out, src.info.crs_wkt, src.info.transform, meta, style, fb,
                         fields) as writer, heat_writer as heatmap:
            for batch in stream:
                m = scorer.score(batch.embeddings, lib.embeddings)
                tw = time.perf_counter()
                idx = [int(i) for i in m.best_index]
                writer.write_tiles(batch.payloads, m.score, [lib.classes[i] for i in idx],
                                   [lib.exemplar_ids[i] for i in idx], batch.valid_frac,
                                   m.per_class)
                if heatmap is not None:
                    heatmap.add(batch.payloads, m.score)
                stream.times.write_s += time.perf_counter() - tw
                progress.update(batch.done)
            n_scored = writer.count
            if n_scored == 0:
                raise NoValidTilesError(
                    f"all {grid.n_tiles} tiles have a valid fraction below MIN_VALID={min_valid} "
                    "(nodata, outside the mask or outside the raster); check the raster's nodata "
                    "value, the extent/mask, or lower MIN_VALID"
                )
            check_cancelled(fb, "writing")
            tw = time.perf_counter()
            writer.finish()
            stream.times.write_s += time.perf_counter() - tw
            # leaving this block publishes up to two files (heat map, then scores): the last
            # cancel check covers both, so a cancel during finish() replaces neither
            check_cancelled(fb, "writing")
    fb.setProgress(100.0)
    seconds = time.perf_counter() - t0
    timing = {**stream.times.as_dict(), "wall_s": round(seconds, 4), "threads": model.threads}
    fb.pushInfo("Timing: " + json.dumps(timing))
    fb.pushInfo(
        f"Scored {n_scored} of {grid.n_tiles} tiles ({grid.n_tiles - n_scored} skipped) in "
        f"{seconds:.1f} s on {model.provider} ({n_scored / max(seconds, 1e-9):.0f} tiles/s)"
    )
    return ScoreSummary(grid.n_tiles, n_scored, grid.n_tiles - n_scored, model.provider, seconds,
                        out, timing, heat, tuple(fields))


def _heatmap(path: Path | None, grid: Any, src: RasterSource, cell: int | None,
             style: Path | None, fb: Feedback) -> Any:
    """The heat map writer (a context manager), or a null context when none was asked for."""
    import contextlib

    if path is None:
        return contextlib.nullcontext()
    cell = int(cell or grid.stride_x)
    qml = style.read_text() if style is not None and style.is_file() else None
    writer = HeatmapWriter(path, grid, src.info.transform, src.info.crs_wkt, cell, qml)
    fb.pushInfo(f"Heat map: {writer.width} x {writer.height} cells of {cell} x {cell} input "
                f"pixels -> {path}")
    return writer
