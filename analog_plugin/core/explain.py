"""Why a tile matched: the top tiles of a scores layer, each beside the exemplar it matched best.

The desktop panel's results list shows, per row, the tile's thumbnail, the thumbnail of its
``best_exemplar`` (an image file, or the exemplar's footprint on the raster it was cut from), the
score and the class. This module does the reading (GDAL/OGR, numpy) so the GUI only turns arrays
into pictures; thumbnails are 8-bit, stretched by their own 2-98 % like the model's input.
"""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import ogr

from .gdal_cache import bounded_gdal_cache
from .image_files import read_image_file
from .library import EXEMPLARS_LAYER
from .raster_reader import RasterSource
from .score_writer import SCORES_LAYER
from .tiling import PixelWindow, bounds_to_window, clip_window

THUMB = 96


@dataclass(frozen=True, eq=False)
class Match:
    """One row of the results list."""

    tile_id: int
    row: int
    col: int
    score: float
    percentile: float | None
    best_class: str
    best_exemplar: str
    bounds: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax in the scores CRS
    tile: np.ndarray | None  # (H, W) uint8 thumbnail
    exemplar: np.ndarray | None


def to_uint8(pixels: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(B, H, W) or (H, W) raw values -> (H, W) uint8: luma of 3 bands, 2-98 % stretch."""
    x = np.asarray(pixels, np.float64)
    if x.ndim == 3:
        x = x[0] if x.shape[0] < 3 else np.tensordot([0.299, 0.587, 0.114], x[:3], axes=1)
    ok = np.isfinite(x) if valid is None else (valid & np.isfinite(x))
    if not ok.any():
        return np.zeros(x.shape, np.uint8)
    lo, hi = np.percentile(x[ok], [2, 98])
    y = np.clip((x - lo) / max(hi - lo, 1e-12), 0, 1) * 255
    y[~ok] = 0
    return y.astype(np.uint8)  # type: ignore[no-any-return]


def _shrink(img: np.ndarray, size: int = THUMB) -> np.ndarray:
    """Nearest-neighbour shrink of a (H, W) picture to at most ``size`` px (display only)."""
    h, w = img.shape
    f = max(h, w) / size
    if f <= 1:
        return img
    rows = (np.arange(int(h / f)) * f).astype(int)
    cols = (np.arange(int(w / f)) * f).astype(int)
    return img[np.ix_(rows, cols)]


def _read_region(raster: str, bounds: tuple[float, float, float, float]) -> np.ndarray | None:
    with bounded_gdal_cache(), RasterSource(raster) as src:
        win = clip_window(bounds_to_window(src.info.transform, bounds), src.info.width,
                          src.info.height)
        if win is None:
            return None
        f = max(1.0, max(win.width, win.height) / (2 * THUMB))
        out = (max(1, int(win.height / f)), max(1, int(win.width / f)))
        td = src.read_window(PixelWindow(win.col_off, win.row_off, win.width, win.height),
                             out_shape=out)
        return _shrink(to_uint8(td.pixels, td.valid))


def exemplar_thumbnail(library: str | os.PathLike[str], exemplar_id: str) -> np.ndarray | None:
    """The exemplar's picture: its image file, or its footprint on its source raster."""
    ds = ogr.Open(str(library))
    if ds is None:
        return None
    lyr = ds.GetLayerByName(EXEMPLARS_LAYER)
    lyr.SetAttributeFilter("exemplar_id = '" + exemplar_id.replace("'", "''") + "'")
    feat = lyr.GetNextFeature()
    if feat is None:
        return None
    source = str(feat.GetField("source") or "")
    geom = feat.GetGeometryRef()
    path = source.rsplit("#", 1)[0]
    try:
        if geom is not None and not geom.IsEmpty() and Path(path).is_file():
            minx, maxx, miny, maxy = geom.GetEnvelope()
            return _read_region(path, (minx, miny, maxx, maxy))
        if Path(source).is_file():
            pixels, valid = read_image_file(source)
            return _shrink(to_uint8(pixels, valid))
    except Exception:  # noqa: BLE001 - a missing or unreadable source: no thumbnail, no error
        return None
    return None


def top_matches(scores: str | os.PathLike[str], library: str | os.PathLike[str] | None,
                raster: str | None, n: int = 20, thumbnails: bool = True) -> list[Match]:
    """The ``n`` best tiles (by score) with their thumbnails (None where unreadable)."""
    ds = ogr.Open(str(scores))
    if ds is None:
        raise FileNotFoundError(f"cannot open scores '{scores}'")
    lyr = ds.GetLayerByName(SCORES_LAYER) or ds.GetLayer(0)
    names = {lyr.GetLayerDefn().GetFieldDefn(i).GetName()
             for i in range(lyr.GetLayerDefn().GetFieldCount())}
    idx = lyr.GetLayerDefn().GetFieldIndex("score")
    lyr.SetIgnoredFields([k for k in names if k != "score"] + ["OGR_GEOMETRY"])
    best = heapq.nlargest(int(n), ((f.GetFieldAsDouble(idx), f.GetFID()) for f in lyr))
    lyr.SetIgnoredFields([])
    rows = []
    cache: dict[str, np.ndarray | None] = {}
    for _score, fid in best:
        f = lyr.GetFeature(fid)
        minx, maxx, miny, maxy = f.GetGeometryRef().GetEnvelope()
        ex = str(f.GetField("best_exemplar") or "")
        tile = _read_region(raster, (minx, miny, maxx, maxy)) if thumbnails and raster else None
        if thumbnails and library and ex not in cache:
            cache[ex] = exemplar_thumbnail(library, ex)
        rows.append(Match(
            int(f.GetField("tile_id")), int(f.GetField("row")), int(f.GetField("col")),
            float(f.GetField("score")),
            float(f.GetField("percentile")) if "percentile" in names
            and f.GetField("percentile") is not None else None,
            str(f.GetField("best_class") or ""), ex, (minx, miny, maxx, maxy), tile,
            cache.get(ex)))
    return rows
