"""compare_places: "are these two places alike?" (verification, paper section on verification).

Each place is an image file, or a region (extent) of a georeferenced raster. A place is prepared
as ONE model input by the contract's own function, exactly as a library exemplar from an image
file (the place is its own layer for the stretch): so comparing A with B means the same as
finding B's exemplar for tile A.

SCORE = (1 + cos) / 2 (the product's score scale), DISTANCE = the Euclidean distance between the
unit embeddings, sqrt(2 - 2 cos), the quantity the contrastive loss trained; SAME_LANDFORM =
cos >= the model's calibrated threshold (``same_landform_cos`` in its metadata, chosen by grouped
cross-validation and stated in the model card). A model without one uses DEFAULT_SAME_COS and
says so.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import params as P
from .errors import RasterReadError, TilingError
from .feedback import Feedback, check_cancelled, ensure_feedback
from .gdal_cache import bounded_gdal_cache
from .image_files import read_image_file
from .model import EmbeddingModel
from .paths import bundled_model_path
from .preprocess import prepare_image
from .raster_reader import RasterSource, decimated_shape
from .tiling import PixelWindow, bounds_to_window, clip_window

DEFAULT_SAME_COS = 0.5


@dataclass(frozen=True)
class Place:
    """An image file, or a raster with an optional extent (xmin, ymin, xmax, ymax in its CRS)."""

    path: str
    extent: tuple[float, float, float, float] | None = None
    bands: Sequence[int] | None = None
    name: str = "IMAGE"


@dataclass(frozen=True)
class Comparison:
    score: float
    distance: float
    cosine: float
    same_landform: bool
    threshold_cos: float
    calibrated: bool


def read_place(place: Place, input_size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Raw pixels (B, H, W) and a valid mask of a place (large regions read decimated)."""
    if place.extent is None and not _georeferenced(place.path):
        return read_image_file(place.path)
    with bounded_gdal_cache(), RasterSource(place.path, place.bands) as src:
        full = PixelWindow(0, 0, src.info.width, src.info.height)
        win = full
        if place.extent is not None:
            xmin, ymin, xmax, ymax = place.extent
            win = clip_window(bounds_to_window(src.info.transform, (xmin, ymin, xmax, ymax)),
                              src.info.width, src.info.height)  # type: ignore[assignment]
            if win is None or win.width < 1 or win.height < 1:
                raise TilingError(f"{place.name}: the extent {place.extent} does not overlap "
                                  f"the raster '{place.path}'; give an extent in its CRS over it")
        # Large regions are read decimated by GDAL, as the scoring stream reads large tiles.
        tile = src.read_window(win, out_shape=decimated_shape(win.width, win.height, input_size))
        if tile.valid_frac == 0:
            raise RasterReadError(f"{place.name}: the region of '{place.path}' has no valid "
                                  "pixel (all nodata); choose another extent")
        return tile.pixels.astype(np.float32), (None if tile.valid.all() else tile.valid)


def _georeferenced(path: str) -> bool:
    from osgeo import gdal

    ds = gdal.OpenEx(path, gdal.OF_RASTER)
    if ds is None:
        return False
    gt = ds.GetGeoTransform(can_return_null=True)
    return bool(ds.GetProjection()) and gt is not None


def compare_places(
    image_a: Place, image_b: Place, model_path: str | os.PathLike[str] | None = None,
    device: str = "auto", feedback: Feedback | None = None,
) -> Comparison:
    """Embed both places with the model and compare them."""
    fb = ensure_feedback(feedback)
    device = P.check(P.DEVICE, device)
    model = EmbeddingModel(model_path or bundled_model_path(), device=device, feedback=fb)
    inputs = []
    for place in (image_a, image_b):
        check_cancelled(fb, f"reading {place.name}")
        pixels, valid = read_place(place, model.input_size)
        if pixels.shape[0] != model.channels and pixels.shape[0] not in (1, 3):
            raise TilingError(f"{place.name}: {pixels.shape[0]} bands; give BANDS or a 1- or "
                              "3-band image")
        inputs.append(prepare_image(pixels, model.contract, valid))
    emb = model.embed(np.stack(inputs))
    cos = float(np.clip(np.dot(emb[0], emb[1]), -1.0, 1.0))
    thr = model.metadata.same_landform_cos
    calibrated = thr is not None
    if thr is None:
        thr = DEFAULT_SAME_COS
        fb.pushWarning(f"the model has no calibrated 'same_landform_cos'; SAME_LANDFORM uses "
                       f"cos >= {thr} (uncalibrated)")
    fb.setProgress(100.0)
    res = Comparison((1.0 + cos) / 2.0, math.sqrt(max(0.0, 2.0 - 2.0 * cos)), cos,
                     cos >= thr, float(thr), calibrated)
    fb.pushInfo(f"SCORE {res.score:.4f} (cos {cos:.4f}), DISTANCE {res.distance:.4f}, "
                f"SAME_LANDFORM {res.same_landform} (threshold cos {thr:.4f})")
    return res
