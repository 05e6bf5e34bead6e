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
from .embedding_stream import Progress, TileEmbeddingStream, TileRequest
from .errors import LibraryError, NoValidTilesError, TilingError
from .feedback import Feedback, check_cancelled, ensure_feedback
from .gpkg_io import polygon_from_ring, resolve_style, utc_now
from .library import load_library
from .model import EmbeddingModel
from .paths import bundled_model_path
from .raster_reader import (
    RasterSource,
    bounded_gdal_cache,
    geometries_from_wkb,
    geometries_to_geojson,
)
from .score_writer import ScoreWriter
from .similarity import best_matches
from .threads import single_threaded_blas
from .tile_plan import check_channels, plan_tiles, scale_warning
from .tiling import window_bounds, window_ring


@dataclass(frozen=True)
class ScoreSummary:
    n_tiles: int
    n_scored: int
    n_skipped: int
    provider: str
    seconds: float
    output_path: Path
    timing: dict[str, float]


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
    device: str = "auto",
    batch_size: int = 64,
    feedback: Feedback | None = None,
    style_qml: str | os.PathLike[str] | None = None,
) -> ScoreSummary:
    """Score every tile of a raster against the library; write the ``scores`` GeoPackage.

    Tiles with valid_frac < min_valid (and always those with no valid pixel) are skipped and
    counted. Raises an AnalogError subclass on any user-fixable problem, AnalogCancelled on
    cancel (the existing output untouched).
    """
    t0 = time.perf_counter()
    fb = ensure_feedback(feedback)
    tile_size = P.check(P.TILE_SIZE, tile_size)
    tile_units = P.check(P.TILE_UNITS, tile_units)
    overlap = float(P.check(P.OVERLAP, overlap))
    min_valid = float(P.check(P.MIN_VALID, min_valid))
    device = P.check(P.DEVICE, device)
    batch_size = int(P.check(P.BATCH_SIZE, batch_size))
    model_path = model_path or bundled_model_path()
    out = validate_output_path(output_path)
    check_not_an_input(out, [("INPUT", raster_path), ("LIBRARY", library_path),
                             ("MODEL", model_path)])
    style = resolve_style(style_qml, "scores.qml")
    model = EmbeddingModel(model_path, device=device, feedback=fb)
    lib = load_library(library_path, model.sha256, f"the model '{model.path.name}'")
    if lib.embedding_dim != model.embedding_dim:
        raise LibraryError(
            f"library embeddings have {lib.embedding_dim} values, the model gives "
            f"{model.embedding_dim}; rebuild the library with this model"
        )
    fb.pushInfo(
        f"Library {lib.path.name}: {lib.n_exemplars} exemplars, classes {list(lib.class_names)}"
    )
    check_cancelled(fb, "validation")

    with bounded_gdal_cache(), single_threaded_blas(), RasterSource(raster_path, bands) as src:
        check_channels(len(src.bands), model.channels)
        plan = plan_tiles(src, model.contract.tile_px, tile_size, tile_units, overlap, extent)
        grid = plan.grid
        fb.pushInfo(plan.describe())
        src.use_row_strips(grid.extent.col_off, grid.extent.width)
        warn = scale_warning(plan, lib.tile_m)
        if warn:
            fb.pushWarning(warn)
        mask_shapes, keep = _mask(src, mask_wkb, grid.extent)
        layer = src.layer_stats(model.contract.percentiles)
        fb.pushInfo(f"Pixels: {model.contract.describe()}; {layer.describe()}")
        stream = TileEmbeddingStream(
            src, (TileRequest(t, t.window) for t in grid), model, layer, fb,
            batch_size=batch_size, min_valid=min_valid, mask_shapes=mask_shapes, keep=keep,
        )
        meta = _run_metadata(model, lib.path, src.path, tile_size, tile_units, overlap,
                             min_valid, batch_size, extent, bands, plan.tile_w, plan.tile_h)
        progress = Progress(fb, grid.n_tiles)
        with ScoreWriter(out, src.info.crs_wkt, src.info.transform, meta, style, fb) as writer:
            for batch in stream:
                m = best_matches(batch.embeddings, lib.embeddings)
                tw = time.perf_counter()
                idx = [int(i) for i in m.best_index]
                writer.write_tiles(batch.payloads, m.scores, [lib.classes[i] for i in idx],
                                   [lib.exemplar_ids[i] for i in idx], batch.valid_frac)
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
        check_cancelled(fb, "writing")  # cancel during the last step still loses nothing
    fb.setProgress(100.0)
    seconds = time.perf_counter() - t0
    timing = {**stream.times.as_dict(), "wall_s": round(seconds, 4), "threads": model.threads}
    fb.pushInfo("Timing: " + json.dumps(timing))
    fb.pushInfo(
        f"Scored {n_scored} of {grid.n_tiles} tiles ({grid.n_tiles - n_scored} skipped) in "
        f"{seconds:.1f} s on {model.provider} ({n_scored / max(seconds, 1e-9):.0f} tiles/s)"
    )
    return ScoreSummary(grid.n_tiles, n_scored, grid.n_tiles - n_scored, model.provider, seconds,
                        out, timing)


def _mask(src: RasterSource, mask_wkb: Sequence[bytes], extent: Any) -> tuple[Any, Any]:
    """GeoJSON mask shapes and a keep(request) filter (tiles touching the mask), or (None, None)."""
    if not mask_wkb:
        return None, None
    geoms = geometries_from_wkb(mask_wkb, "mask polygon")
    union = geoms[0].Clone()
    for g in geoms[1:]:
        union = union.Union(g)
    def footprint(window: Any) -> Any:
        return polygon_from_ring(window_ring(src.info.transform, window))

    if not union.Intersects(footprint(extent)):
        shown = tuple(round(v, 6) for v in window_bounds(src.info.transform, extent))
        raise TilingError(
            f"the mask polygons do not overlap the processed extent {shown} (raster CRS); give "
            "masks in the raster's CRS over the raster"
        )
    # From here on only the reader thread uses `union` (OGR geometries are not thread-safe).
    return geometries_to_geojson(mask_wkb), lambda req: union.Intersects(footprint(req.window))


def _run_metadata(model: EmbeddingModel, library: Path, raster: str, tile_size: Any,
                  tile_units: str, overlap: float, min_valid: float, batch_size: int,
                  extent: Any, bands: Any, tw: int, th: int) -> dict[str, str]:
    """Layer metadata: which model, which library, which parameters made these scores."""
    run = {
        "INPUT": raster, "LIBRARY": str(library), "MODEL": str(model.path),
        "TILE_SIZE": tile_size, "TILE_UNITS": tile_units, "tile_px": [tw, th],
        "OVERLAP": overlap, "MIN_VALID": min_valid, "BATCH_SIZE": batch_size,
        "EXTENT": extent, "BANDS": list(bands) if bands else None,
        "preprocessing": model.contract.describe(),
    }
    return {
        "analog_model_sha256": model.sha256,
        "analog_model_version": model.metadata.version,
        "analog_parameters": json.dumps(run),
        "analog_created_utc": utc_now(),
    }
