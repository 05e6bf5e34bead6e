"""Processing provider "analog": the analogue-search algorithms and the shipped models."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .build_library import BuildLibraryAlgorithm
from .classify_landforms import ClassifyLandformsAlgorithm
from .common import resource_path
from .compare_tiles import CompareTilesAlgorithm
from .diagnostics import DiagnosticsAlgorithm
from .rank_sites import RankSitesAlgorithm
from .score_tiles import ScoreTilesAlgorithm


class AnalogProvider(QgsProcessingProvider):
    """Provider id ``analog``: buildlibrary, scoretiles, classifylandforms, comparetiles,
    ranksites."""

    ID = "analog"

    def id(self) -> str:
        return self.ID

    def name(self) -> str:
        return "Mars Analogue Finder"

    def longName(self) -> str:  # noqa: N802 - QGIS API name
        return "Mars Analogue Finder (ONNX similarity search)"

    def icon(self) -> QIcon:
        return QIcon(self.svgIconPath())

    def svgIconPath(self) -> str:  # noqa: N802 - QGIS API name
        return str(resource_path("icon.svg"))

    def loadAlgorithms(self) -> None:  # noqa: N802 - QGIS API name
        self.addAlgorithm(BuildLibraryAlgorithm())
        self.addAlgorithm(ScoreTilesAlgorithm())
        self.addAlgorithm(ClassifyLandformsAlgorithm())
        self.addAlgorithm(CompareTilesAlgorithm())
        self.addAlgorithm(RankSitesAlgorithm())
        self.addAlgorithm(DiagnosticsAlgorithm())
        self._add_shipped_models()

    def _add_shipped_models(self) -> None:
        """Graphical models in resources/models (``analog:analogueworkflow``...). A model that
        cannot be read is skipped with a log message, never breaking the provider."""
        from qgis.core import (
            Qgis,
            QgsApplication,
            QgsMessageLog,
            QgsProcessingModelAlgorithm,
        )

        if QgsApplication.processingRegistry().providerById(self.ID) is not self:
            return  # first load: children unresolvable yet; initProcessing refreshes after
        for path in sorted(resource_path("models").glob("*.model3")):
            model = QgsProcessingModelAlgorithm()
            if model.fromFile(str(path)):
                for child in model.childAlgorithms().values():
                    child.reattach()
                model.updateDestinationParameters()
                self.addAlgorithm(model)
            else:
                QgsMessageLog.logMessage(f"could not read the model {path}", "Analogue search",
                                         Qgis.MessageLevel.Warning)

    def supportedOutputVectorLayerExtensions(self) -> list[str]:  # noqa: N802
        return ["gpkg"]

    def defaultVectorFileExtension(self, hasGeometry: bool = True) -> str:  # noqa: N802,N803
        return "gpkg"
