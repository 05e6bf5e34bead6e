"""Planning a many-raster scoring run: every check before any work, per-raster facts once, chunks.

The driver (command line or QGIS) opens each raster ONCE to validate it and to compute what every
chunk of it needs: the tile plan and the layer statistics of the stretch (a percentile pass over
the whole raster, far too costly to repeat per chunk). Chunks are runs of consecutive tile ids of
one raster, ``chunk_tiles`` long: the unit of scheduling, of the GeoParquet parts and of resuming.

Chunk size: a dask task costs about 1 ms of scheduler time plus a model load per worker (once);
at ~600 tiles/s per core a chunk of 2048 tiles runs ~3 s, so scheduling stays far below 1 %
(docs/CLUSTER.md has the calculation for the global CTX mosaic).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import params as P
from .errors import TilingError
from .gdal_cache import bounded_gdal_cache
from .preprocess import LayerStats
from .raster_reader import RasterSource
from .tile_plan import TilePlan, check_channels, plan_tiles

DEFAULT_CHUNK_TILES = 2048


@dataclass(frozen=True)
class RasterFacts:
    """What a worker needs to score a raster's chunks without re-reading the whole raster."""

    index: int
    path: str
    crs_wkt: str
    transform: tuple[float, ...]
    plan: TilePlan
    layer: LayerStats


@dataclass(frozen=True)
class Chunk:
    """Tiles ``first`` .. ``last - 1`` (row-major ids) of raster ``raster``."""

    raster: int
    first: int
    last: int

    @property
    def name(self) -> str:
        return f"r{self.raster:05d}_t{self.first:010d}"

    @property
    def n_tiles(self) -> int:
        return self.last - self.first


def read_raster_list(inputs: Sequence[str]) -> list[str]:
    """Raster paths from the arguments: files, VRTs (one raster each), or ``.txt`` lists (one path
    per line, ``#`` comments; relative paths are relative to the list)."""
    out: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.suffix.lower() == ".txt" and p.is_file():
            for line in p.read_text(encoding="utf-8").splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    q = Path(line)
                    out.append(str(q if q.is_absolute() else p.parent / q))
        else:
            out.append(str(item))
    if not out:
        raise TilingError("INPUT: no raster given; give one or more rasters, a VRT or a .txt list")
    missing = [r for r in out if not r.startswith("/vsi") and not os.path.isfile(r)]
    if missing:
        raise TilingError(f"INPUT: {len(missing)} raster(s) do not exist, e.g. {missing[:3]}; "
                          "check the paths (relative paths in a list are relative to the list)")
    return out


def raster_facts(rasters: Sequence[str], model: Any, tile_size: float | None, tile_units: str,
                 overlap: float, bands: Sequence[int] | None) -> list[RasterFacts]:
    """Validate and describe every raster (same CRS for all: one output layer)."""
    facts: list[RasterFacts] = []
    for i, path in enumerate(rasters):
        with bounded_gdal_cache(), RasterSource(path, bands) as src:
            check_channels(len(src.bands), model.channels)
            plan = plan_tiles(src, model.contract.tile_px, tile_size, tile_units, overlap, None)
            layer = src.layer_stats(model.contract.percentiles)
            facts.append(RasterFacts(i, str(path), src.info.crs_wkt,
                                     tuple(float(v) for v in tuple(src.info.transform)[:6]),
                                     plan, layer))
    first = facts[0].crs_wkt
    from osgeo import osr

    ref = osr.SpatialReference()
    ref.ImportFromWkt(first)
    for f in facts[1:]:
        other = osr.SpatialReference()
        other.ImportFromWkt(f.crs_wkt)
        if first and f.crs_wkt and not ref.IsSame(other):
            raise TilingError(
                f"INPUT: '{f.path}' is in another CRS than '{facts[0].path}'; one output layer "
                "needs one CRS: warp the rasters to a common CRS (gdalwarp) or run them apart"
            )
    return facts


def plan_chunks(facts: Sequence[RasterFacts], chunk_tiles: int) -> list[Chunk]:
    chunk_tiles = int(P.check(P.CHUNK_TILES, chunk_tiles))
    chunks = []
    for f in facts:
        n = f.plan.grid.n_tiles
        chunks += [Chunk(f.index, s, min(s + chunk_tiles, n)) for s in range(0, n, chunk_tiles)]
    return chunks


def run_key(facts: Sequence[RasterFacts], model_sha256: str, library: str,
            settings: dict[str, Any]) -> str:
    """Identity of a run: resuming is only allowed into the parts folder of the SAME run."""
    doc = {"rasters": [(f.path, os.path.getsize(f.path) if os.path.isfile(f.path) else 0,
                        f.plan.grid.n_tiles) for f in facts],
           "model": model_sha256, "library": str(Path(library).resolve()),
           "settings": settings}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]
