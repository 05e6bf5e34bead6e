"""Exemplar image files (jpg/png/tif, not georeferenced): listing a folder and reading one.

Apart from ``raster_reader`` (windowed reads of a georeferenced layer) because an image file is
read whole, its alpha band is a mask rather than data, and it never has a CRS.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

from .errors import RasterReadError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff")


def read_image_file(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """An exemplar image (jpg/png/tif) -> (pixels (B,H,W) float32, valid (H,W) or None).

    Alpha bands are dropped (they feed the valid mask instead); gray+alpha gives 1 band,
    RGBA 3 bands.
    """
    p = str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(p) as ds:
                bands = [
                    i + 1 for i, ci in enumerate(ds.colorinterp) if ci != ColorInterp.alpha
                ] or [1]
                if len(bands) > 3 and ds.count >= 3:
                    bands = bands[:3]
                data = ds.read(indexes=bands).astype(np.float32)
                masks = ds.read_masks(indexes=bands)
    except (RasterioIOError, OSError) as err:
        raise RasterReadError(f"cannot read exemplar image '{p}' ({err})") from err
    valid = np.all(masks > 0, axis=0)
    valid &= np.all(np.isfinite(data), axis=0)
    return data, (None if valid.all() else valid)


def list_image_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files directly in ``folder`` and in its sub-folders (any depth), sorted."""
    root = Path(folder)
    files = [
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    ]
    return sorted(files)
