"""Fit the class breaks of a graduated QML style to the scores of one run.

Why: similarity scores of a trained embedding bunch in a narrow band (a whole scene may score
0.85-0.97), so fixed 0..1 classes paint every tile the same colour and hide the ranking the user
came for. Quantile breaks of this run's scores keep each colour class equally populated, so the
best tiles stand out whatever the absolute level. The labels show the real score bounds.
Pure XML editing (no qgis): the template QML itself is made with QGIS by scripts/make_styles.py.
"""

from __future__ import annotations

# The XML parsed here is the plugin's own shipped QML templates (bandit B405/B314 reviewed).
import xml.etree.ElementTree as ET  # nosec B405
from collections.abc import Sequence

import numpy as np


def quantile_breaks(scores: Sequence[float], n_classes: int) -> list[float]:
    """``n_classes + 1`` non-decreasing breaks from min to max at equal-count quantiles."""
    if n_classes < 1:
        raise ValueError(f"need at least one class, got {n_classes}")
    values = np.asarray(scores, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no scores to classify")
    qs = np.quantile(values, np.linspace(0.0, 1.0, n_classes + 1))
    return [float(v) for v in np.maximum.accumulate(qs)]


def fit_graduated_ranges(qml: str, scores: Sequence[float], decimals: int = 3) -> str:
    """Return ``qml`` with its ``<range>`` bounds and labels set to quantiles of ``scores``.

    A QML without a graduated renderer, or an empty score list, is returned unchanged.
    """
    if len(scores) == 0:
        return qml
    root = ET.fromstring(qml)  # nosec B314
    renderer = root.find("renderer-v2")
    ranges = renderer.find("ranges") if renderer is not None else None
    if renderer is None or renderer.get("type") != "graduatedSymbol" or ranges is None:
        return qml
    items = ranges.findall("range")
    if not items:
        return qml
    breaks = quantile_breaks(scores, len(items))
    for i, item in enumerate(items):
        lo, hi = breaks[i], breaks[i + 1]
        item.set("lower", repr(lo))
        item.set("upper", repr(hi))
        item.set("label", f"{lo:.{decimals}f} – {hi:.{decimals}f}")
    method = renderer.find("classificationMethod")
    if method is not None:
        method.set("id", "Quantile")
    head = qml[: qml.index("<qgis")] if "<qgis" in qml else ""
    return head + ET.tostring(root, encoding="unicode")
