"""analog:classifylandforms: the landform of every tile, from a labelled analogue library."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
)

from analog_plugin.core import params as P

from . import common
from .base import AnalogAlgorithm
from .common import attach_style, core_errors, output_gpkg_path
from .tile_inputs import read_tile_inputs

N_CLASSIFIED = "N_CLASSIFIED"

HELP = """Recognises the landform of every tile of a raster: each tile is embedded with the ONNX \
network, its K most similar exemplars of a labelled library (made with "Build analogue library" \
and the SAME model; its classes are the landform names) vote, each weighted by its score \
(1 + cosine) / 2. The output polygon layer has fields tile_id, row, col, landform, confidence \
(the winner's share of the votes), second_landform (the runner-up) and valid_frac, with a \
categorized style, one colour per landform found and a legend (also the GeoPackage's default \
style).

SMOOTH uses the neighbouring tiles, as landforms span several tiles: 'majority' adds the votes \
of the 8 neighbours (the tile's own counted twice); 'mrf' is an iterated-conditional-modes pass \
on a Potts model. The tiling parameters are those of "Score raster tiles".

Parameters a script can set: INPUT, LIBRARY, MODEL, K, SMOOTH (none|majority|mrf), TILE_SIZE, \
TILE_UNITS, OVERLAP, EXTENT, MASK, BANDS, MIN_VALID, DEVICE, BATCH_SIZE, OUTPUT. Without QGIS: \
python -m analog_plugin classify --input ... (same names in lower case)."""


class ClassifyLandformsAlgorithm(AnalogAlgorithm):
    """Processing algorithm ``analog:classifylandforms``."""

    ALG_ID = "classifylandforms"
    DISPLAY_NAME = "Classify landforms"
    HELP = HELP
    TAGS = ("mars", "landform", "classification", "knn", "onnx", "tiles", "planetary")

    PARAMS = P.CLASSIFY_PARAMS
    BANDS_PARENT = P.INPUT.name
    OUTPUTS = ((QgsProcessingOutputNumber, N_CLASSIFIED, "Number of tiles classified"),)

    def run_job(self, parameters: dict[str, Any], context: QgsProcessingContext,
            feedback: QgsProcessingFeedback) -> dict[str, Any]:
        settings = self.settings(parameters, context)
        inputs = read_tile_inputs(self, parameters, context, feedback)
        dest = output_gpkg_path(self, parameters, context)
        with core_errors():
            from analog_plugin.core import pipeline

            summary = pipeline.classify_landforms(
                output_path=dest.split("|", 1)[0], feedback=feedback,
                style_qml=str(common.style_path("landforms")), **inputs, **settings,
            )
        attach_style(context, dest, "landforms")
        return {common.OUTPUT: dest, N_CLASSIFIED: summary.n_classified}
