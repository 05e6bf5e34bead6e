"""classify_landforms: the landform of every tile of a raster, from a labelled library (kNN).

Same stream, same checks as scoring (``tile_run``); each batch's embeddings become kNN votes
(``landforms.knn_votes``), kept per tile (N x classes floats: a 16384^2 scene at 128 px is 16 384
tiles, a few hundred kB) because smoothing needs each tile's neighbours; the polygons are then
written in batches into the atomic GeoPackage with a categorized style fitted to the classes
found (stored as its default style, so ``qgis_process`` output opens styled too).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import ogr

from . import params as P
from .atomic import check_not_an_input, validate_output_path
from .categorized_style import fit_categories
from .embedding_stream import Progress
from .errors import NoValidTilesError
from .feedback import Feedback, check_cancelled, ensure_feedback
from .gpkg_io import add_default_style, polygon_wkbs, read_style, resolve_style
from .landforms import knn_votes
from .landforms import smooth as smooth_votes
from .layer_writer import StreamingLayerWriter
from .paths import bundled_model_path
from .score_writer import tile_rings
from .tile_run import check_tiling, open_model_and_library, run_metadata, tile_run

LANDFORMS_LAYER = "landforms"
LANDFORM_FIELDS = [
    ("tile_id", ogr.OFTInteger64),
    ("row", ogr.OFTInteger),
    ("col", ogr.OFTInteger),
    ("landform", ogr.OFTString),
    ("confidence", ogr.OFTReal),
    ("second_landform", ogr.OFTString),
    ("valid_frac", ogr.OFTReal),
]
WRITE_BATCH = 4096


@dataclass(frozen=True)
class ClassifySummary:
    n_tiles: int
    n_classified: int
    provider: str
    seconds: float
    output_path: Path
    counts: dict[str, int]


def classify_landforms(
    raster_path: str,
    library_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    model_path: str | os.PathLike[str] | None = None,
    k: int = 5,
    smooth: str = "none",
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
) -> ClassifySummary:
    """Classify every tile with at least ``min_valid`` valid pixels; write the ``landforms``
    GeoPackage atomically. AnalogError subclasses on user-fixable problems."""
    t0 = time.perf_counter()
    fb = ensure_feedback(feedback)
    k = int(P.check(P.K, k))
    smooth_method = P.check(P.SMOOTH, smooth)
    tile_size, tile_units, overlap, min_valid, device, batch_size = check_tiling(
        tile_size, tile_units, overlap, min_valid, device, batch_size)
    model_path = model_path or bundled_model_path()
    out = validate_output_path(output_path)
    check_not_an_input(out, [("INPUT", raster_path), ("LIBRARY", library_path),
                             ("MODEL", model_path)])
    qml = read_style(resolve_style(style_qml, "landforms.qml"))
    model, lib = open_model_and_library(model_path, library_path, device, fb)
    classes = tuple(sorted(set(lib.classes)))
    code = {c: i for i, c in enumerate(classes)}
    codes = np.array([code[c] for c in lib.classes], np.int64)
    if k > lib.n_exemplars:
        fb.pushWarning(f"K={k} is more than the library's {lib.n_exemplars} exemplars; using "
                       f"all {lib.n_exemplars}")
    check_cancelled(fb, "validation")

    ids: list[np.ndarray] = []
    votes: list[np.ndarray] = []
    valid: list[np.ndarray] = []
    with tile_run(raster_path, bands, model, lib.tile_m, tile_size, tile_units, overlap, extent,
                  mask_wkb, batch_size, min_valid, fb) as run:
        grid, src = run.grid, run.src
        progress = Progress(fb, grid.n_tiles)
        for batch in run.stream:
            ids.append(np.array([t.tile_id for t in batch.payloads], np.int64))
            votes.append(knn_votes(batch.embeddings, lib.embeddings, codes, len(classes), k))
            valid.append(np.asarray(batch.valid_frac, np.float64))
            progress.update(batch.done)
        if not ids or sum(len(i) for i in ids) == 0:
            raise NoValidTilesError(
                f"all {grid.n_tiles} tiles have a valid fraction below MIN_VALID={min_valid} "
                "(nodata, outside the mask or outside the raster); check the raster's nodata "
                "value, the extent/mask, or lower MIN_VALID"
            )
        tile_id, v, vf = np.concatenate(ids), np.concatenate(votes), np.concatenate(valid)
        rows, cols = np.divmod(tile_id, grid.n_cols)
        decision = smooth_votes(v, rows, cols, (grid.n_rows, grid.n_cols), smooth_method)
        meta = run_metadata(model, run, lib.path, k=k, smooth=smooth_method,
                            tile_size=tile_size, tile_units=tile_units, overlap=overlap,
                            min_valid=min_valid, extent=extent,
                            bands=list(bands) if bands else None)
        check_cancelled(fb, "classification")
        names = np.array(classes + ("",), dtype=object)
        with StreamingLayerWriter(out, LANDFORMS_LAYER, src.info.crs_wkt, LANDFORM_FIELDS,
                                  metadata=meta, feedback=fb) as writer:
            for s in range(0, len(tile_id), WRITE_BATCH):
                sl = slice(s, s + WRITE_BATCH)
                tiles = [grid.tile(int(i)) for i in tile_id[sl]]
                rows_out = [
                    (int(t), int(r), int(c), str(names[a]), float(conf),
                     (str(names[b]) if b >= 0 else None), float(f))
                    for t, r, c, a, conf, b, f in zip(
                        tile_id[sl], rows[sl], cols[sl], decision.label[sl],
                        decision.confidence[sl], decision.second[sl], vf[sl], strict=True)
                ]
                writer.append(rows_out, polygon_wkbs(tile_rings(src.info.transform, tiles)))
                check_cancelled(fb, "writing")
            found = [classes[i] for i in sorted(set(decision.label.tolist()))]
            if qml is not None:
                add_default_style(writer.datasource, LANDFORMS_LAYER,
                                  fit_categories(qml, found), "landforms",
                                  "Mars Analogue Finder landforms")
    counts = {c: int(np.sum(decision.label == i)) for i, c in enumerate(classes)}
    seconds = time.perf_counter() - t0
    fb.setProgress(100.0)
    fb.pushInfo(f"Classified {len(tile_id)} of {grid.n_tiles} tiles in {seconds:.1f} s "
                f"(K={k}, SMOOTH={smooth_method}): " + json.dumps(counts))
    return ClassifySummary(grid.n_tiles, len(tile_id), model.provider, seconds, out, counts)
