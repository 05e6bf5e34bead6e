"""analog:buildlibrary: embed Earth (or Mars) analogue exemplars into a library GeoPackage."""

from __future__ import annotations

import os
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
    OUTPUT,
    attach_style,
    core_errors,
    is_unset,
    output_gpkg_path,
    polygons_as_wkb,
    raster_file_path,
    read_bands,
)

RASTER = P.RASTER.name
POLYGONS = P.POLYGONS.name
CLASS_FIELD = P.CLASS_FIELD.name
IMAGE_FOLDER = P.IMAGE_FOLDER.name
N_EXEMPLARS = "N_EXEMPLARS"
N_CLASSES = "N_CLASSES"
CLASSES = "CLASSES"

NEED_SOURCE = (
    "Give exemplars: RASTER together with POLYGONS (polygons drawn over the raster), and/or "
    "IMAGE_FOLDER (a folder with one subfolder of images per class)."
)

HELP = """Builds an analogue library: every exemplar is embedded once with the ONNX network and \
stored, with its class, in a GeoPackage that "Score raster tiles against analogues" compares \
tiles with.

Exemplars come from RASTER + POLYGONS (each polygon, reprojected to the raster CRS, is cut into \
tiles of TILE_SIZE; the class is taken from CLASS_FIELD, or the polygon layer's name) and/or \
from IMAGE_FOLDER (every image file in a subfolder is one exemplar whose class is the subfolder \
name). The library records the model's SHA-256: scoring with a different model is refused.

Parameters a script can set: RASTER, POLYGONS, CLASS_FIELD, IMAGE_FOLDER, MODEL, TILE_SIZE, \
TILE_UNITS (pixels|metres), BANDS, DEVICE (auto|cpu|cuda), BATCH_SIZE, OUTPUT."""


class BuildLibraryAlgorithm(AnalogAlgorithm):
    """Processing algorithm ``analog:buildlibrary``."""

    ALG_ID = "buildlibrary"
    DISPLAY_NAME = "Build analogue library"
    HELP = HELP
    TAGS = ("mars", "analogue", "library", "exemplar", "embedding", "onnx", "siamese")

    PARAMS = P.LIBRARY_PARAMS
    BANDS_PARENT = RASTER
    OUTPUTS = ((QgsProcessingOutputNumber, N_EXEMPLARS, "Number of exemplars"),
               (QgsProcessingOutputNumber, N_CLASSES, "Number of classes"),
               (QgsProcessingOutputString, CLASSES, "Classes (comma-separated)"))

    def check_more(self, parameters: dict[str, Any],
                   context: QgsProcessingContext) -> tuple[bool, str]:
        has_raster = not is_unset(parameters, RASTER)
        has_polygons = not is_unset(parameters, POLYGONS)
        if not (has_raster and has_polygons) and is_unset(parameters, IMAGE_FOLDER):
            if has_raster != has_polygons:
                need = POLYGONS if has_raster else RASTER
                return False, f"{need} is missing: RASTER and POLYGONS go together. {NEED_SOURCE}"
            return False, NEED_SOURCE
        return True, ""

    def _polygons(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> tuple[str, list[Any], list[int] | None]:
        from analog_plugin.core.exemplar_plan import exemplar_polygons

        layer = self.parameterAsRasterLayer(parameters, RASTER, context)
        raster_path = raster_file_path(layer, RASTER)
        source = self.parameterAsSource(parameters, POLYGONS, context)
        if source is None:
            raise QgsProcessingException(
                f"POLYGONS {parameters.get(POLYGONS)!r} could not be read."
            )
        field = self.parameterAsString(parameters, CLASS_FIELD, context) or None
        if field and source.fields().lookupField(field) < 0:
            raise QgsProcessingException(f"CLASS_FIELD '{field}' is not a field of POLYGONS.")
        rows = polygons_as_wkb(source, layer.crs(), context, feedback, field)
        polygons, skipped = exemplar_polygons(rows, field, source.sourceName() or "exemplar",
                                              raster_path)
        if skipped:
            feedback.pushWarning(f"{skipped} polygon(s) with a NULL '{field}' were skipped.")
        if not polygons:
            raise QgsProcessingException(
                "POLYGONS has no polygon with a geometry and a class: nothing to use as exemplar."
            )
        return raster_path, polygons, read_bands(self, parameters, context, layer)

    def run_job(self, parameters: dict[str, Any], context: QgsProcessingContext,
            feedback: QgsProcessingFeedback) -> dict[str, Any]:
        settings = self.settings(parameters, context)
        model = self.parameterAsFile(parameters, P.MODEL.name, context) or None
        has_raster = not is_unset(parameters, RASTER)
        has_polygons = not is_unset(parameters, POLYGONS)
        folder = None if is_unset(parameters, IMAGE_FOLDER) else self.parameterAsFile(
            parameters, IMAGE_FOLDER, context
        )
        if has_raster != has_polygons or not ((has_raster and has_polygons) or folder):
            raise QgsProcessingException(NEED_SOURCE)
        if folder and not os.path.isdir(folder):
            raise QgsProcessingException(f"IMAGE_FOLDER '{folder}' is not an existing folder.")
        dest = output_gpkg_path(self, parameters, context)

        with core_errors():
            from analog_plugin.core import pipeline

            raster_path: str | None = None
            polygons: list[Any] = []
            bands: list[int] | None = None
            if has_raster:
                raster_path, polygons, bands = self._polygons(parameters, context, feedback)
            summary = pipeline.build_library(
                model_path=model,
                output_path=dest.split("|", 1)[0],
                raster_path=raster_path,
                polygons=tuple(polygons),
                image_folder=folder,
                bands=bands,
                feedback=feedback,
                style_qml=str(common.style_path("library")),
                **settings,
            )
        classes = [str(c) for c in summary.classes]
        feedback.pushInfo(
            f"Library with {summary.n_exemplars} exemplar(s) in {len(classes)} class(es): "
            + ", ".join(classes)
        )
        attach_style(context, dest, "library")
        return {
            OUTPUT: dest,
            N_EXEMPLARS: summary.n_exemplars,
            N_CLASSES: len(classes),
            CLASSES: ",".join(classes),
        }
