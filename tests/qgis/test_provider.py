"""Provider registration, algorithm ids, parameter names, help texts, declared outputs, deps."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from qgis.core import (
    QgsApplication,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterVectorDestination,
)

BUILD_PARAMS = {
    "RASTER", "POLYGONS", "CLASS_FIELD", "IMAGE_FOLDER", "MODEL", "TILE_SIZE", "TILE_UNITS",
    "BANDS", "DEVICE", "BATCH_SIZE", "OUTPUT",
}
SCORE_PARAMS = {
    "INPUT", "LIBRARY", "MODEL", "TILE_SIZE", "TILE_UNITS", "OVERLAP", "EXTENT", "MASK", "BANDS",
    "MIN_VALID", "NEGATIVE_CLASSES", "DEVICE", "BATCH_SIZE", "OUTPUT", "OUTPUT_HEATMAP",
    "HEATMAP_CELL", "SCHEDULER",
}
CLASSIFY_PARAMS = {
    "INPUT", "LIBRARY", "MODEL", "K", "SMOOTH", "TILE_SIZE", "TILE_UNITS", "OVERLAP", "EXTENT",
    "MASK", "BANDS", "MIN_VALID", "DEVICE", "BATCH_SIZE", "OUTPUT",
}
COMPARE_PARAMS = {"IMAGE_A", "EXTENT_A", "IMAGE_B", "EXTENT_B", "MODEL", "DEVICE"}
SITES_PARAMS = {
    "SCORES", "SCORE_FIELD", "ELLIPSE_MAJOR_KM", "ELLIPSE_MINOR_KM", "AZIMUTH", "SPACING_KM",
    "DEM", "MAX_SLOPE", "MIN_ELEVATION", "MAX_ELEVATION", "EXCLUDE", "LATITUDE_MIN",
    "LATITUDE_MAX", "THRESHOLD", "COUNT", "OUTPUT",
}


def alg(name: str) -> Any:
    found = QgsApplication.processingRegistry().algorithmById(f"analog:{name}")
    assert found is not None, f"analog:{name} is not registered"
    return found


def test_provider_registered(provider: Any) -> None:
    assert provider.id() == "analog"
    assert provider.name() == "Mars Analogue Finder"
    assert sorted(a.id() for a in provider.algorithms()) == [
        "analog:analogueworkflow", "analog:buildlibrary", "analog:classifylandforms",
        "analog:comparetiles", "analog:diagnostics", "analog:ranksites", "analog:scoretiles"]
    assert Path(provider.svgIconPath()).is_file()
    assert not provider.icon().isNull()
    assert provider.supportedOutputVectorLayerExtensions() == ["gpkg"]


def test_init_processing_is_idempotent(analog_plugin_instance: Any) -> None:
    registry = QgsApplication.processingRegistry()
    before = registry.providerById("analog")
    analog_plugin_instance.initProcessing()
    analog_plugin_instance.initGui()  # desktop path: calls initProcessing again, no iface needed
    assert registry.providerById("analog") is before
    assert sum(p.id() == "analog" for p in registry.providers()) == 1


@pytest.mark.parametrize(
    ("name", "display", "expected"),
    [
        ("buildlibrary", "Build analogue library", BUILD_PARAMS),
        ("scoretiles", "Score raster tiles against analogues", SCORE_PARAMS),
        ("classifylandforms", "Classify landforms", CLASSIFY_PARAMS),
        ("comparetiles", "Compare two places", COMPARE_PARAMS),
        ("ranksites", "Rank candidate landing sites", SITES_PARAMS),
    ],
)
def test_parameters_names_and_help(provider: Any, name: str, display: str,
                                   expected: set[str]) -> None:
    a = alg(name)
    assert a.displayName() == display
    assert a.group() == "Analogue search"
    assert len(a.shortHelpString()) > 200
    params = a.parameterDefinitions()
    assert {p.name() for p in params} == expected
    for p in params:
        assert len(p.help().strip()) > 20, f"{name}.{p.name()} has no help text"
        assert "Example:" in p.help(), f"{name}.{p.name()} has no example"
        assert p.description().strip()
    for p in expected:
        assert p in a.shortHelpString(), f"{name}'s help does not name {p}"
    if name in ("comparetiles", "ranksites"):
        return
    out = a.parameterDefinition("OUTPUT")
    assert isinstance(out, QgsProcessingParameterVectorDestination)
    units = a.parameterDefinition("TILE_UNITS")
    assert isinstance(units, QgsProcessingParameterEnum)
    assert units.options() == ["pixels", "metres"]
    assert a.parameterDefinition("DEVICE").options() == ["auto", "cpu", "cuda"]
    assert a.parameterDefinition("TILE_SIZE").flags() & a.parameterDefinition(
        "TILE_SIZE").FlagOptional
    # The model defaults to the bundled one (which may not be trained yet in a checkout).
    assert str(a.parameterDefinition("MODEL").defaultValue()).endswith("analog-siamese.onnx")


def test_declared_outputs_for_modeler(provider: Any) -> None:
    score = {o.name(): o for o in alg("scoretiles").outputDefinitions()}
    assert {"OUTPUT", "N_TILES", "N_SCORED", "N_SKIPPED"} <= set(score)
    assert isinstance(score["N_TILES"], QgsProcessingOutputNumber)
    assert "OUTPUT_HEATMAP" in score
    build = {o.name(): o for o in alg("buildlibrary").outputDefinitions()}
    assert {"OUTPUT", "N_EXEMPLARS", "N_CLASSES", "CLASSES"} <= set(build)
    compare = {o.name() for o in alg("comparetiles").outputDefinitions()}
    assert {"SCORE", "DISTANCE", "SAME_LANDFORM", "THRESHOLD"} <= compare
    assert {"OUTPUT", "N_SITES", "TOP_LAT", "TOP_LON"} <= {
        o.name() for o in alg("ranksites").outputDefinitions()}
    assert {"OUTPUT", "N_CLASSIFIED"} <= {
        o.name() for o in alg("classifylandforms").outputDefinitions()}


def test_shipped_graphical_model_chains_the_workflow(provider: Any) -> None:
    model = alg("analogueworkflow")
    children = {c.algorithmId() for c in model.childAlgorithms().values()}
    assert children == {"analog:buildlibrary", "analog:scoretiles", "analog:ranksites",
                        "analog:classifylandforms"}
    deps = model.dependsOnChildAlgorithms("sites")
    assert {"scores", "library"} <= set(deps)
    assert {"exemplars", "mars_raster", "dem"} <= {p.name() for p in
                                                   model.parameterDefinitions()}


def test_score_parameter_ranges(provider: Any) -> None:
    a = alg("scoretiles")
    overlap = a.parameterDefinition("OVERLAP")
    assert (overlap.minimum(), overlap.maximum(), overlap.defaultValue()) == (0, 95, 0)
    min_valid = a.parameterDefinition("MIN_VALID")
    assert (min_valid.minimum(), min_valid.maximum()) == (0, 1)
    assert a.parameterDefinition("BATCH_SIZE").minimum() == 1
    assert a.parameterDefinition("BANDS").allowMultiple()
    assert a.parameterDefinition("BANDS").parentLayerParameterName() == "INPUT"


def test_class_factory_does_not_touch_iface() -> None:
    import analog_plugin

    class Boom:
        def __getattr__(self, item: str) -> Any:
            raise AssertionError(f"iface.{item} touched")

    plugin = analog_plugin.classFactory(Boom())
    assert plugin.provider is None


def test_extra_site_is_appended_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from analog_plugin import deps

    extra = tmp_path / "site"
    extra.mkdir()
    monkeypatch.setenv(deps.EXTRA_SITE_ENV, os.pathsep.join([str(extra), str(tmp_path / "nope")]))
    monkeypatch.setattr(sys, "path", list(sys.path))
    added = deps.add_extra_paths()
    assert str(extra) in added
    assert sys.path[-1] == str(extra)  # appended: the system numpy stays first
    assert str(tmp_path / "nope") not in sys.path
    assert deps.add_extra_paths() == []  # once only


def test_missing_onnxruntime_gives_install_hint(
    provider: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, library: Path,
    models: dict[str, Path],
) -> None:
    import processing

    from tests.qgis.conftest import MARS_TIF

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError
    out = tmp_path / "scores.gpkg"
    with pytest.raises(QgsProcessingException, match="pip install") as err:
        processing.run("analog:scoretiles", {
            "INPUT": str(MARS_TIF), "LIBRARY": str(library), "MODEL": str(models["mean"]),
            "OUTPUT": str(out),
        })
    assert "onnxruntime" in str(err.value)
    assert "OSGeo4W" in str(err.value)
    assert not out.exists()


def test_diagnostics_reports_versions_cuda_and_model(provider: Any) -> None:
    import numpy
    import processing

    res = processing.run("analog:diagnostics", {})
    text = res["REPORT"]
    assert f"numpy: {numpy.__version__}" in text
    assert "qgis: 3." in text and "onnxruntime: 1." in text
    assert "CPUExecutionProvider" in text
    assert '"version": "2.' in text and "sha256" in text  # the bundled model
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        assert res["CUDA"].startswith("yes: ")
    else:  # the CI machine: no GPU, and the reason follows
        assert res["CUDA"].startswith("no: ") and "onnxruntime-gpu" in res["CUDA"]
