"""The QML styles shipped in resources/styles load in QGIS with the intended renderers."""

from __future__ import annotations

from typing import Any

import pytest
from qgis.core import QgsFeature, QgsGeometry, QgsVectorLayer

from tests.conftest import REPO_ROOT

STYLES = REPO_ROOT / "resources" / "styles"


def _layer(fields: str) -> QgsVectorLayer:
    layer = QgsVectorLayer(f"Polygon?crs=EPSG:4326&{fields}", "t", "memory")
    assert layer.isValid()
    return layer


def test_scores_qml_is_graduated_viridis(qgis_app: Any) -> None:
    layer = _layer("field=score:double")
    msg, ok = layer.loadNamedStyle(str(STYLES / "scores.qml"))
    assert ok, msg
    renderer = layer.renderer()
    assert renderer.type() == "graduatedSymbol"
    assert renderer.classAttribute() == "score"
    ranges = renderer.ranges()
    assert 5 <= len(ranges) <= 7
    assert ranges[0].lowerValue() == pytest.approx(0.0)
    assert ranges[-1].upperValue() == pytest.approx(1.0)
    colors = [r.symbol().color().name() for r in ranges]
    assert len(set(colors)) == len(colors)
    assert colors[0] == "#440154" and colors[-1] == "#fde725"  # viridis ends
    assert all(0 < r.symbol().opacity() < 1 for r in ranges)  # semi-transparent fills


def test_library_qml_is_categorized_on_class(qgis_app: Any) -> None:
    layer = _layer("field=class:string")
    msg, ok = layer.loadNamedStyle(str(STYLES / "library.qml"))
    assert ok, msg
    assert layer.renderer().type() == "categorizedSymbol"
    assert layer.renderer().classAttribute() == "class"


def test_post_processor_applies_style(qgis_app: Any) -> None:
    from analog_plugin.processing.postprocess import LayerStylePostProcessor

    layer = _layer("field=score:double")
    f = QgsFeature(layer.fields())
    f.setGeometry(QgsGeometry.fromWkt("POLYGON((0 0,1 0,1 1,0 0))"))
    f["score"] = 0.7
    layer.dataProvider().addFeatures([f])
    assert layer.renderer().type() == "singleSymbol"
    proc = LayerStylePostProcessor.create(str(STYLES / "scores.qml"))
    assert LayerStylePostProcessor.create(str(STYLES / "scores.qml")) is proc  # kept alive
    proc.postProcessLayer(layer, None, None)
    assert layer.renderer().type() == "graduatedSymbol"
