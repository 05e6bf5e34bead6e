#!/usr/bin/env python3
"""Generate resources/styles/scores.qml and library.qml with QGIS itself (so they are valid QML).

scores.qml: graduated renderer on ``score`` (0..1, 6 equal classes, viridis, semi-transparent
fills, no outlines). library.qml: categorized renderer on ``class`` (a few landform classes with
distinct colours, plus a catch-all). heatmap.qml: single-band pseudocolour (viridis, 0.5..1, nodata
transparent) for the similarity surface. landforms.qml: categorized on ``landform`` (the HiRISE
landmark classes and common analogue landforms, with a legend). sites.qml: landing ellipses,
outlined and labelled with their rank. Run headless::

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
    QgsColorRampShader,
    QgsFillSymbol,
    QgsGradientColorRamp,
    QgsGradientStop,
    QgsGraduatedSymbolRenderer,
    QgsMapLayer,
    QgsPalLayerSettings,
    QgsRasterLayer,
    QgsRasterShader,
    QgsRendererCategory,
    QgsRendererRange,
    QgsSingleBandPseudoColorRenderer,
    QgsTextFormat,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
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


LANDFORMS = {
    "dark_dune": "#b2182b", "bright_dune": "#f4a582", "crater": "#2166ac", "edge": "#404040",
    "slope_streak": "#762a83", "other": "#bababa", "dune_field": "#fdb863", "yardang": "#e66101",
    "playa": "#b2abd2", "channel": "#1b9e77",
}


def landform_renderer() -> QgsCategorizedSymbolRenderer:
    categories = [QgsRendererCategory(name, fill(color, 0.55), name.replace("_", " "))
                  for name, color in LANDFORMS.items()]
    categories.append(QgsRendererCategory(None, fill("#e0e0e0", 0.55), "other class"))
    return QgsCategorizedSymbolRenderer("landform", categories)


def heatmap_renderer(layer: QgsRasterLayer) -> QgsSingleBandPseudoColorRenderer:
    ramp = QgsColorRampShader(0.5, 1.0)
    ramp.setColorRampType(QgsColorRampShader.Type.Interpolated)
    items = [QgsColorRampShader.ColorRampItem(0.5 + 0.5 * i / (len(VIRIDIS) - 1), QColor(c),
                                              f"{0.5 + 0.5 * i / (len(VIRIDIS) - 1):.2f}")
             for i, c in enumerate(VIRIDIS)]
    ramp.setColorRampItemList(items)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(ramp)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(0.5)
    renderer.setClassificationMax(1.0)
    renderer.setOpacity(0.75)
    return renderer


def sites_layer() -> QgsVectorLayer:
    layer = QgsVectorLayer("Polygon?field=rank:integer&field=mean_score:double", "sites",
                           "memory")
    from qgis.core import QgsSingleSymbolRenderer

    # No fill (style "no"), an opaque magenta outline: the scores stay readable underneath.
    outline = QgsFillSymbol.createSimple({"color": "0,0,0,0", "style": "no",
                                          "outline_style": "solid", "outline_color": "#e7298a",
                                          "outline_width": "0.8", "outline_width_unit": "MM"})
    layer.setRenderer(QgsSingleSymbolRenderer(outline))
    settings = QgsPalLayerSettings()
    settings.fieldName = "rank"
    text = QgsTextFormat()
    text.setSize(12)
    text.setColor(QColor("#e7298a"))
    buffer = text.buffer()
    buffer.setEnabled(True)
    buffer.setColor(QColor("white"))
    text.setBuffer(buffer)
    settings.setFormat(text)
    layer.setLabeling(QgsVectorLayerSimpleLabeling(settings))
    layer.setLabelsEnabled(True)
    return layer


def write(layer: QgsVectorLayer | QgsRasterLayer, path: Path,
          categories: QgsMapLayer.StyleCategory = QgsMapLayer.Symbology) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    message, ok = layer.saveNamedStyle(str(path), categories)
    if not ok:
        raise RuntimeError(f"could not write {path}: {message}")
    # Random per-run UUIDs would make every regeneration a diff; QGIS recreates them on load.
    text = re.sub(r' uuid="\{[0-9a-f-]+\}"', "", path.read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")


def write_heatmap_style(path: Path) -> None:
    import tempfile

    import numpy as np
    from osgeo import gdal

    with tempfile.TemporaryDirectory() as tmp:
        tif = str(Path(tmp) / "heat.tif")
        ds = gdal.GetDriverByName("GTiff").Create(tif, 4, 4, 1, gdal.GDT_Float32)
        ds.GetRasterBand(1).WriteArray(np.linspace(0.5, 1, 16, dtype=np.float32).reshape(4, 4))
        ds.GetRasterBand(1).SetNoDataValue(-1)
        ds = None
        layer = QgsRasterLayer(tif, "heatmap")
        layer.setRenderer(heatmap_renderer(layer))
        write(layer, path)


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
        landforms = QgsVectorLayer("Polygon?field=tile_id:integer&field=landform:string",
                                   "landforms", "memory")
        landforms.setRenderer(landform_renderer())
        write(landforms, args.out / "landforms.qml")
        write(sites_layer(), args.out / "sites.qml",
              QgsMapLayer.Symbology | QgsMapLayer.Labeling)
        write_heatmap_style(args.out / "heatmap.qml")
    finally:
        app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
