"""Apply a QML style to a layer that desktop QGIS loads after an algorithm finished.

Layer post-processors only run when QGIS loads the output onto the map (desktop); ``qgis_process``
never calls them, which is why core also stores the default style in the GeoPackage's
``layer_styles`` table.
"""

from __future__ import annotations

from typing import ClassVar

from qgis.core import (
    QgsMapLayer,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
)


class LayerStylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Gives the loaded output layer its style: the default stored in the GeoPackage's
    ``layer_styles`` (core fits its class breaks to the run's scores), else ``qml_path``.

    QGIS keeps only a raw pointer to the post-processor, so instances are kept alive in
    :attr:`_instances` (one per style file); :meth:`create` is the way to get one.
    """

    _instances: ClassVar[dict[str, LayerStylePostProcessor]] = {}

    def __init__(self, qml_path: str) -> None:
        super().__init__()
        self.qml_path = qml_path

    def postProcessLayer(  # noqa: N802 - QGIS API name
        self,
        layer: QgsMapLayer,
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> None:
        if layer is None or not layer.isValid():
            return
        message, ok = layer.loadDefaultStyle()
        if not ok:
            message, ok = layer.loadNamedStyle(self.qml_path)
        if not ok and feedback is not None:
            feedback.pushWarning(f"Could not apply the style {self.qml_path}: {message}")
            return
        layer.triggerRepaint()

    @classmethod
    def create(cls, qml_path: str) -> LayerStylePostProcessor:
        instance = cls._instances.get(qml_path)
        if instance is None:
            instance = cls(qml_path)
            cls._instances[qml_path] = instance
        return instance
