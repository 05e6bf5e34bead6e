"""Processing provider "analog": the two analogue-search algorithms."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .build_library import BuildLibraryAlgorithm
from .common import resource_path
from .score_tiles import ScoreTilesAlgorithm


class AnalogProvider(QgsProcessingProvider):
    """Provider id ``analog``: ``analog:buildlibrary`` and ``analog:scoretiles``."""

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

    def supportedOutputVectorLayerExtensions(self) -> list[str]:  # noqa: N802
        return ["gpkg"]

    def defaultVectorFileExtension(self, hasGeometry: bool = True) -> str:  # noqa: N802,N803
        return "gpkg"
