"""Exemplar planning: which tile windows of a raster become exemplars for each polygon.

Polygons are tiled like scoring (same tile size, no overlap) over the polygon's bounding window;
tiles at least half inside the polygon become exemplars ``<class>#<fid>_<k>`` (pixels outside the
polygon are kept: they are real context, as the scored tiles will have). A polygon smaller than a
tile gives one exemplar: the tile-sized window centred on it, so the ground scale matches the
scored tiles.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import LibraryError, TilingError
from .gpkg_io import polygon_from_ring
from .raster_reader import RasterSource, decimated_shape
from .tiling import (
    PixelWindow,
    bounds_to_window,
    clip_window,
    make_grid,
    window_bounds,
    window_ring,
)
from .wkb_geometry import geometries_from_wkb, geometries_to_geojson

LIBRARY_MIN_COVER = 0.5
"""A polygon tile becomes an exemplar when >= half of it is inside the polygon and valid."""


@dataclass(frozen=True)
class ExemplarPolygon:
    """An exemplar polygon in the raster CRS (WKB), its class, and where it came from."""

    wkb: bytes
    class_name: str
    source: str


@dataclass(frozen=True)
class RasterExemplarJob:
    """A tile window of the raster to embed as one exemplar."""

    window: PixelWindow
    exemplar_id: str
    class_name: str
    source: str
    footprint_wkb: bytes


def window_geometry(src: RasterSource, window: PixelWindow) -> Any:
    """OGR polygon of a pixel window's footprint (raster CRS)."""
    return polygon_from_ring(window_ring(src.info.transform, window))


def _fid_of(poly: ExemplarPolygon, i: int) -> str:
    if "#" in poly.source:
        tail = poly.source.rsplit("#", 1)[1].strip()
        if tail:
            return tail
    return str(i)


def plan_polygon_exemplars(
    src: RasterSource, polygons: Sequence[ExemplarPolygon], tw: int, th: int, raster_label: str
) -> Iterator[RasterExemplarJob]:
    """Exemplar tile windows for each polygon (see build_library for the rules)."""
    info = src.info
    geoms = geometries_from_wkb([p.wkb for p in polygons], "exemplar polygon")
    used_ids: set[str] = set()
    for i, (poly, geom) in enumerate(zip(polygons, geoms, strict=True)):
        if not poly.class_name or not str(poly.class_name).strip():
            raise LibraryError(f"exemplar polygon #{i} ({poly.source}) has no class name")
        minx, maxx, miny, maxy = geom.GetEnvelope()
        bwin = bounds_to_window(info.transform, (minx, miny, maxx, maxy))
        if clip_window(bwin, info.width, info.height) is None:
            rb = window_bounds(info.transform, PixelWindow(0, 0, info.width, info.height))
            raise TilingError(
                f"exemplar polygon #{i} ({poly.class_name}, {poly.source}) lies outside the "
                f"raster (bounds {tuple(round(v, 6) for v in rb)}); give polygons in the "
                "raster's CRS over the raster"
            )
        fid = _fid_of(poly, i)
        source = poly.source or f"{raster_label}#{fid}"
        shapes = geometries_to_geojson([poly.wkb])
        if bwin.width <= tw and bwin.height <= th:
            windows = [_centred(bwin, tw, th)]
        else:
            # Grow the bounding window to >= one tile per axis (centred), then tile it.
            grown = _centred(bwin, max(tw, bwin.width), max(th, bwin.height))
            grid = make_grid(grown.width, grown.height, tw, th, 0.0)
            cands = [
                PixelWindow(grown.col_off + t.col_off, grown.row_off + t.row_off, tw, th)
                for t in grid
            ]
            covers = [src.coverage(w, shapes, decimated_shape(tw, th, 64)) for w in cands]
            windows = [w for w, c in zip(cands, covers, strict=True) if c >= LIBRARY_MIN_COVER]
            if not windows:
                windows = [cands[int(np.argmax(covers))]]
        for k, w in enumerate(windows):
            eid = f"{poly.class_name}#{fid}_{k}"
            while eid in used_ids:
                eid += "'"
            used_ids.add(eid)
            footprint = window_geometry(src, w).ExportToWkb()
            yield RasterExemplarJob(w, eid, str(poly.class_name), source, bytes(footprint))


def _centred(win: PixelWindow, w: int, h: int) -> PixelWindow:
    c0 = win.col_off + (win.width - w) // 2
    r0 = win.row_off + (win.height - h) // 2
    return PixelWindow(int(c0), int(r0), int(w), int(h))


def is_null_class(value: object) -> bool:
    """NULL (None, QVariant NULL) or blank class values: such polygons are not exemplars."""
    if value is None:
        return True
    is_null = getattr(value, "isNull", None)
    if callable(is_null) and is_null():
        return True
    return not str(value).strip()


def exemplar_polygons(
    rows: Iterable[tuple[bytes, object, int]], class_field: str | None, default_class: str,
    source_label: str,
) -> tuple[list[ExemplarPolygon], int]:
    """``(wkb, class value, fid)`` rows -> exemplar polygons and the number skipped, by the ONE
    rule both the toolbox and the command line follow: without a class field every polygon is
    ``default_class``; with one, a polygon whose class is NULL or blank is skipped (counted)."""
    polygons: list[ExemplarPolygon] = []
    skipped = 0
    for wkb, value, fid in rows:
        if class_field and is_null_class(value):
            skipped += 1
            continue
        cls = str(value).strip() if class_field else default_class
        polygons.append(ExemplarPolygon(wkb=wkb, class_name=cls, source=f"{source_label}#{fid}"))
    return polygons, skipped
