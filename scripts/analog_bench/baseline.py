"""The plain sequential read -> stretch -> infer -> write loop the engine must not lose to."""

from __future__ import annotations

import argparse
import itertools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .machine import fmt_eta
from .model_only import make_session, model_input
from .scene import library_embeddings
from .settings import CONFIGS, F32, MIN_VALID


def tile_windows(width: int, height: int, tile: int, stride: int) -> Iterator[tuple[int, int]]:
    """(col_off, row_off) in row-major order; n = ceil((L - T) / s) + 1 per axis, as the engine."""
    n_cols = -(-(width - tile) // stride) + 1
    n_rows = -(-(height - tile) // stride) + 1
    for r, c in itertools.product(range(n_rows), range(n_cols)):
        yield c * stride, r * stride


@dataclass
class Writer:
    """Baseline output: one polygon (tile_id, score) per tile, one OGR transaction per batch."""

    path: Path
    crs_wkt: str
    transform: Any
    ds: Any = None
    layer: Any = None

    def __post_init__(self) -> None:
        from osgeo import ogr, osr

        self.path.unlink(missing_ok=True)
        self.ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(self.path))
        srs = osr.SpatialReference()
        srs.ImportFromWkt(self.crs_wkt)
        self.layer = self.ds.CreateLayer("scores", srs, ogr.wkbPolygon)
        self.layer.CreateField(ogr.FieldDefn("tile_id", ogr.OFTInteger64))
        self.layer.CreateField(ogr.FieldDefn("score", ogr.OFTReal))

    def write(self, tiles: list[tuple[int, int, int]], size: int, scores: F32) -> None:
        from osgeo import ogr

        self.layer.StartTransaction()
        for (tid, col, row), score in zip(tiles, scores, strict=True):
            ring = ogr.Geometry(ogr.wkbLinearRing)
            for dc, dr in ((0, 0), (size, 0), (size, size), (0, size), (0, 0)):
                ring.AddPoint_2D(*(self.transform * (col + dc, row + dr)))
            poly = ogr.Geometry(ogr.wkbPolygon)
            poly.AddGeometry(ring)
            feat = ogr.Feature(self.layer.GetLayerDefn())
            feat.SetField("tile_id", tid)
            feat.SetField("score", float(score))
            feat.SetGeometry(poly)
            self.layer.CreateFeature(feat)
        self.layer.CommitTransaction()

    def close(self) -> None:
        self.ds = self.layer = None


def stretch_tile(a: npt.NDArray[Any], valid: npt.NDArray[np.bool_], mean: float,
                 std: float) -> F32:
    """Per-tile 2-98 % stretch (valid pixels) -> 0..1 -> (x - mean) / std; nodata -> mean."""
    lo, hi = np.percentile(a[valid], (2.0, 98.0))
    x = np.clip((a.astype(np.float32) - np.float32(lo)) / np.float32(max(hi - lo, 1e-6)), 0, 1)
    x[~valid] = mean
    return (x - np.float32(mean)) / np.float32(std)


def run_baseline(scene: Path, lib: Path, cfg: str, n: int, args: argparse.Namespace,
                 threads: int) -> dict[str, Any]:
    """Plain sequential read -> stretch -> infer (batch) -> cosine -> write loop, no threads."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    sess = make_session(threads, args.device)
    name, c, s, mean, std = model_input(sess)
    library = library_embeddings(lib)
    tile, overlap = CONFIGS[cfg]
    stride = max(1, round(tile * (1 - overlap / 100)))
    t0 = time.perf_counter()
    with rasterio.open(scene) as src:
        writer = Writer(args.out_dir / f"baseline_{cfg}_{n}.gpkg", src.crs.to_wkt(), src.transform)
        windows = list(tile_windows(src.width, src.height, tile, stride))
        buf = np.empty((args.batch, c, s, s), dtype=np.float32)
        pending: list[tuple[int, int, int]] = []
        scored, next_mark = 0, 0.25

        def flush() -> None:
            emb = sess.run(None, {name: buf[: len(pending)]})[0]
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
            writer.write(pending, tile, (1.0 + (emb @ library.T).max(axis=1)) / 2.0)
            pending.clear()

        for tid, (col, row) in enumerate(windows):
            win = Window(col, row, tile, tile)
            boundless = col + tile > src.width or row + tile > src.height
            a = src.read(1, window=win, out_shape=(s, s), resampling=Resampling.average,
                         boundless=boundless, fill_value=src.nodata)
            valid = a != src.nodata if src.nodata is not None else np.ones(a.shape, bool)
            if valid.mean() < MIN_VALID:
                continue
            buf[len(pending)] = stretch_tile(a, valid, mean[0], std[0])  # 1 band -> all channels
            pending.append((tid, col, row))
            scored += 1
            if len(pending) == args.batch:
                flush()
            if (tid + 1) / len(windows) >= next_mark:
                print(f"    baseline {cfg} {n}px: "
                      f"{fmt_eta(time.perf_counter() - t0, (tid + 1) / len(windows))}", flush=True)
                next_mark += 0.25
        if pending:
            flush()
        writer.close()
    wall = time.perf_counter() - t0
    return {"tiles": scored, "wall_s": wall, "tiles_per_s": scored / wall if wall else math.nan}
