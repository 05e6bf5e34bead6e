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
from .common import (
    attach_style,
    core_errors,
    is_unset,
    output_gpkg_path,
    polygons_as_wkb,
    raster_file_path,
    read_bands,
)
from .param_factory import add_params, check_scalars, validated

N_TILES = "N_TILES"
N_SCORED = "N_SCORED"
N_SKIPPED = "N_SKIPPED"
EXECUTION_PROVIDER = "EXECUTION_PROVIDER"

HELP = """Cuts the raster into square tiles, embeds each tile with the ONNX network and scores it \
against the exemplars of an analogue library (made with "Build analogue library" and the SAME \
model). The score is (1 + best cosine similarity) / 2, from 0 (opposite) to 1 (identical); the \
output polygon layer has one feature per scored tile with fields tile_id, row, col, score, \
best_class, best_exemplar and valid_frac, styled with a graduated ramp on score (also stored as \
the GeoPackage's default style). The layer's metadata records the model (sha256, version) and \
the run's parameters.

The raster must be a file readable by GDAL (GeoTIFF, JP2, ISIS cube, PDS...), in any CRS, \
including Mars and other planetary CRSs: the output keeps the raster CRS. Pixels are prepared \
exactly as the model was trained (its contract: e.g. a per-tile 2-98 % stretch) and the default \
tile is the one it was trained to see; tiles with too few valid pixels (nodata, outside the \
raster, outside MASK) are skipped.

Parameters a script can set: INPUT, LIBRARY, MODEL, TILE_SIZE, TILE_UNITS (pixels|metres), \
OVERLAP, EXTENT, MASK, BANDS, MIN_VALID, DEVICE (auto|cpu|cuda), BATCH_SIZE, OUTPUT. The same \
run without QGIS: python -m analog_plugin score --input ... (same names in lower case)."""


class ScoreTilesAlgorithm(AnalogAlgorithm):
    """Processing algorithm ``analog:scoretiles``."""

    ALG_ID = "scoretiles"
    DISPLAY_NAME = "Score raster tiles against analogues"
    HELP = HELP
    TAGS = ("mars", "analogue", "similarity", "onnx", "tiles", "siamese", "planetary")

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        add_params(self, P.SCORE_PARAMS, bands_parent=P.INPUT.name)
        self.addOutput(QgsProcessingOutputNumber(N_TILES, "Number of tiles"))
        self.addOutput(QgsProcessingOutputNumber(N_SCORED, "Number of tiles scored"))
        self.addOutput(QgsProcessingOutputNumber(N_SKIPPED, "Number of tiles skipped"))
        self.addOutput(
            QgsProcessingOutputString(EXECUTION_PROVIDER, "onnxruntime execution provider used")
        )

    def checkParameterValues(  # noqa: N802 - QGIS API name
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> tuple[bool, str]:
        ok, message = check_scalars(self, parameters, P.SCORE_PARAMS, context)
        if not ok:
            return ok, message
        return super().checkParameterValues(parameters, context)

    def processAlgorithm(  # noqa: N802 - QGIS API name
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback | None,
    ) -> dict[str, Any]:
        if feedback is None:
            feedback = QgsProcessingFeedback()
        settings = validated(self, parameters, P.SCORE_PARAMS, context)
        layer = self.parameterAsRasterLayer(parameters, P.INPUT.name, context)
        raster_path = raster_file_path(layer, P.INPUT.name)
        crs = layer.crs()
        library = self.parameterAsFile(parameters, P.LIBRARY.name, context)
        if not library:
            raise QgsProcessingException("LIBRARY: give the analogue library GeoPackage (.gpkg).")
        model = self.parameterAsFile(parameters, P.MODEL.name, context) or None
        extent = None
        if not is_unset(parameters, P.EXTENT.name):
            rect = self.parameterAsExtent(parameters, P.EXTENT.name, context, crs)
            if rect.isNull() or rect.isEmpty():
                raise QgsProcessingException(
                    f"EXTENT {parameters.get(P.EXTENT.name)!r} is empty or could not be read."
                )
            extent = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
        mask_wkb: list[bytes] = []
        if not is_unset(parameters, P.MASK.name):
            mask = self.parameterAsSource(parameters, P.MASK.name, context)
            if mask is None:
                raise QgsProcessingException(
                    f"MASK {parameters.get(P.MASK.name)!r} could not be read."
                )
            mask_wkb = [wkb for wkb, _cls, _fid in polygons_as_wkb(mask, crs, context, feedback)]
            if not mask_wkb:
                raise QgsProcessingException(
                    "MASK has no polygon with a geometry: every tile would be masked out."
                )
        bands = read_bands(self, parameters, context, layer)
        dest = output_gpkg_path(self, parameters, context)
        with core_errors():
            from analog_plugin.core import pipeline

            summary = pipeline.score_raster(
                raster_path=raster_path,
                library_path=library,
                model_path=model,
                output_path=dest.split("|", 1)[0],
                extent=extent,
                mask_wkb=tuple(mask_wkb),
                bands=bands,
                feedback=feedback,
                style_qml=str(common.style_path("scores")),
                **settings,
            )
        attach_style(context, dest, "scores")
        return {
            common.OUTPUT: dest,
            N_TILES: summary.n_tiles,
            N_SCORED: summary.n_scored,
            N_SKIPPED: summary.n_skipped,
            EXECUTION_PROVIDER: summary.provider,
        }
