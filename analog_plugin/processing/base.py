"""Base class of the plugin's algorithms: what both share besides parameters (group, icon, help,
instance creation), so each algorithm module only declares its id, parameters and processing."""

from __future__ import annotations

from qgis.core import QgsProcessingAlgorithm
from qgis.PyQt.QtGui import QIcon

from . import common


class AnalogAlgorithm(QgsProcessingAlgorithm):
    """Subclasses set ``ALG_ID``, ``DISPLAY_NAME``, ``HELP`` and ``TAGS``."""

    ALG_ID = ""
    DISPLAY_NAME = ""
    HELP = ""
    TAGS: tuple[str, ...] = ()

    def name(self) -> str:
        return self.ALG_ID

    def displayName(self) -> str:  # noqa: N802 - QGIS API name
        return self.DISPLAY_NAME

    def group(self) -> str:
        return common.GROUP

    def groupId(self) -> str:  # noqa: N802 - QGIS API name
        return common.GROUP_ID

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API name
        return self.HELP

    def tags(self) -> list[str]:
        return list(self.TAGS)

    def icon(self) -> QIcon:
        return QIcon(str(common.resource_path("icon.svg")))

    def createInstance(self) -> AnalogAlgorithm:  # noqa: N802 - QGIS API name
        return type(self)()
