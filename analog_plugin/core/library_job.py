"""build_library: embed Earth analogue exemplars (polygons over a raster and/or an image folder)
into a library GeoPackage, with the same tiling and preprocessing as scoring.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .atomic import validate_output_path
from .errors import LibraryError
from .feedback import Feedback, check_cancelled, ensure_feedback
from .job_common import (
    Batcher,
    LibrarySummary,
    check_batch,
    check_channels,
    stretch_info,
    tile_pixels,
)
from .library import (
    LIBRARY_MIN_COVER,
    Exemplar,
    ExemplarPolygon,
    RasterExemplarJob,
    plan_polygon_exemplars,
    write_library,
)
from .model import EmbeddingModel
from .output_writer import resolve_style
from .preprocess import Stretch, prepare_image
from .raster_reader import (
    RasterSource,
    decimated_shape,
    list_image_files,
    read_image_file,
)
from .tiling import (
    PixelWindow,
    check_tile_size,
)

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
    check_batch(batch_size)
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
            check_channels(len(src.bands), model.channels)
            crs_wkt = src.info.crs_wkt
            full = PixelWindow(0, 0, src.info.width, src.info.height)
            tw, th = tile_pixels(src, model, tile_size, tile_units, full)
            jobs = list(plan_polygon_exemplars(src, polygons, tw, th, str(raster_path)))
            total += len(jobs)
            fb.pushInfo(
                f"{len(jobs)} exemplar tiles of {tw} x {th} px from {len(polygons)} polygons"
            )
            stretch = src.compute_layer_stretch()
            fb.pushInfo(stretch_info(stretch))
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
    batcher = Batcher(model, batch_size)
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

    batcher = Batcher(model, batch_size)
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


