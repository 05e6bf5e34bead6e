"""Peak memory of a scoring run does not grow with the raster (streaming reads and writes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from analog_plugin.core.pipeline import build_library
from tests.onnx_models import make_mean_model

RSS_CHILD = (
    "import resource, subprocess, sys\n"
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def _raster(path: Path, side: int) -> Path:
    rng = np.random.default_rng(side)
    with rasterio.open(path, "w", driver="GTiff", width=side, height=side, count=1,
                       dtype="uint8", crs="EPSG:32633", tiled=True, blockxsize=256,
                       blockysize=256, transform=from_origin(500000, 4000000, 1, 1)) as ds:
        for row in range(0, side, 256):
            block = rng.integers(0, 255, (1, 256, side), dtype=np.uint8)
            ds.write(block, window=((row, row + 256), (0, side)))
    return path


def _peak_rss_mb(raster: Path, library: Path, model: Path, out: Path) -> float:
    cmd = [sys.executable, "-m", "analog_plugin", "-q", "score", "--input", str(raster),
           "--library", str(library), "--model", str(model), "--output", str(out),
           "--tile-size", "64", "--device", "cpu"]
    res = subprocess.run([sys.executable, "-c", RSS_CHILD, *cmd], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parents[2])
    return int(res.stdout.strip().splitlines()[-1]) / 1024


@pytest.mark.slow
def test_peak_rss_is_flat_from_1024_to_12288_px(tmp_path: Path) -> None:
    model = make_mean_model(tmp_path / "m.onnx", input_size=32)
    folder = tmp_path / "ex" / "a"
    folder.mkdir(parents=True)
    _raster(folder / "e.tif", 256)
    lib = tmp_path / "lib.gpkg"
    build_library(model_path=model, output_path=lib, image_folder=folder.parent)
    small = _peak_rss_mb(_raster(tmp_path / "s.tif", 1024), lib, model, tmp_path / "s.gpkg")
    big = _peak_rss_mb(_raster(tmp_path / "b.tif", 12288), lib, model, tmp_path / "b.gpkg")
    # 144x more pixels (144 MB of uint8, 36864 tiles): the peak may only move by GDAL's bounded
    # 64 MB cache and the row strip, not with the raster (an unbounded cache would hold it all).
    print(json.dumps({"peak_rss_mb_1024": small, "peak_rss_mb_12288": big}))
    assert big - small < 100, (small, big)
