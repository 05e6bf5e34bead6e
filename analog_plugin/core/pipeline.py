"""The two whole jobs, shared by the QGIS algorithms and the CLI: build_library, score_raster.

Order of work in both: validate everything cheap first (output path, model contract, device,
library/model identity, bands, tiling) so a mistake fails in a second, not after an hour; then
compute the per-layer stretch once; then stream tiles in small batches (memory stays bounded,
cancel is honoured between reads and batches); finally write atomically.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import validate_output_path
from .errors import LibraryError, NoValidTilesError, TilingError
from .feedback import Feedback, check_cancelled, ensure_feedback
from .library import (
    LIBRARY_MIN_COVER,
    Exemplar,
    ExemplarPolygon,
    RasterExemplarJob,
    load_library,
    plan_polygon_exemplars,
    window_geometry,
    write_library,
)
from .model import EmbeddingModel
from .output_writer import ScoreRecord, resolve_style, write_scores
from .preprocess import Stretch, prepare_image
from .raster_reader import (
    RasterSource,
    decimated_shape,
    geometries_from_wkb,
    geometries_to_geojson,
    list_image_files,
    read_image_file,
)
from .similarity import best_matches
from .tiling import (
    PixelWindow,
    TileGrid,
    check_overlap,
    check_tile_size,
    extent_window,
    make_grid,
    pixel_to_map,
    window_bounds,
    window_ring,
)

MAX_BATCH = 1024


@dataclass(frozen=True)
class LibrarySummary:
    n_exemplars: int
    classes: tuple[str, ...]
    output_path: Path


@dataclass(frozen=True)
class ScoreSummary:
    n_tiles: int
    n_scored: int
    n_skipped: int
    provider: str
    seconds: float
    output_path: Path


# -- shared checks ------------------------------------------------------------------------------


def _check_batch(batch_size: int) -> int:
    if not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH:
        raise TilingError(
            f"batch size {batch_size} must be an integer in 1..{MAX_BATCH}; 32 is a good default "
            "(smaller batches make cancel faster, larger ones a GPU busier)"
        )
    return batch_size


def _check_channels(n_bands: int, channels: int) -> None:
    if n_bands == channels or (channels == 1 and n_bands == 3) or (channels == 3 and n_bands == 1):
        return
    raise TilingError(
        f"the model takes {channels} channel(s) but {n_bands} band(s) are selected; "
        f"choose 1 or 3 bands with the BANDS parameter"
    )


def _tile_pixels(
    src: RasterSource,
    model: EmbeddingModel,
    tile_size: float | None,
    tile_units: str,
    extent: PixelWindow,
) -> tuple[int, int]:
    from .crs_units import tile_size_pixels

    if tile_size is None:
        return model.input_size, model.input_size
    check_tile_size(float(tile_size), tile_units)
    cx, cy = pixel_to_map(
        src.info.transform, extent.col_off + extent.width / 2, extent.row_off + extent.height / 2
    )
    return tile_size_pixels(
        float(tile_size), tile_units, src.info.crs_wkt, src.info.res[0], src.info.res[1], cy
    )


def _stretch_info(stretch: Stretch) -> str:
    lows_highs = zip(stretch.low, stretch.high, strict=True)
    pairs = ", ".join(f"{lo:.4g}..{hi:.4g}" for lo, hi in lows_highs)
    return f"Per-layer 2-98 % stretch (per band): {pairs}"


class _Batcher:
    """Accumulates model inputs with their payloads and embeds them batch_size at a time."""

    def __init__(self, model: EmbeddingModel, batch_size: int) -> None:
        self.model = model
        self.batch_size = batch_size
        self.inputs: list[np.ndarray] = []
        self.payloads: list[Any] = []

    def add(self, x: np.ndarray, payload: Any) -> bool:
        self.inputs.append(x)
        self.payloads.append(payload)
        return len(self.inputs) >= self.batch_size

    def flush(self) -> tuple[np.ndarray, list[Any]]:
        if not self.inputs:
            return np.zeros((0, self.model.embedding_dim), np.float32), []
        emb = self.model.embed(np.stack(self.inputs))
        payloads = self.payloads
        self.inputs, self.payloads = [], []
        return emb, payloads


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
    _check_batch(batch_size)
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
        _check_channels(len(src.bands), model.channels)
        ext = extent_window(src.info.transform, src.info.width, src.info.height, extent)
        tw, th = _tile_pixels(src, model, tile_size, tile_units, ext)
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
        fb.pushInfo(_stretch_info(stretch))
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
    batcher = _Batcher(model, batch_size)
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


# -- build_library --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ImageJob:
    path: Path
    exemplar_id: str
    class_name: str


def build_library(
    *,
    model_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    raster_path: str | os.PathLike[str] | None = None,
    polygons: Sequence[ExemplarPolygon] = (),
    image_folder: str | os.PathLike[str] | None = None,
    tile_size: float | None = None,
    tile_units: str = "pixels",
    bands: Sequence[int] | None = None,
    device: str = "auto",
    batch_size: int = 32,
    feedback: Feedback | None = None,
    style_qml: str | os.PathLike[str] | None = None,
) -> LibrarySummary:
    """Embed exemplars (polygons over a raster and/or an image folder) into a library GeoPackage.

    Polygons: tiled like scoring (same tile size, no overlap) over the polygon's bounding window;
    tiles at least half inside the polygon and half valid become exemplars ``<class>#<fid>_<k>``
    (pixels outside the polygon are kept: they are real context, as the scored tiles will have).
    A polygon smaller than a tile gives one exemplar: the tile-sized window centred on it, so the
    ground scale matches the scored tiles. Image folder: one exemplar per image
    ``<class>/<stem>``, class = sub-folder name (the folder's own name for files directly in it),
    each image with its own stretch.
    """
    fb = ensure_feedback(feedback)
    out = validate_output_path(output_path)
    style = resolve_style(style_qml, "library.qml")
    _check_batch(batch_size)
    if tile_size is not None:
        check_tile_size(float(tile_size), tile_units)
    if polygons and raster_path is None:
        raise LibraryError("exemplar polygons were given without a raster; give RASTER as well")
    if raster_path is not None and not polygons:
        raise LibraryError(
            "a raster was given without exemplar polygons; give POLYGONS with a class field"
        )
    if raster_path is None and image_folder is None:
        raise LibraryError(
            "nothing to build from: give a raster with exemplar polygons and/or an image folder"
        )
    image_files: list[Path] = []
    if image_folder is not None:
        folder = Path(os.fspath(image_folder))
        if not folder.is_dir():
            raise LibraryError(f"image folder '{folder}' does not exist or is not a folder")
        image_files = list_image_files(folder)
        if not image_files:
            raise LibraryError(
                f"no .jpg/.png/.tif image in '{folder}' or its sub-folders (one per class)"
            )
    model = EmbeddingModel(model_path, device=device, feedback=fb)
    check_cancelled(fb, "validation")

    exemplars: list[Exemplar] = []
    crs_wkt = ""
    total = len(image_files)
    done = 0
    if raster_path is not None:
        with RasterSource(raster_path, bands) as src:
            _check_channels(len(src.bands), model.channels)
            crs_wkt = src.info.crs_wkt
            full = PixelWindow(0, 0, src.info.width, src.info.height)
            tw, th = _tile_pixels(src, model, tile_size, tile_units, full)
            jobs = list(plan_polygon_exemplars(src, polygons, tw, th, str(raster_path)))
            total += len(jobs)
            fb.pushInfo(
                f"{len(jobs)} exemplar tiles of {tw} x {th} px from {len(polygons)} polygons"
            )
            stretch = src.compute_layer_stretch()
            fb.pushInfo(_stretch_info(stretch))
            done = _embed_raster_jobs(src, jobs, model, stretch, batch_size, exemplars, fb, total)
    if image_folder is not None and image_files:
        _embed_image_jobs(Path(os.fspath(image_folder)), image_files, model, batch_size,
                          exemplars, fb, total, done)
    if not exemplars:
        raise LibraryError(
            "no exemplar could be made: every polygon tile was mostly nodata/outside the "
            "polygon and no image was usable"
        )
    check_cancelled(fb, "writing")
    counts = Counter(e.class_name for e in exemplars)
    fb.pushInfo("Exemplars per class: " + json.dumps(dict(sorted(counts.items()))))
    write_library(
        out,
        exemplars,
        crs_wkt=crs_wkt,
        model_sha256=model.sha256,
        model_version=model.metadata.version,
        input_size=model.input_size,
        style_qml=style,
        feedback=fb,
    )
    fb.setProgress(100.0)
    return LibrarySummary(len(exemplars), tuple(sorted(counts)), out)


def _embed_raster_jobs(
    src: RasterSource,
    jobs: Sequence[RasterExemplarJob],
    model: EmbeddingModel,
    stretch: Stretch,
    batch_size: int,
    exemplars: list[Exemplar],
    fb: Feedback,
    total: int,
) -> int:
    batcher = _Batcher(model, batch_size)
    size = model.input_size
    skipped = 0

    def flush() -> None:
        emb, payloads = batcher.flush()
        for e, job in zip(emb, payloads, strict=True):
            exemplars.append(
                Exemplar(job.exemplar_id, job.class_name, job.source, e, job.footprint_wkb)
            )

    for i, job in enumerate(jobs):
        check_cancelled(fb, "reading exemplars")
        w = job.window
        td = src.read_window(w, decimated_shape(w.width, w.height, size))
        if td.valid_frac < LIBRARY_MIN_COVER:
            skipped += 1
            continue
        x = prepare_image(td.pixels, size, model.channels, model.mean, model.std, td.valid,
                          stretch)
        if batcher.add(x, job):
            flush()
            fb.setProgress(95.0 * (i + 1) / max(total, 1))
    flush()
    if skipped:
        fb.pushWarning(f"{skipped} polygon tile(s) skipped: less than half valid (nodata)")
    return len(jobs)


def _embed_image_jobs(
    folder: Path,
    files: Sequence[Path],
    model: EmbeddingModel,
    batch_size: int,
    exemplars: list[Exemplar],
    fb: Feedback,
    total: int,
    done: int,
) -> None:
    from .errors import RasterReadError

    batcher = _Batcher(model, batch_size)
    used: set[str] = set()

    def flush() -> None:
        emb, payloads = batcher.flush()
        for e, job in zip(emb, payloads, strict=True):
            exemplars.append(Exemplar(job.exemplar_id, job.class_name, str(job.path), e, None))

    for i, path in enumerate(files):
        check_cancelled(fb, "reading exemplar images")
        rel = path.relative_to(folder)
        cls = rel.parts[0] if len(rel.parts) > 1 else folder.name
        eid = f"{cls}/{path.stem}"
        while eid in used:
            eid += "'"
        used.add(eid)
        try:
            pixels, valid = read_image_file(path)
            x = prepare_image(pixels, model.input_size, model.channels, model.mean, model.std,
                              valid)
        except (RasterReadError, ValueError) as err:
            fb.pushWarning(f"skipped exemplar image '{path}': {err}")
            continue
        if batcher.add(x, _ImageJob(path, eid, cls)):
            flush()
            fb.setProgress(95.0 * (done + i + 1) / max(total, 1))
    flush()


__all__ = [
    "ExemplarPolygon",
    "LibrarySummary",
    "ScoreSummary",
    "build_library",
    "score_raster",
]
