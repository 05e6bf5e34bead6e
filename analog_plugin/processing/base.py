"""Base class of the plugin's algorithms: what all share besides their own work (group, icon,
help, instance creation, parameters built from core's definitions, core validation of scalar
values), so each algorithm module only declares its id, parameters, outputs and ``run``."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsProcessingAlgorithm, QgsProcessingContext, QgsProcessingFeedback
from qgis.PyQt.QtGui import QIcon

from analog_plugin.core.param_spec import Param

from . import common
from .param_factory import add_params, check_scalars, validated


class AnalogAlgorithm(QgsProcessingAlgorithm):
    """Subclasses set ``ALG_ID``, ``DISPLAY_NAME``, ``HELP``, ``TAGS``, ``PARAMS`` (core
    definitions, in dialog order), ``OUTPUTS`` ((QgsProcessingOutput class, name, description))
    and implement ``run_job`` (not ``run``: QgsProcessingAlgorithm has one); ``check_more``
    adds checks beyond one parameter's range."""

    ALG_ID = ""
    DISPLAY_NAME = ""
    HELP = ""
    TAGS: tuple[str, ...] = ()
    PARAMS: tuple[Param, ...] = ()
    BANDS_PARENT = ""
    OUTPUTS: tuple[tuple[type, str, str], ...] = ()

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

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        add_params(self, self.PARAMS, bands_parent=self.BANDS_PARENT)
        for output_class, name, description in self.OUTPUTS:
            self.addOutput(output_class(name, description))

    def checkParameterValues(  # noqa: N802 - QGIS API name
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> tuple[bool, str]:
        """Core's message for a bad scalar (not QGIS's 'Incorrect parameter value'), then the
        algorithm's own cross-parameter rules, then QGIS's checks."""
        for check in (check_scalars(self, parameters, self.PARAMS, context),
                      self.check_more(parameters, context)):
            if not check[0]:
                return check
        return super().checkParameterValues(parameters, context)

    def check_more(self, parameters: dict[str, Any],
                   context: QgsProcessingContext) -> tuple[bool, str]:
        return True, ""

    def settings(self, parameters: dict[str, Any], context: QgsProcessingContext
                 ) -> dict[str, Any]:
        """Core-validated scalar values keyed by core argument name."""
        return validated(self, parameters, self.PARAMS, context)

    def processAlgorithm(  # noqa: N802 - QGIS API name
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback | None,
    ) -> dict[str, Any]:
        return self.run_job(parameters, context, feedback or QgsProcessingFeedback())

    def run_job(self, parameters: dict[str, Any], context: QgsProcessingContext,
            feedback: QgsProcessingFeedback) -> dict[str, Any]:
        raise NotImplementedError
