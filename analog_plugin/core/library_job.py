"""build_library: embed analogue exemplars (polygons over a raster and/or an image folder) into a
library GeoPackage, through the same tile-embedding stream and pixel contract as scoring.

Polygon exemplars are planned by ``exemplar_plan`` and embedded by the stream (the raster's layer
statistics, the model's tile size); each image file is one exemplar, its own "layer". The library
records the tile size its exemplars were cut at (pixels, and metres where the CRS says), so a
scoring run at another ground scale can warn.
"""

from __future__ import annotations

import json
import os
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import params as P
from .atomic import check_not_an_input, validate_output_path
from .embedding_stream import Progress, TileEmbeddingStream, TileRequest
from .errors import LibraryError, RasterReadError
from .exemplar_plan import LIBRARY_MIN_COVER, ExemplarPolygon, plan_polygon_exemplars
from .feedback import Feedback, check_cancelled, ensure_feedback
from .gdal_cache import bounded_gdal_cache
from .gpkg_io import resolve_style
from .image_files import list_image_files, read_image_file
from .library import Exemplar, write_library
from .model import EmbeddingModel
from .paths import bundled_model_path
from .preprocess import prepare_image
from .raster_reader import RasterSource
from .threads import single_threaded_blas
from .tile_plan import check_channels, ground_size_m, tile_pixels
from .tiling import PixelWindow


@dataclass(frozen=True)
class LibrarySummary:
    n_exemplars: int
    classes: tuple[str, ...]
    output_path: Path


def build_library(
    *,
    output_path: str | os.PathLike[str],
    model_path: str | os.PathLike[str] | None = None,
    raster_path: str | os.PathLike[str] | None = None,
    polygons: Sequence[ExemplarPolygon] = (),
    image_folder: str | os.PathLike[str] | None = None,
    tile_size: float | None = None,
    tile_units: str = "pixels",
    bands: Sequence[int] | None = None,
    device: str = "auto",
    batch_size: int = 64,
    feedback: Feedback | None = None,
    style_qml: str | os.PathLike[str] | None = None,
) -> LibrarySummary:
    """Embed exemplars into a library GeoPackage (see the module docstring and
    ``exemplar_plan``). Image folder: one exemplar per image ``<class>/<stem>``, class = sub-folder
    name (the folder's own name for files directly in it)."""
    fb = ensure_feedback(feedback)
    tile_size = P.check(P.TILE_SIZE, tile_size)
    tile_units = P.check(P.TILE_UNITS, tile_units)
    device = P.check(P.DEVICE, device)
    batch_size = int(P.check(P.BATCH_SIZE, batch_size))
    model_path = model_path or bundled_model_path()
    out = validate_output_path(output_path)
    check_not_an_input(out, [("RASTER", raster_path), ("MODEL", model_path)])
    style = resolve_style(style_qml, "library.qml")
    if polygons and raster_path is None:
        raise LibraryError("exemplar polygons were given without a raster; give RASTER as well")
    if raster_path is not None and not polygons:
        raise LibraryError(
            "a raster was given without exemplar polygons; give POLYGONS with a class field"
        )
    if raster_path is None and image_folder is None:
        raise LibraryError(
            "nothing to build from: give a raster with exemplar polygons and/or an image folder "
            "(IMAGE_FOLDER)"
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
    meta: dict[str, str] = {}
    if raster_path is not None:
        crs_wkt, meta = _embed_polygons(raster_path, polygons, model, tile_size, tile_units,
                                        bands, batch_size, exemplars, fb)
    if image_files:
        sides = _embed_images(Path(os.fspath(image_folder or "")), image_files, model,
                              batch_size, exemplars, fb)
        if sides:
            meta["image_px"] = str(int(statistics.median(sides)))
    if not exemplars:
        raise LibraryError(
            "no exemplar could be made: every polygon tile was mostly nodata/outside the "
            "polygon and no image was usable"
        )
    check_cancelled(fb, "writing")
    counts = Counter(e.class_name for e in exemplars)
    fb.pushInfo("Exemplars per class: " + json.dumps(dict(sorted(counts.items()))))
    meta["preprocessing"] = model.contract.describe()
    write_library(out, exemplars, crs_wkt=crs_wkt, model_sha256=model.sha256,
                  model_version=model.metadata.version, input_size=model.input_size,
                  style_qml=style, feedback=fb, extra_meta=meta)
    fb.setProgress(100.0)
    return LibrarySummary(len(exemplars), tuple(sorted(counts)), out)


def _embed_polygons(
    raster_path: str | os.PathLike[str], polygons: Sequence[ExemplarPolygon],
    model: EmbeddingModel, tile_size: float | None, tile_units: str,
    bands: Sequence[int] | None, batch_size: int, exemplars: list[Exemplar], fb: Feedback,
) -> tuple[str, dict[str, str]]:
    with bounded_gdal_cache(), single_threaded_blas(), RasterSource(raster_path, bands) as src:
        check_channels(len(src.bands), model.channels)
        full = PixelWindow(0, 0, src.info.width, src.info.height)
        tw, th = tile_pixels(src, model.contract.tile_px, tile_size, tile_units, full)
        jobs = list(plan_polygon_exemplars(src, polygons, tw, th, str(raster_path)))
        fb.pushInfo(f"{len(jobs)} exemplar tiles of {tw} x {th} px from {len(polygons)} polygons")
        layer = src.layer_stats(model.contract.percentiles)
        stream = TileEmbeddingStream(src, (TileRequest(j, j.window) for j in jobs), model,
                                     layer, fb, batch_size=batch_size,
                                     min_valid=LIBRARY_MIN_COVER)
        progress = Progress(fb, len(jobs), what="exemplar tiles")
        for batch in stream:
            for job, emb in zip(batch.payloads, batch.embeddings, strict=True):
                exemplars.append(Exemplar(job.exemplar_id, job.class_name, job.source, emb,
                                          job.footprint_wkb))
            progress.update(batch.done)
        if stream.times.skipped:
            fb.pushWarning(f"{stream.times.skipped} polygon tile(s) skipped: less than half "
                           "valid (nodata)")
        tile_m = ground_size_m(src, tw, th, full.width / 2, full.height / 2)
        meta = {"tile_px": f"{tw}x{th}", "tile_m": f"{tile_m:.6g}" if tile_m else ""}
        return src.info.crs_wkt, meta


def _embed_images(
    folder: Path, files: Sequence[Path], model: EmbeddingModel, batch_size: int,
    exemplars: list[Exemplar], fb: Feedback,
) -> list[int]:
    """One exemplar per image, each its own layer; returns the images' long sides in pixels."""
    used: set[str] = set()
    inputs: list[np.ndarray] = []
    jobs: list[tuple[str, str, Path]] = []
    sides: list[int] = []
    progress = Progress(fb, len(files), what="exemplar images")

    def flush() -> None:
        if inputs:
            emb = model.embed(np.stack(inputs))
            for (eid, cls, path), e in zip(jobs, emb, strict=True):
                exemplars.append(Exemplar(eid, cls, str(path), e, None))
            inputs.clear()
            jobs.clear()

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
            inputs.append(prepare_image(pixels, model.contract, valid))
        except (RasterReadError, ValueError) as err:
            fb.pushWarning(f"skipped exemplar image '{path}': {err}")
            continue
        jobs.append((eid, cls, path))
        sides.append(max(pixels.shape[1:]))
        if len(inputs) >= batch_size:
            flush()
            progress.update(i + 1)
    flush()
    return sides
