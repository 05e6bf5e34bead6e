"""analog:scoretiles: score every tile of a raster against an analogue library."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
)

from analog_plugin.core import params as P

from . import common
from .base import AnalogAlgorithm
from .common import attach_style, core_errors, is_unset, output_gpkg_path
from .tile_inputs import read_tile_inputs

N_TILES = "N_TILES"
N_SCORED = "N_SCORED"
N_SKIPPED = "N_SKIPPED"
EXECUTION_PROVIDER = "EXECUTION_PROVIDER"

HELP = """Cuts the raster into square tiles, embeds each tile with the ONNX network and scores it \
against the exemplars of an analogue library (made with "Build analogue library" and the SAME \
model). The score is (1 + best cosine similarity) / 2, from 0 (opposite) to 1 (identical); the \
output polygon layer has one feature per scored tile with fields tile_id, row, col, score, \
best_class, best_exemplar, valid_frac, one score_<class> per library class (the best exemplar \
of that class), rank (1 = most similar) and percentile (100 = most similar; a threshold means \
the same on every scene), styled with a graduated ramp on score (also stored as the \
GeoPackage's default style).

NEGATIVE_CLASSES names library classes that are counter-examples (e.g. Earth rivers or \
farmland in a dune search): with p and n the best positive and negative class scores of a tile, \
score = clip(p - max(0, n - p), 0, 1), so a tile nearer a counter-example than any positive \
exemplar is pushed down by twice the difference; best_class is then the best positive class. \
OUTPUT_HEATMAP writes the score surface on the input grid (overlapping tiles averaged), styled \
with a colour ramp stored beside it. The layer's metadata records the model (sha256, version) and \
the run's parameters.

The raster must be a file readable by GDAL (GeoTIFF, JP2, ISIS cube, PDS...), in any CRS, \
including Mars and other planetary CRSs: the output keeps the raster CRS. Pixels are prepared \
exactly as the model was trained (its contract: e.g. a per-tile 2-98 % stretch) and the default \
tile is the one it was trained to see; tiles with too few valid pixels (nodata, outside the \
raster, outside MASK) are skipped.

Parameters a script can set: INPUT, LIBRARY, MODEL, TILE_SIZE, TILE_UNITS (pixels|metres), \
OVERLAP, EXTENT, MASK, BANDS, MIN_VALID, NEGATIVE_CLASSES, DEVICE (auto|cpu|cuda), BATCH_SIZE, \
OUTPUT, OUTPUT_HEATMAP, HEATMAP_CELL, SCHEDULER (advanced: empty = in this process, 'local' or \
tcp://HOST:PORT = a dask cluster, see docs/CLUSTER.md). The same \
run without QGIS: python -m analog_plugin score --input ... (same names in lower case)."""


class ScoreTilesAlgorithm(AnalogAlgorithm):
    """Processing algorithm ``analog:scoretiles``."""

    ALG_ID = "scoretiles"
    DISPLAY_NAME = "Score raster tiles against analogues"
    HELP = HELP
    TAGS = ("mars", "analogue", "similarity", "onnx", "tiles", "siamese", "planetary")

    PARAMS = P.SCORE_PARAMS
    BANDS_PARENT = P.INPUT.name
    OUTPUTS = ((QgsProcessingOutputNumber, N_TILES, "Number of tiles"),
               (QgsProcessingOutputNumber, N_SCORED, "Number of tiles scored"),
               (QgsProcessingOutputNumber, N_SKIPPED, "Number of tiles skipped"),
               (QgsProcessingOutputString, EXECUTION_PROVIDER,
                "onnxruntime execution provider used"))

    def run_job(self, parameters: dict[str, Any], context: QgsProcessingContext,
            feedback: QgsProcessingFeedback) -> dict[str, Any]:
        settings = self.settings(parameters, context)
        inputs = read_tile_inputs(self, parameters, context, feedback)
        dest = output_gpkg_path(self, parameters, context)
        heatmap = None
        if not is_unset(parameters, P.OUTPUT_HEATMAP.name):
            heatmap = self.parameterAsOutputLayer(parameters, P.OUTPUT_HEATMAP.name, context)
        scheduler = settings.pop("scheduler", None)
        if scheduler:
            return self._on_cluster(scheduler, inputs, settings, heatmap, dest, context, feedback)
        with core_errors():
            from analog_plugin.core import pipeline

            summary = pipeline.score_raster(
                output_path=dest.split("|", 1)[0],
                feedback=feedback,
                **inputs,
                style_qml=str(common.style_path("scores")),
                heatmap_path=heatmap or None,
                heatmap_style_qml=str(common.style_path("heatmap")),
                **settings,
            )
        attach_style(context, dest, "scores")
        outputs: dict[str, Any] = {}
        if summary.heatmap_path is not None:
            attach_style(context, str(summary.heatmap_path), "heatmap")
            outputs[P.OUTPUT_HEATMAP.name] = str(summary.heatmap_path)
        return {
            **outputs,
            common.OUTPUT: dest,
            N_TILES: summary.n_tiles,
            N_SCORED: summary.n_scored,
            N_SKIPPED: summary.n_skipped,
            EXECUTION_PROVIDER: summary.provider,
        }

    def _on_cluster(self, scheduler: str, inputs: dict[str, Any], settings: dict[str, Any],
                    heatmap: str | None, dest: str, context: QgsProcessingContext,
                    feedback: QgsProcessingFeedback) -> dict[str, Any]:
        """SCHEDULER set: the chunked batch engine on a dask cluster (same fields + source)."""
        if inputs["extent"] or inputs["mask_wkb"] or heatmap:
            raise QgsProcessingException("EXTENT, MASK and OUTPUT_HEATMAP are not available "
                                         "with SCHEDULER; clip the raster first or score in "
                                         "process")
        settings.pop("heatmap_cell", None)
        with core_errors():
            from analog_plugin.core.batch_job import score_many

            summary = score_many(rasters=[inputs["raster_path"]],
                                 library_path=inputs["library_path"],
                                 model_path=inputs["model_path"], bands=inputs["bands"],
                                 output_path=dest.split("|", 1)[0], scheduler=scheduler,
                                 feedback=feedback, style_qml=str(common.style_path("scores")),
                                 **settings)
        attach_style(context, dest, "scores")
        return {common.OUTPUT: dest, N_TILES: summary.n_scored, N_SCORED: summary.n_scored,
                N_SKIPPED: 0, EXECUTION_PROVIDER: summary.scheduler}
