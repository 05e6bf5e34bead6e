"""analog:comparetiles: "are these two places alike?" - a score, a distance and a verdict."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputBoolean,
    QgsProcessingOutputNumber,
)

from analog_plugin.core import params as P

from .base import AnalogAlgorithm
from .common import core_errors, is_unset, raster_file_path

SCORE, DISTANCE, SAME_LANDFORM, THRESHOLD = "SCORE", "DISTANCE", "SAME_LANDFORM", "THRESHOLD"

HELP = """Compares two places with the similarity network: each place is an image file or a \
raster layer, optionally only a region of it (EXTENT_A / EXTENT_B in the layer's CRS), prepared \
exactly as a library exemplar. Outputs SCORE = (1 + cosine) / 2 of the two embeddings (1 = \
identical), DISTANCE = the Euclidean distance between the unit embeddings (what the contrastive \
loss trains; 0 = identical, 2 = opposite) and SAME_LANDFORM, true when the cosine reaches the \
model's calibrated threshold (chosen by grouped cross-validation, stated in the model card; \
THRESHOLD reports it). Chains in the modeler: e.g. a conditional branch on SAME_LANDFORM.

Parameters a script can set: IMAGE_A, EXTENT_A, IMAGE_B, EXTENT_B, MODEL, DEVICE."""


class CompareTilesAlgorithm(AnalogAlgorithm):
    """Processing algorithm ``analog:comparetiles``."""

    ALG_ID = "comparetiles"
    DISPLAY_NAME = "Compare two places"
    HELP = HELP
    TAGS = ("mars", "analogue", "verification", "similarity", "siamese", "compare")

    PARAMS = P.COMPARE_PARAMS
    OUTPUTS = ((QgsProcessingOutputNumber, SCORE, "Similarity score (0..1)"),
               (QgsProcessingOutputNumber, DISTANCE, "Embedding distance (0..2)"),
               (QgsProcessingOutputBoolean, SAME_LANDFORM, "Same landform"),
               (QgsProcessingOutputNumber, THRESHOLD, "Same-landform cosine threshold"))

    def run_job(self, parameters: dict[str, Any], context: QgsProcessingContext,
            feedback: QgsProcessingFeedback) -> dict[str, Any]:
        settings = self.settings(parameters, context)
        places = []
        with core_errors():
            from analog_plugin.core.compare_job import Place, compare_places

            for image, ext in ((P.IMAGE_A, P.EXTENT_A), (P.IMAGE_B, P.EXTENT_B)):
                layer = self.parameterAsRasterLayer(parameters, image.name, context)
                path = raster_file_path(layer, image.name)
                extent = None
                if not is_unset(parameters, ext.name):
                    rect = self.parameterAsExtent(parameters, ext.name, context, layer.crs())
                    if rect.isNull() or rect.isEmpty():
                        raise QgsProcessingException(
                            f"{ext.name} {parameters.get(ext.name)!r} is empty or unreadable."
                        )
                    extent = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(),
                              rect.yMaximum())
                places.append(Place(path, extent, None, image.name))
            model = self.parameterAsFile(parameters, P.MODEL.name, context) or None
            res = compare_places(places[0], places[1], model, settings["device"], feedback)
        return {SCORE: res.score, DISTANCE: res.distance, SAME_LANDFORM: res.same_landform,
                THRESHOLD: res.threshold_cos}
