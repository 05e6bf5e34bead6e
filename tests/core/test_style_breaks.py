"""Class breaks of the stored default style follow the run's scores (quantiles)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from analog_plugin.core.paths import style_path
from analog_plugin.core.style_breaks import fit_graduated_ranges, quantile_breaks


def test_quantile_breaks_hand_computed() -> None:
    # 5 values, 4 classes: quantiles at 0, .25, .5, .75, 1 of [0.1, 0.2, 0.3, 0.4, 0.5]
    assert quantile_breaks([0.5, 0.1, 0.3, 0.2, 0.4], 4) == pytest.approx(
        [0.1, 0.2, 0.3, 0.4, 0.5]
    )


def test_quantile_breaks_constant_scores_are_non_decreasing() -> None:
    assert quantile_breaks([0.9, 0.9, 0.9], 3) == [0.9, 0.9, 0.9, 0.9]


def test_quantile_breaks_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one class"):
        quantile_breaks([0.1], 0)
    with pytest.raises(ValueError, match="no scores"):
        quantile_breaks([], 3)


def test_fit_graduated_ranges_on_the_shipped_style() -> None:
    qml = style_path("scores.qml").read_text(encoding="utf-8")
    scores = [0.90 + 0.001 * i for i in range(61)]  # 0.900 .. 0.960
    fitted = fit_graduated_ranges(qml, scores)
    root = ET.fromstring(fitted)
    ranges = root.find("renderer-v2/ranges").findall("range")  # type: ignore[union-attr]
    assert float(ranges[0].get("lower")) == pytest.approx(0.90)  # type: ignore[arg-type]
    assert float(ranges[-1].get("upper")) == pytest.approx(0.96)  # type: ignore[arg-type]
    uppers = [float(r.get("upper")) for r in ranges]  # type: ignore[arg-type]
    lowers = [float(r.get("lower")) for r in ranges]  # type: ignore[arg-type]
    assert lowers[1:] == pytest.approx(uppers[:-1])
    assert ranges[0].get("label") == f"0.900 – {uppers[0]:.3f}"
    assert root.find("renderer-v2/classificationMethod").get("id") == "Quantile"  # type: ignore[union-attr]
    assert fitted.startswith("<!DOCTYPE qgis")


def test_fit_graduated_ranges_leaves_other_styles_alone() -> None:
    qml = "<qgis><renderer-v2 type='singleSymbol'/></qgis>"
    assert fit_graduated_ranges(qml, [0.5]) == qml
    assert fit_graduated_ranges(qml, []) == qml
