#!/usr/bin/env python3
"""Generate resources/styles/scores.qml and library.qml with QGIS itself (so they are valid QML).

scores.qml: graduated renderer on ``score`` (0..1, 6 equal classes, viridis, semi-transparent
fills, no outlines). library.qml: categorized renderer on ``class`` (a few landform classes with
distinct colours, plus a catch-all). Run headless::

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/make_styles.py [--out resources/styles]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsCategorizedSymbolRenderer,
    QgsClassificationEqualInterval,
    QgsFillSymbol,
    QgsGradientColorRamp,
    QgsGradientStop,
    QgsGraduatedSymbolRenderer,
    QgsMapLayer,
    QgsRendererCategory,
    QgsRendererRange,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

# viridis at 0, 0.2, ..., 1 (matplotlib's table), perceptually uniform and colour-blind safe.
VIRIDIS = ["#440154", "#414487", "#2a788e", "#22a884", "#7ad151", "#fde725"]
N_CLASSES = 6
FILL_OPACITY = 0.6

LIBRARY_CLASSES = {
    "yardang": "#e66101",
    "dune": "#fdb863",
    "playa": "#b2abd2",
    "crater": "#5e3c99",
    "channel": "#1b9e77",
}


def fill(color: str, opacity: float = FILL_OPACITY, outline: str | None = None) -> QgsFillSymbol:
    symbol = QgsFillSymbol.createSimple(
        {
            "color": QColor(color).name(),
            "outline_style": "solid" if outline else "no",
            "outline_color": outline or "0,0,0,0",
            "outline_width": "0.2",
            "outline_width_unit": "MM",
        }
    )
    symbol.setOpacity(opacity)
    return symbol


def viridis_ramp() -> QgsGradientColorRamp:
    stops = [
        QgsGradientStop(i / (len(VIRIDIS) - 1), QColor(c)) for i, c in enumerate(VIRIDIS[1:-1], 1)
    ]
    return QgsGradientColorRamp(QColor(VIRIDIS[0]), QColor(VIRIDIS[-1]), False, stops)


def scores_renderer() -> QgsGraduatedSymbolRenderer:
    ranges = []
    for i in range(N_CLASSES):
        low, high = i / N_CLASSES, (i + 1) / N_CLASSES
        ranges.append(
            QgsRendererRange(low, high, fill(VIRIDIS[i]), f"{low:.2f} – {high:.2f}")
        )
    renderer = QgsGraduatedSymbolRenderer("score", ranges)
    renderer.setClassificationMethod(QgsClassificationEqualInterval())
    renderer.setSourceColorRamp(viridis_ramp())
    renderer.setSourceSymbol(fill(VIRIDIS[0]))
    return renderer


def library_renderer() -> QgsCategorizedSymbolRenderer:
    categories = [
        QgsRendererCategory(name, fill(color, 0.45, outline=color), name)
        for name, color in LIBRARY_CLASSES.items()
    ]
    categories.append(QgsRendererCategory(None, fill("#9e9e9e", 0.45, outline="#616161"), "other"))
    return QgsCategorizedSymbolRenderer("class", categories)


def write(layer: QgsVectorLayer, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    message, ok = layer.saveNamedStyle(str(path), QgsMapLayer.Symbology)
    if not ok:
        raise RuntimeError(f"could not write {path}: {message}")
    # Random per-run UUIDs would make every regeneration a diff; QGIS recreates them on load.
    text = re.sub(r' uuid="\{[0-9a-f-]+\}"', "", path.read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "resources" / "styles")
    args = ap.parse_args()
    app = QgsApplication([], False)
    app.initQgis()
    try:
        scores = QgsVectorLayer(
            "Polygon?field=tile_id:integer&field=score:double&field=best_class:string",
            "scores", "memory",
        )
        scores.setRenderer(scores_renderer())
        write(scores, args.out / "scores.qml")
        library = QgsVectorLayer(
            "Polygon?field=exemplar_id:string&field=class:string", "exemplars", "memory"
        )
        library.setRenderer(library_renderer())
        write(library, args.out / "library.qml")
    finally:
        app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
