"""Bad input: a clear QgsProcessingException, no output written, an existing output untouched."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from qgis.core import QgsFeature, QgsGeometry, QgsProcessingException, QgsRectangle, QgsVectorLayer
from rasterio.transform import from_origin

from tests.onnx_models import make_broken_model
from tests.qgis.conftest import MARS_TIF, RGB_TIF
from tests.qgis.helpers import snapshot

SENTINEL = b"existing output: must survive a failed run"


def run(alg: str, params: dict[str, Any]) -> dict[str, Any]:
    import processing

    return processing.run(f"analog:{alg}", params)


def small_raster(path: Path, size: int, fill: int, nodata: int | None = 0) -> Path:
    with rasterio.open(
        path, "w", driver="GTiff", width=size, height=size, count=1, dtype="uint8",
        crs="EPSG:4326", transform=from_origin(10, 50, 0.01, 0.01), nodata=nodata,
    ) as dst:
        data = np.full((1, size, size), fill, dtype=np.uint8)
        if fill != 0:
            data[0, : size // 2] = 200
        dst.write(data)
    return path


def far_mask() -> QgsVectorLayer:
    layer = QgsVectorLayer("Polygon?crs=EPSG:4326", "far", "memory")
    f = QgsFeature()
    f.setGeometry(QgsGeometry.fromRect(QgsRectangle(0, 0, 1, 1)))  # Gulf of Guinea
    layer.dataProvider().addFeatures([f])
    return layer


# Each case: (id, function(tmp, models, library) -> parameter overrides, word in the message).
Case = tuple[str, Callable[[Path, dict[str, Path], Path], dict[str, Any]], str]
SCORE_CASES: list[Case] = [
    ("missing_model", lambda t, m, lib: {"MODEL": str(t / "nope.onnx")}, "nope.onnx"),
    ("corrupt_model", lambda t, m, lib: {"MODEL": str(make_broken_model(t / "c.onnx", "corrupt"))},
     "onnx"),
    ("contract_model_type",
     lambda t, m, lib: {"MODEL": str(make_broken_model(t / "b.onnx", "wrong_model_type"))},
     "model_type"),
    ("contract_not_normalised",
     lambda t, m, lib: {"MODEL": str(make_broken_model(t / "n.onnx", "not_normalised"))},
     "normalis"),
    ("library_other_model", lambda t, m, lib: {"MODEL": str(m["other"])}, "buildlibrary"),
    ("library_missing", lambda t, m, lib: {"LIBRARY": str(t / "none.gpkg")}, "none.gpkg"),
    ("library_garbage", lambda t, m, lib: {"LIBRARY": str(_garbage(t / "junk.gpkg"))},
     "junk.gpkg"),
    ("raster_smaller_than_tile",
     lambda t, m, lib: {"INPUT": str(small_raster(t / "tiny.tif", 16, 50))}, "tile"),
    ("all_nodata", lambda t, m, lib: {"INPUT": str(small_raster(t / "nd.tif", 96, 0))}, "valid"),
    ("mask_outside", lambda t, m, lib: {"INPUT": str(RGB_TIF), "MASK": far_mask()}, "mask"),
    ("mask_on_earth_for_mars", lambda t, m, lib: {"MASK": far_mask()}, "celestial"),
    ("extent_outside", lambda t, m, lib: {"INPUT": str(RGB_TIF), "EXTENT": "0,1,0,1"}, "extent"),
    ("band_missing", lambda t, m, lib: {"BANDS": [4]}, "band"),
    ("overlap_120", lambda t, m, lib: {"OVERLAP": 120}, "OVERLAP"),
    ("overlap_negative", lambda t, m, lib: {"OVERLAP": -5}, "OVERLAP"),
    ("batch_0", lambda t, m, lib: {"BATCH_SIZE": 0}, "BATCH_SIZE"),
    ("min_valid_2", lambda t, m, lib: {"MIN_VALID": 2}, "MIN_VALID"),
    ("units_unknown", lambda t, m, lib: {"TILE_UNITS": "furlongs"}, "TILE_UNITS"),
    ("device_unknown", lambda t, m, lib: {"DEVICE": "tpu"}, "DEVICE"),
    ("tile_size_negative", lambda t, m, lib: {"TILE_SIZE": -5}, "TILE_SIZE"),
]


def _garbage(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return path


def _assert_fails_cleanly(alg: str, params: dict[str, Any], out: Path, word: str) -> None:
    before = snapshot(out.parent)
    with pytest.raises(QgsProcessingException) as err:
        run(alg, {**params, "OUTPUT": str(out)})
    assert word.lower() in str(err.value).lower(), str(err.value)
    assert snapshot(out.parent) == before  # nothing created, nothing changed, no temp file left


@pytest.mark.parametrize(("case", "overrides", "word"), SCORE_CASES,
                         ids=[c[0] for c in SCORE_CASES])
def test_scoretiles_bad_input(provider: Any, models: dict[str, Path], library: Path,
                              tmp_path: Path, case: str, overrides: Any, word: str) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    params = {"INPUT": str(MARS_TIF), "LIBRARY": str(library), "MODEL": str(models["mean"])}
    params.update(overrides(inputs, models, library))
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    _assert_fails_cleanly("scoretiles", params, fresh / "scores.gpkg", word)
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "scores.gpkg").write_bytes(SENTINEL)
    _assert_fails_cleanly("scoretiles", params, existing / "scores.gpkg", word)
    assert (existing / "scores.gpkg").read_bytes() == SENTINEL


def test_cuda_without_cuda_provider(provider: Any, models: dict[str, Path], library: Path,
                                    tmp_path: Path) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("CUDA is available here")
    _assert_fails_cleanly("scoretiles", {
        "INPUT": str(MARS_TIF), "LIBRARY": str(library), "MODEL": str(models["mean"]),
        "DEVICE": "cuda"}, tmp_path / "s.gpkg", "cuda")


def test_unwritable_output_folder(provider: Any, models: dict[str, Path], library: Path,
                                  tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file.txt"
    not_a_dir.write_text("a file, not a folder")
    with pytest.raises(QgsProcessingException):
        run("scoretiles", {"INPUT": str(MARS_TIF), "LIBRARY": str(library),
                           "MODEL": str(models["mean"]), "OUTPUT": str(not_a_dir / "s.gpkg")})
    assert not_a_dir.read_text() == "a file, not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_output_must_be_geopackage(provider: Any, models: dict[str, Path], library: Path,
                                   tmp_path: Path) -> None:
    _assert_fails_cleanly("scoretiles", {
        "INPUT": str(MARS_TIF), "LIBRARY": str(library), "MODEL": str(models["mean"])},
        tmp_path / "scores.shp", "gpkg")


def test_non_file_raster_refused(provider: Any, models: dict[str, Path], library: Path,
                                 tmp_path: Path) -> None:
    from qgis.core import QgsRasterLayer

    from analog_plugin.processing.common import raster_file_path

    layer = QgsRasterLayer("type=xyz&url=http://127.0.0.1:9/{z}/{x}/{y}.png", "xyz", "wms")
    with pytest.raises(QgsProcessingException, match="file"):
        raster_file_path(layer, "INPUT")
    with pytest.raises(QgsProcessingException):
        raster_file_path(None, "INPUT")


BUILD_CASES: list[Case] = [
    ("no_sources", lambda t, m, i: {}, "IMAGE_FOLDER"),
    ("raster_without_polygons", lambda t, m, i: {"RASTER": str(RGB_TIF)}, "POLYGONS"),
    ("folder_missing", lambda t, m, i: {"IMAGE_FOLDER": str(t / "missing")}, "missing"),
    ("corrupt_model", lambda t, m, i: {"IMAGE_FOLDER": str(i),
                                       "MODEL": str(make_broken_model(t / "c.onnx", "corrupt"))},
     "onnx"),
    ("contract_two_inputs", lambda t, m, i: {
        "IMAGE_FOLDER": str(i), "MODEL": str(make_broken_model(t / "x.onnx", "two_inputs"))},
     "input"),
    ("polygons_outside_raster", lambda t, m, i: {"RASTER": str(RGB_TIF), "POLYGONS": far_mask()},
     "raster"),
    ("units_unknown", lambda t, m, i: {"IMAGE_FOLDER": str(i), "TILE_UNITS": "inches"},
     "TILE_UNITS"),
    ("batch_0", lambda t, m, i: {"IMAGE_FOLDER": str(i), "BATCH_SIZE": 0}, "BATCH_SIZE"),
]


@pytest.mark.parametrize(("case", "overrides", "word"), BUILD_CASES,
                         ids=[c[0] for c in BUILD_CASES])
def test_buildlibrary_bad_input(provider: Any, models: dict[str, Path], image_folder: Path,
                                tmp_path: Path, case: str, overrides: Any, word: str) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    params = {"MODEL": str(models["mean"])}
    params.update(overrides(inputs, models, image_folder))
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "lib.gpkg").write_bytes(SENTINEL)
    _assert_fails_cleanly("buildlibrary", params, existing / "lib.gpkg", word)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    _assert_fails_cleanly("buildlibrary", params, fresh / "lib.gpkg", word)
