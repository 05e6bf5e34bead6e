"""score_raster: score every tile of a raster against an analogue library (the main job).

Order of work: validate everything cheap first (output path, model contract, device,
library/model identity, bands, tiling) so a mistake fails in a second, not after an hour; then
compute the per-layer stretch once; then stream tiles in small batches (memory stays bounded,
cancel is honoured between reads and batches); finally write atomically.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from .atomic import validate_output_path
from .errors import LibraryError, NoValidTilesError, TilingError
from .feedback import Feedback, check_cancelled, ensure_feedback
from .job_common import (
    Batcher,
    ScoreSummary,
    check_batch,
    check_channels,
    stretch_info,
    tile_pixels,
)
from .library import (
    load_library,
    window_geometry,
)
from .model import EmbeddingModel
from .output_writer import ScoreRecord, resolve_style, write_scores
from .preprocess import Stretch, prepare_image
from .raster_reader import (
    RasterSource,
    decimated_shape,
    geometries_from_wkb,
    geometries_to_geojson,
)
from .similarity import best_matches
from .tiling import (
    TileGrid,
    check_overlap,
    check_tile_size,
    extent_window,
    make_grid,
    window_bounds,
    window_ring,
)

# -- score_raster ---------------------------------------------------------------------------------


def score_raster(
    *,
    raster_path: str | os.PathLike[str],
    library_path: str | os.PathLike[str],
    model_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    tile_size: float | None = None,
    tile_units: str = "pixels",
    overlap: float = 0.0,
    extent: tuple[float, float, float, float] | None = None,
    mask_wkb: Sequence[bytes] = (),
    bands: Sequence[int] | None = None,
    min_valid: float = 0.5,
    device: str = "auto",
    batch_size: int = 32,
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
    out = validate_output_path(output_path)
    style = resolve_style(style_qml, "scores.qml")
    check_batch(batch_size)
    check_overlap(float(overlap))
    if tile_size is not None:
        check_tile_size(float(tile_size), tile_units)
    if not (isinstance(min_valid, (int, float)) and 0.0 <= min_valid <= 1.0):
        raise TilingError(f"MIN_VALID {min_valid} must be between 0 and 1 (fraction of a tile)")
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

    with RasterSource(raster_path, bands) as src:
        check_channels(len(src.bands), model.channels)
        ext = extent_window(src.info.transform, src.info.width, src.info.height, extent)
        tw, th = tile_pixels(src, model, tile_size, tile_units, ext)
        grid = make_grid(src.info.width, src.info.height, tw, th, float(overlap), ext)
        mask_shapes: list[dict[str, Any]] | None = None
        mask_union = None
        if mask_wkb:
            geoms = geometries_from_wkb(mask_wkb, "mask polygon")
            mask_union = geoms[0].Clone()
            for g in geoms[1:]:
                mask_union = mask_union.Union(g)
            if not mask_union.Intersects(window_geometry(src, ext)):
                b = window_bounds(src.info.transform, ext)
                shown = tuple(round(v, 6) for v in b)
                raise TilingError(
                    f"the mask polygons do not overlap the processed extent {shown} "
                    "(raster CRS); give masks in the raster's CRS over the raster"
                )
            mask_shapes = geometries_to_geojson(mask_wkb)
        fb.pushInfo(
            f"Tiling: {grid.n_cols} x {grid.n_rows} = {grid.n_tiles} tiles of {tw} x {th} px, "
            f"stride {grid.stride_x} x {grid.stride_y} px, over {ext.width} x {ext.height} px"
        )
        stretch = src.compute_layer_stretch()
        fb.pushInfo(stretch_info(stretch))
        records = _score_tiles(src, grid, model, lib, stretch, mask_shapes, mask_union,
                               float(min_valid), batch_size, fb)
        crs_wkt = src.info.crs_wkt

    n_scored = len(records)
    n_skipped = grid.n_tiles - n_scored
    if n_scored == 0:
        raise NoValidTilesError(
            f"all {grid.n_tiles} tiles have a valid fraction below MIN_VALID={min_valid} "
            "(nodata, outside the mask or outside the raster); check the raster's nodata value, "
            "the extent/mask, or lower MIN_VALID"
        )
    check_cancelled(fb, "writing")
    fb.pushInfo(f"Writing {n_scored} tiles to {out}")
    write_scores(out, records, crs_wkt, style, fb)
    fb.setProgress(100.0)
    seconds = time.perf_counter() - t0
    fb.pushInfo(
        f"Scored {n_scored} of {grid.n_tiles} tiles ({n_skipped} skipped) in {seconds:.1f} s "
        f"on {model.provider}"
    )
    return ScoreSummary(grid.n_tiles, n_scored, n_skipped, model.provider, seconds, out)


def _score_tiles(
    src: RasterSource,
    grid: TileGrid,
    model: EmbeddingModel,
    lib: Any,
    stretch: Stretch,
    mask_shapes: list[dict[str, Any]] | None,
    mask_union: Any,
    min_valid: float,
    batch_size: int,
    fb: Feedback,
) -> list[ScoreRecord]:
    records: list[ScoreRecord] = []
    batcher = Batcher(model, batch_size)
    transform = src.info.transform
    n = grid.n_tiles
    size = model.input_size

    def flush() -> None:
        emb, payloads = batcher.flush()
        if not payloads:
            return
        m = best_matches(emb, lib.embeddings)
        for (tile, frac), score, idx in zip(payloads, m.scores, m.best_index, strict=True):
            records.append(
                ScoreRecord(
                    tile_id=tile.tile_id,
                    row=tile.row,
                    col=tile.col,
                    score=float(score),
                    best_class=lib.classes[int(idx)],
                    best_exemplar=lib.exemplar_ids[int(idx)],
                    valid_frac=frac,
                    ring=tuple(window_ring(transform, tile.window)),
                )
            )

    for i, tile in enumerate(grid):
        check_cancelled(fb, "tiling")
        if mask_union is not None and not mask_union.Intersects(
            window_geometry(src, tile.window)
        ):
            continue
        td = src.read_window(tile.window, decimated_shape(tile.width, tile.height, size),
                             mask_shapes)
        if td.valid_frac <= 0.0 or td.valid_frac < min_valid:
            continue
        x = prepare_image(td.pixels, size, model.channels, model.mean, model.std, td.valid,
                          stretch)
        if batcher.add(x, (tile, td.valid_frac)):
            flush()
            check_cancelled(fb, "scoring")
            fb.setProgress(95.0 * (i + 1) / n)
        elif i % 256 == 0:
            fb.setProgress(95.0 * (i + 1) / n)
    flush()
    check_cancelled(fb, "scoring")
    return records


