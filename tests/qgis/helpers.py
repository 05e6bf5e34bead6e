"""Hand computation of the analytic mean model's expected scores (see tests/onnx_models.py)."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from qgis.core import QgsVectorLayer

from tests.onnx_models import expected_mean_embedding

LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601, written out here as an independent oracle

# Exemplar means of the synthetic library (tests/qgis/conftest.py::image_folder).
LIBRARY_MEANS = {"bright": 0.5, "dark": 0.25}


def read_raster(path: Path) -> tuple[np.ndarray, float | None]:
    with rasterio.open(path) as src:
        return src.read().astype(np.float64), src.nodata


def tile_mean01(
    arr: np.ndarray, nodata: float | None, row_off: int, col_off: int, size: int,
    bands: list[int] | None = None,
) -> float:
    """0..1 mean of a fully-inside, size x size tile after the per-layer 2-98 % stretch."""
    valid = np.ones(arr.shape[1:], bool) if nodata is None else np.all(arr != nodata, axis=0)
    if bands:
        arr = arr[[b - 1 for b in bands]]
    lo = np.array([np.percentile(b[valid], 2) for b in arr])[:, None, None]
    hi = np.array([np.percentile(b[valid], 98) for b in arr])[:, None, None]
    tile = arr[:, row_off:row_off + size, col_off:col_off + size]
    tvalid = valid[row_off:row_off + size, col_off:col_off + size]
    s = np.clip((tile - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0, 1.0)
    if s.shape[0] == 3:
        s = np.tensordot(np.asarray(LUMA_WEIGHTS), s, axes=1)[None]
    return float(s[0][tvalid].mean())


def expected_score(mean01: float, library: dict[str, float] = LIBRARY_MEANS) -> tuple[float, str]:
    """(score, best class) = ((1 + max cos) / 2, argmax) against the library exemplars."""
    e = expected_mean_embedding(mean01)
    cos = {cls: float(e @ expected_mean_embedding(m)) for cls, m in library.items()}
    best = max(cos, key=lambda k: cos[k])
    return (1.0 + cos[best]) / 2.0, best


def features_by_tile(layer: QgsVectorLayer) -> dict[int, Any]:
    return {int(f["tile_id"]): f for f in layer.getFeatures()}


def layer_styles(gpkg: Path) -> list[tuple[str, int, str]]:
    with sqlite3.connect(gpkg) as con:
        return list(con.execute("SELECT f_table_name, useAsDefault, styleQML FROM layer_styles"))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def qgis_process(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["qgis_process", *args], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"qgis_process {' '.join(args)}\n{proc.stdout}\n{proc.stderr}"
    return proc
