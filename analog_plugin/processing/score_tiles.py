"""analog:scoretiles: score every tile of a raster against an analogue library."""

from __future__ import annotations

import math
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBand,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
)

from . import common
from .base import AnalogAlgorithm
from .common import (
    BANDS,
    OUTPUT,
    add_device_params,
    add_model_param,
    add_param,
    add_tile_params,
    attach_style,
    core_errors,
    is_unset,
    output_gpkg_path,
    polygons_as_wkb,
    raster_file_path,
    read_bands,
    read_common,
)

INPUT = "INPUT"
LIBRARY = "LIBRARY"
OVERLAP = "OVERLAP"
EXTENT = "EXTENT"
MASK = "MASK"
MIN_VALID = "MIN_VALID"
N_TILES = "N_TILES"
N_SCORED = "N_SCORED"
N_SKIPPED = "N_SKIPPED"
EXECUTION_PROVIDER = "EXECUTION_PROVIDER"

HELP = """Cuts the raster into square tiles, embeds each tile with the ONNX network and scores it \
against the exemplars of an analogue library (made with "Build analogue library" and the SAME \
model). The score is (1 + best cosine similarity) / 2, from 0 (opposite) to 1 (identical); the \
output polygon layer has one feature per scored tile with fields tile_id, row, col, score, \
best_class, best_exemplar and valid_frac, styled with a graduated ramp on score (also stored as \
the GeoPackage's default style).

The raster must be a file readable by GDAL (GeoTIFF, JP2, ISIS cube, PDS...), in any CRS, \
including Mars and other planetary CRSs: the output keeps the raster CRS. Pixels are stretched \
per layer (2nd-98th percentile), tiles with too few valid pixels (nodata, outside the raster, \
outside MASK) are skipped.

Parameters a script can set: INPUT, LIBRARY, MODEL, TILE_SIZE, TILE_UNITS (pixels|metres), \
OVERLAP, EXTENT, MASK, BANDS, MIN_VALID, DEVICE (auto|cpu|cuda), BATCH_SIZE, OUTPUT."""


class ScoreTilesAlgorithm(AnalogAlgorithm):
    """Processing algorithm ``analog:scoretiles``."""

    ALG_ID = "scoretiles"
    DISPLAY_NAME = "Score raster tiles against analogues"
    HELP = HELP
    TAGS = ("mars", "analogue", "similarity", "onnx", "tiles", "siamese", "planetary")

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        add_param(
            self,
            QgsProcessingParameterRasterLayer(INPUT, "Raster to search (file-based)"),
            "Raster layer whose tiles are scored (e.g. a HiRISE/CTX/HRSC image). It must be a "
            "file GDAL can read; 8/16-bit integer and float rasters are supported, nodata is "
            "honoured.",
        )
        add_param(
            self,
            QgsProcessingParameterFile(LIBRARY, "Analogue library (GeoPackage)", extension="gpkg"),
            "GeoPackage written by 'Build analogue library' with the same MODEL: the exemplar "
            "embeddings each tile is compared with.",
        )
        add_model_param(self)
        add_tile_params(self)
        add_param(
            self,
            QgsProcessingParameterNumber(
                OVERLAP, "Tile overlap (%)", type=common.NUMBER_DOUBLE,
                defaultValue=0.0, minValue=0.0, maxValue=common.MAX_OVERLAP,
            ),
            "Overlap between neighbouring tiles in percent of the tile size, 0 to 95. The tile "
            "stride is round(size x (1 - overlap / 100)) pixels.",
        )
        add_param(
            self,
            QgsProcessingParameterExtent(EXTENT, "Extent to process", optional=True),
            "Only tiles over this extent (intersected with the raster) are processed. Empty: the "
            "whole raster. Any CRS; it is reprojected to the raster CRS.",
        )
        add_param(
            self,
            QgsProcessingParameterFeatureSource(
                MASK, "Mask polygons", [common.SOURCE_POLYGON], optional=True
            ),
            "Optional polygons; pixels outside them count as invalid (see MIN_VALID). "
            "Reprojected to the raster CRS, which must be on the same body (Mars mask for a "
            "Mars raster).",
        )
        add_param(
            self,
            QgsProcessingParameterBand(
                BANDS, "Bands", parentLayerParameterName=INPUT, optional=True, allowMultiple=True
            ),
            "Bands fed to the model (1-based). Empty: all bands; a 3-band raster becomes luma "
            "for a 1-channel model, a single band is repeated for a 3-channel model.",
            advanced=True,
        )
        add_param(
            self,
            QgsProcessingParameterNumber(
                MIN_VALID, "Minimum valid fraction of a tile",
                type=common.NUMBER_DOUBLE,
                defaultValue=0.5, minValue=0.0, maxValue=1.0,
            ),
            "Tiles whose fraction of valid pixels (inside the raster, not nodata, inside MASK) is "
            "below this value, 0 to 1, are skipped.",
        )
        add_device_params(self)
        add_param(
            self,
            QgsProcessingParameterVectorDestination(
                OUTPUT, "Tile scores", type=common.SOURCE_POLYGON
            ),
            "GeoPackage (.gpkg) of tile polygons with the scores, written atomically: a failed "
            "or cancelled run leaves an existing file untouched.",
        )
        self.addOutput(QgsProcessingOutputNumber(N_TILES, "Number of tiles"))
        self.addOutput(QgsProcessingOutputNumber(N_SCORED, "Number of tiles scored"))
        self.addOutput(QgsProcessingOutputNumber(N_SKIPPED, "Number of tiles skipped"))
        self.addOutput(
            QgsProcessingOutputString(EXECUTION_PROVIDER, "onnxruntime execution provider used")
        )

    # ---- validation ----------------------------------------------------------------------------
    def _read_scalars(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> tuple[float, float]:
        overlap = 0.0 if is_unset(parameters, OVERLAP) else self.parameterAsDouble(
            parameters, OVERLAP, context
        )
        if not math.isfinite(overlap) or not 0.0 <= overlap <= common.MAX_OVERLAP:
            raise QgsProcessingException(
                f"OVERLAP must be a percentage between 0 and {common.MAX_OVERLAP:g} "
                f"(got {parameters.get(OVERLAP)!r})."
            )
        min_valid = 0.5 if is_unset(parameters, MIN_VALID) else self.parameterAsDouble(
            parameters, MIN_VALID, context
        )
        if not math.isfinite(min_valid) or not 0.0 <= min_valid <= 1.0:
            raise QgsProcessingException(
                f"MIN_VALID must be a fraction between 0 and 1 (got {parameters.get(MIN_VALID)!r})."
            )
        return overlap, min_valid

    def checkParameterValues(  # noqa: N802 - QGIS API name
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> tuple[bool, str]:
        ok, message = common.check_values(self, parameters, context)
        if not ok:
            return ok, message
        try:
            self._read_scalars(parameters, context)
        except QgsProcessingException as err:
            return False, str(err)
        except Exception as err:
            return False, f"Invalid parameter value: {err}"
        return super().checkParameterValues(parameters, context)

    # ---- run -------------------------------------------------------------------------------------
    def processAlgorithm(  # noqa: N802 - QGIS API name
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback | None,
    ) -> dict[str, Any]:
        if feedback is None:
            feedback = QgsProcessingFeedback()
        layer = self.parameterAsRasterLayer(parameters, INPUT, context)
        raster_path = raster_file_path(layer, INPUT)
        crs = layer.crs()
        library = self.parameterAsFile(parameters, LIBRARY, context)
        if not library:
            raise QgsProcessingException("LIBRARY: give the analogue library GeoPackage (.gpkg).")
        settings = read_common(self, parameters, context)
        overlap, min_valid = self._read_scalars(parameters, context)

        extent = None
        if not is_unset(parameters, EXTENT):
            rect = self.parameterAsExtent(parameters, EXTENT, context, crs)
            if rect.isNull() or rect.isEmpty():
                raise QgsProcessingException(
                    f"EXTENT {parameters.get(EXTENT)!r} is empty or could not be read."
                )
            extent = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())

        mask_wkb: list[bytes] = []
        if not is_unset(parameters, MASK):
            mask = self.parameterAsSource(parameters, MASK, context)
            if mask is None:
                raise QgsProcessingException(f"MASK {parameters.get(MASK)!r} could not be read.")
            mask_wkb = [wkb for wkb, _cls, _fid in polygons_as_wkb(mask, crs, context, feedback)]
            if not mask_wkb:
                raise QgsProcessingException(
                    "MASK has no polygon with a geometry: every tile would be masked out."
                )

        bands = read_bands(self, parameters, context, layer)
        dest = output_gpkg_path(self, parameters, context)
        output_path = dest.split("|", 1)[0]

        feedback.pushInfo(
            f"Scoring {raster_path} against {library} (tiles {settings['tile_size'] or 'model'} "
            f"{settings['tile_units']}, overlap {overlap:g} %)"
        )
        with core_errors():
            from analog_plugin.core import pipeline

            summary = pipeline.score_raster(
                raster_path=raster_path,
                library_path=library,
                output_path=output_path,
                overlap=overlap,
                extent=extent,
                mask_wkb=tuple(mask_wkb),
                bands=bands,
                min_valid=min_valid,
                feedback=feedback,
                style_qml=str(common.style_path("scores")),
                **settings,
            )
        attach_style(context, dest, "scores")
        return {
            OUTPUT: dest,
            N_TILES: summary.n_tiles,
            N_SCORED: summary.n_scored,
            N_SKIPPED: summary.n_skipped,
            EXECUTION_PROVIDER: str(getattr(summary, "provider", "")),
        }
