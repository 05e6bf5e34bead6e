"""The bench scenes (the demo HiRISE mosaic mirrored to N x N px) and the exemplar library."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .settings import BLOCK, DEMO_SCENE, EXEMPLARS, F32


def mirror_index(n: int, length: int) -> npt.NDArray[np.intp]:
    """Indices 0..n-1 folded into 0..length-1 by mirroring (no seams between copies)."""
    i = np.arange(n) % (2 * length)
    return np.where(i < length, i, 2 * length - 1 - i).astype(np.intp)


def make_scene(n: int, out_dir: Path) -> Path:
    """``scene_N.tif``: the demo mosaic mirrored to N x N px, tiled 256 x 256, uncompressed."""
    import rasterio
    from rasterio.transform import Affine
    from rasterio.windows import Window

    path = out_dir / f"scene_{n}.tif"
    if path.is_file():
        with rasterio.open(path) as ds:
            if ds.width == n and ds.height == n and ds.dtypes[0] == "uint8":
                return path
    with rasterio.open(DEMO_SCENE) as src:
        data = src.read(1)
        crs, t, nodata = src.crs, src.transform, src.nodata
    # Same origin and pixel size; shrink the pixel if the bounds would leave +-180 / +-90 deg.
    scale = min(1.0, (180.0 - t.c) / (n * t.a), (t.f + 90.0) / (n * -t.e))
    transform = Affine(t.a * scale, 0.0, t.c, 0.0, t.e * scale, t.f)
    profile = {
        "driver": "GTiff", "width": n, "height": n, "count": 1, "dtype": "uint8",
        "crs": crs, "transform": transform, "nodata": nodata, "tiled": True,
        "blockxsize": BLOCK, "blockysize": BLOCK, "compress": "none", "BIGTIFF": "IF_SAFER",
    }
    cols = mirror_index(n, data.shape[1])
    tmp = path.with_suffix(".tmp.tif")
    with rasterio.open(tmp, "w", **profile) as dst:
        for r0 in range(0, n, BLOCK):
            h = min(BLOCK, n - r0)
            rows = mirror_index(r0 + h, data.shape[0])[r0:]
            dst.write(data[rows][:, cols], 1, window=Window(0, r0, n, h))
    tmp.replace(path)
    Path(f"{path}.aux.xml").unlink(missing_ok=True)  # statistics of an older scene_N.tif
    return path


def qgis_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env["ANALOG_THREADS"] = str(threads)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    return env


def build_library(out_dir: Path, env: dict[str, str]) -> Path:
    lib = out_dir / "library.gpkg"
    lib.unlink(missing_ok=True)
    cmd = ["qgis_process", "run", "analog:buildlibrary", "--",
           f"IMAGE_FOLDER={EXEMPLARS}", f"OUTPUT={lib}"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not lib.is_file():
        sys.exit(f"analog:buildlibrary failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return lib


def library_embeddings(lib: Path) -> F32:
    """(M, D) unit-length float32 embeddings of layer ``exemplars`` (blob field ``embedding``)."""
    from osgeo import ogr

    ds = ogr.Open(str(lib))
    layer = ds.GetLayerByName("exemplars")
    vecs = [np.frombuffer(f.GetFieldAsBinary("embedding"), dtype="<f4") for f in layer]
    emb = np.vstack(vecs).astype(np.float32)
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def count_features(gpkg: Path) -> int:
    from osgeo import ogr

    ds = ogr.Open(str(gpkg))
    layer = ds.GetLayerByName("scores") if ds is not None else None
    return int(layer.GetFeatureCount()) if layer is not None else 0
