#!/usr/bin/env python3
"""Build the bundled demo data from the team's real imagery (run once; the outputs are committed).

- ``demo/mars_scene.tif``: a georeferenced Mars scene in a Mars CRS (IAU_2015:49900, Mars 2015
  sphere, geographic), a mosaic of real HiRISE landmark tiles (Wagstaff et al. 2018) from the
  VALIDATION observations of the model's split (so the model never saw them), one 227x227 tile per
  cell. uint8, nodata 0 (HiRISE black collars become nodata, as in real mosaics). The pixel size is
  nominal: 1 m at the scene's centre latitude (the browse crops were resized, so true scales vary).
- ``demo/mars_scene_truth.csv``: row, col (zero-based, top-left) -> landform class, source tile and
  HiRISE observation of each cell.
- ``demo/earth_exemplars/dune_field/*.jpg``: a handful of AID Desert images (validation split) that
  show dune fields, standing in for Qaidam Basin dune exemplars.

Usage: ``python scripts/make_demo_data.py --data ../shared/data``
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import shutil
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.crs import CRS
from rasterio.transform import from_origin

REPO = Path(__file__).resolve().parent.parent
V1_SPLIT = REPO / "models" / "archive" / "analog-siamese-1.1.0.split.json"
CELL = 227
COLS, ROWS = 8, 6
# Cells per class (48 in all): every landform of the set, dunes well represented.
QUOTA = {"dark_dune": 8, "bright_dune": 5, "crater": 9, "slope_streak": 3, "other": 17, "edge": 6}
MARS_RADIUS_M = 3_396_190.0
CENTRE_LAT, WEST_LON = -4.6, 137.2  # nominal placement near Gale crater
DUNE_EXEMPLARS = ["desert_205.jpg", "desert_216.jpg", "desert_235.jpg", "desert_249.jpg",
                  "desert_268.jpg", "desert_292.jpg", "desert_32.jpg", "desert_135.jpg"]
SEED = 7


def pick_cells(data: Path, split: dict) -> list[dict[str, str]]:
    """Choose validation tiles per class quota and shuffle them over the grid (seeded)."""
    val_obs = set(split["hirise"]["val_observations"])
    by_class: dict[str, list[dict[str, str]]] = {}
    with open(data / "hirise-v1" / "labels.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["observation"] in val_obs:
                by_class.setdefault(row["class"], []).append(row)
    rng = random.Random(SEED)
    chosen: list[dict[str, str]] = []
    for cls, n in QUOTA.items():
        pool = sorted(by_class[cls], key=lambda r: r["file"])
        # Spread picks over observations: one tile per observation first, then the rest.
        rng.shuffle(pool)
        first_of_obs: dict[str, dict[str, str]] = {}
        for r in pool:
            first_of_obs.setdefault(r["observation"], r)
        first = list(first_of_obs.values())
        rest = [r for r in pool if r not in first]
        chosen.extend((first + rest)[:n])
    rng.shuffle(chosen)
    assert len(chosen) == COLS * ROWS
    return chosen


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the shared data folder")
    ap.add_argument("--out", type=Path, default=REPO / "demo")
    args = ap.parse_args()
    split = json.loads((V1_SPLIT).read_text())
    cells = pick_cells(args.data, split)
    args.out.mkdir(parents=True, exist_ok=True)

    mosaic = np.zeros((ROWS * CELL, COLS * CELL), dtype=np.uint8)
    truth = []
    for i, rec in enumerate(cells):
        r, c = divmod(i, COLS)
        img = np.asarray(Image.open(args.data / "hirise-v1" / "tiles" / rec["file"]).convert("L"))
        if img.shape != (CELL, CELL):
            img = np.asarray(Image.fromarray(img).resize((CELL, CELL), Image.BILINEAR))
        mosaic[r * CELL:(r + 1) * CELL, c * CELL:(c + 1) * CELL] = img
        truth.append({"row": r, "col": c, "class": rec["class"], "file": rec["file"],
                      "observation": rec["observation"]})

    # 1 m per pixel at the centre latitude, in degrees of the Mars sphere.
    res_y = math.degrees(1.0 / MARS_RADIUS_M)
    res_x = res_y / math.cos(math.radians(CENTRE_LAT))
    north = CENTRE_LAT + ROWS * CELL * res_y / 2
    transform = from_origin(WEST_LON, north, res_x, res_y)
    profile = {
        "driver": "GTiff", "width": mosaic.shape[1], "height": mosaic.shape[0], "count": 1,
        "dtype": "uint8", "crs": CRS.from_user_input("IAU_2015:49900"), "transform": transform,
        "nodata": 0, "compress": "deflate", "predictor": 2, "tiled": True,
        "blockxsize": 256, "blockysize": 256,
    }
    scene = args.out / "mars_scene.tif"
    with rasterio.open(scene, "w", **profile) as dst:
        dst.write(mosaic, 1)
        dst.update_tags(SOURCE="HiRISE landmark tiles (Wagstaff et al. 2018, DOI "
                        "10.5281/zenodo.1048301), NASA/JPL/University of Arizona; mosaic by "
                        "scripts/make_demo_data.py; nominal 1 m/px", CELL_SIZE_PX=str(CELL))
        dst.build_overviews([2, 4], rasterio.enums.Resampling.average)
    with open(args.out / "mars_scene_truth.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["row", "col", "class", "file", "observation"])
        w.writeheader()
        w.writerows(truth)

    ex_dir = args.out / "earth_exemplars" / "dune_field"
    if ex_dir.exists():
        shutil.rmtree(ex_dir)
    ex_dir.mkdir(parents=True)
    val_desert = set(split["aid"]["val"]["Desert"])
    for name in DUNE_EXEMPLARS:
        assert name in val_desert, f"{name} is not in the AID validation split"
        shutil.copy2(args.data / "aid-natural" / "images" / "Desert" / name, ex_dir / name)
        (ex_dir / name).chmod(0o644)
    print(f"wrote {scene} ({scene.stat().st_size / 1e6:.1f} MB), {len(truth)} cells, "
          f"{len(DUNE_EXEMPLARS)} exemplars")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
