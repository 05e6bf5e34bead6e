"""What every "tiles of a raster against a library" job shares: open and check model + library, and
the tile-embedding stream over a planned grid.

``score_job`` (scores, heat map) and ``classify_job`` (landforms) differ only in what they do with
each batch of embeddings; the cheap checks (model contract, library identity, channels, tiling,
mask overlap) and the stream set-up live here once, so a rule cannot hold for one job and not the
other.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from . import params as P
from .embedding_stream import TileEmbeddingStream, TileRequest
from .errors import LibraryError, TilingError
from .feedback import Feedback
from .gdal_cache import bounded_gdal_cache, fit_gdal_cache
from .gpkg_io import polygon_from_ring, utc_now
from .library import AnalogueLibrary, load_library
from .model import EmbeddingModel
from .raster_reader import RasterSource
from .threads import single_threaded_blas
from .tile_plan import TilePlan, check_channels, plan_tiles, scale_warning
from .tiling import window_bounds, window_ring
from .wkb_geometry import geometries_from_wkb, geometries_to_geojson


def check_tiling(tile_size: Any, tile_units: Any, overlap: Any, min_valid: Any, device: Any,
                 batch_size: Any) -> tuple[float | None, str, float, float, str, int]:
    """The tiling and inference parameters every tile job takes, checked once by core's rules."""
    return (P.check(P.TILE_SIZE, tile_size), P.check(P.TILE_UNITS, tile_units),
            float(P.check(P.OVERLAP, overlap)), float(P.check(P.MIN_VALID, min_valid)),
            P.check(P.DEVICE, device), int(P.check(P.BATCH_SIZE, batch_size)))


def open_model_and_library(model_path: Any, library_path: Any, device: str,
                           fb: Feedback) -> tuple[EmbeddingModel, AnalogueLibrary]:
    """The model and a library made with it (same sha256, same embedding size), else
    LibraryError saying to rebuild the library."""
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
    return model, lib


@dataclass
class TileRun:
    """An open raster, its tile plan and the embedding stream over the plan's grid."""

    src: RasterSource
    plan: TilePlan
    stream: TileEmbeddingStream

    @property
    def grid(self) -> Any:
        return self.plan.grid


@contextlib.contextmanager
def tile_run(
    raster_path: str | os.PathLike[str], bands: Sequence[int] | None, model: EmbeddingModel,
    library_tile_m: float | None, tile_size: float | None, tile_units: str, overlap: float,
    extent: tuple[float, float, float, float] | None, mask_wkb: Sequence[bytes],
    batch_size: int, min_valid: float, fb: Feedback,
) -> Iterator[TileRun]:
    """Open the raster (bounded GDAL cache, single-threaded BLAS), plan the tiles, warn on a scale
    far from the library's, compute the layer statistics, and yield the stream."""
    with bounded_gdal_cache() as ceiling, single_threaded_blas(), \
            RasterSource(raster_path, bands) as src:
        check_channels(len(src.bands), model.channels)
        plan = plan_tiles(src, model.contract.tile_px, tile_size, tile_units, overlap, extent)
        grid = plan.grid
        fb.pushInfo(plan.describe())
        src.use_row_strips(grid.extent.col_off, grid.extent.width)
        fit_gdal_cache(src, grid.tile_height, ceiling)
        warn = scale_warning(plan, library_tile_m)
        if warn:
            fb.pushWarning(warn)
        mask_shapes, keep = _mask(src, mask_wkb, grid.extent)
        layer = src.layer_stats(model.contract.percentiles)
        fb.pushInfo(f"Pixels: {model.contract.describe()}; {layer.describe()}")
        stream = TileEmbeddingStream(
            src, (TileRequest(t, t.window) for t in grid), model, layer, fb,
            batch_size=batch_size, min_valid=min_valid, mask_shapes=mask_shapes, keep=keep,
        )
        yield TileRun(src, plan, stream)


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


def run_metadata(model: EmbeddingModel, run: TileRun, library: Any,
                 **params: Any) -> dict[str, str]:
    """Output layer metadata: which model, library and parameters (upper-case names, as in the
    algorithms) made this layer, and when."""
    doc = {"INPUT": run.src.path, "LIBRARY": str(library), "MODEL": str(model.path),
           **{k.upper(): (list(v) if isinstance(v, tuple) else v) for k, v in params.items()},
           "tile_px": [run.plan.tile_w, run.plan.tile_h],
           "preprocessing": model.contract.describe()}
    return {
        "analog_model_sha256": model.sha256,
        "analog_model_version": model.metadata.version,
        "analog_parameters": json.dumps(doc),
        "analog_created_utc": utc_now(),
    }
