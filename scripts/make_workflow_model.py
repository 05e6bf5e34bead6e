#!/usr/bin/env python
"""Write the shipped graphical model resources/models/analogue_workflow.model3.

"Find analogues and rank landing sites": build library (exemplar image folder) -> score the Mars
raster (optionally with negative classes and a heat map) -> rank landing ellipses (optional DEM,
slope and latitude limits), and classify landforms with the same library. The provider registers
it (``analog:analogueworkflow``); open the file in the Model Designer to edit a copy. Run
headless::

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/make_workflow_model.py
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

NAME = "analogueworkflow"


def _param(m: QgsProcessingModelAlgorithm, definition: object, x: float, y: float) -> None:
    comp = QgsProcessingModelParameter(definition.name())  # type: ignore[attr-defined]
    comp.setPosition(_point(x, y))
    m.addModelParameter(definition, comp)  # type: ignore[arg-type]


def _point(x: float, y: float) -> object:
    from qgis.PyQt.QtCore import QPointF

    return QPointF(x, y)


def _child(m: QgsProcessingModelAlgorithm, alg_id: str, child_id: str, desc: str,
           sources: dict[str, object], outputs: dict[str, str], x: float, y: float) -> None:
    child = QgsProcessingModelChildAlgorithm(alg_id)
    child.setChildId(child_id)
    child.setDescription(desc)
    child.setPosition(_point(x, y))
    for name, src in sources.items():
        child.addParameterSources(name, [src])
    outs = {}
    for model_name, child_output in outputs.items():
        out = QgsProcessingModelOutput(model_name, model_name.replace("_", " ").capitalize())
        out.setChildId(child_id)
        out.setChildOutputName(child_output)
        out.setPosition(_point(x + 200, y + 60))
        outs[model_name] = out
    child.setModelOutputs(outs)
    m.addChildAlgorithm(child)


def build() -> QgsProcessingModelAlgorithm:
    S = QgsProcessingModelChildParameterSource  # noqa: N806
    m = QgsProcessingModelAlgorithm(NAME, "Analogue search", "analoguesearch")
    m.setHelpContent({
        "ALG_DESC": "Exemplar images -> analogue library -> tile scores on the Mars raster -> "
                    "the best landing ellipses, and a landform map with the same library.",
        "ALG_CREATOR": "Mars Analogue Finder",
    })
    folder_type = getattr(QgsProcessingParameterFile, "Folder", None)
    try:
        from qgis.core import Qgis
        folder_type = Qgis.ProcessingFileParameterBehavior.Folder
    except AttributeError:
        pass
    _param(m, QgsProcessingParameterFile("exemplars", "Exemplar image folder (one sub-folder "
                                         "per class)", behavior=folder_type), 60, 60)
    _param(m, QgsProcessingParameterRasterLayer("mars_raster", "Mars raster to search"), 60, 160)
    _param(m, QgsProcessingParameterString("negative_classes", "Negative classes (comma-"
                                           "separated, optional)", optional=True), 60, 260)
    dbl = getattr(QgsProcessingParameterNumber, "Double", None)
    try:
        from qgis.core import Qgis
        dbl = Qgis.ProcessingNumberParameterType.Double
    except AttributeError:
        pass
    _param(m, QgsProcessingParameterNumber("ellipse_major_km", "Ellipse major axis (km)", dbl,
                                           20.0, False, 0.001), 60, 360)
    _param(m, QgsProcessingParameterNumber("ellipse_minor_km", "Ellipse minor axis (km)", dbl,
                                           7.0, False, 0.001), 60, 420)
    _param(m, QgsProcessingParameterRasterLayer("dem", "Elevation model (optional)",
                                                optional=True), 60, 480)
    _param(m, QgsProcessingParameterNumber("max_slope", "Maximum slope (deg, needs DEM)", dbl,
                                           None, True, 0.0, 90.0), 60, 540)
    _child(m, "analog:buildlibrary", "library", "Build analogue library",
           {"IMAGE_FOLDER": S.fromModelParameter("exemplars")}, {"library": "OUTPUT"}, 400, 60)
    _child(m, "analog:scoretiles", "scores", "Score raster tiles",
           {"INPUT": S.fromModelParameter("mars_raster"),
            "LIBRARY": S.fromChildOutput("library", "OUTPUT"),
            "NEGATIVE_CLASSES": S.fromModelParameter("negative_classes")},
           {"scores": "OUTPUT", "heat_map": "OUTPUT_HEATMAP"}, 400, 220)
    _child(m, "analog:ranksites", "sites", "Rank candidate landing sites",
           {"SCORES": S.fromChildOutput("scores", "OUTPUT"),
            "ELLIPSE_MAJOR_KM": S.fromModelParameter("ellipse_major_km"),
            "ELLIPSE_MINOR_KM": S.fromModelParameter("ellipse_minor_km"),
            "DEM": S.fromModelParameter("dem"),
            "MAX_SLOPE": S.fromModelParameter("max_slope")},
           {"landing_sites": "OUTPUT"}, 400, 400)
    _child(m, "analog:classifylandforms", "landforms", "Classify landforms",
           {"INPUT": S.fromModelParameter("mars_raster"),
            "LIBRARY": S.fromChildOutput("library", "OUTPUT"),
            "SMOOTH": S.fromStaticValue("majority")},
           {"landforms": "OUTPUT"}, 700, 220)
    return m


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path,
                    default=REPO / "resources" / "models" / f"{NAME}.model3")
    args = ap.parse_args()
    app = QgsApplication([], False)
    app.initQgis()
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if not build().toFile(str(args.out)):
            print(f"could not write {args.out}", file=sys.stderr)
            return 1
        print(f"wrote {args.out}")
    finally:
        app.exitQgis()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
