"""Shared glue of the algorithms: enum compatibility, layer/geometry reading, error conversion,
output paths and styles. Parameter definitions and validation live in core/params.py (built into
QGIS parameters by ``param_factory``).

Everything heavy (tiling, ONNX, GeoPackage writing) lives in ``analog_plugin.core``; it is imported
lazily, inside ``processAlgorithm``, so that a missing onnxruntime never breaks the plugin load.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsFeatureSource,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProviderRegistry,
    QgsRasterLayer,
)

from analog_plugin import deps
from analog_plugin.core import paths  # pure: no onnxruntime, no qgis

PLUGIN_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = PLUGIN_DIR.parent

GROUP = "Analogue search"
GROUP_ID = "analoguesearch"

BANDS = "BANDS"
OUTPUT = "OUTPUT"


# ---- paths --------------------------------------------------------------------------------------
def resource_path(*parts: str) -> Path:
    """``resources/<parts>`` in the deployed plugin folder, else at the repository top level."""
    for base in (PLUGIN_DIR, REPO_DIR):
        candidate = base.joinpath("resources", *parts)
        if candidate.exists():
            return candidate
    return PLUGIN_DIR.joinpath("resources", *parts)


def style_path(name: str) -> Path:
    """QML style ``resources/styles/<name>.qml`` (deployed layout first, then the checkout)."""
    return Path(paths.style_path(f"{name}.qml"))


# ---- QGIS 3.34 .. 4.x enum compatibility ---------------------------------------------------
def _compat(scope: str, member: str, legacy_owner: Any, legacy_name: str) -> Any:
    """``Qgis.<scope>.<member>`` (QGIS >= 3.36, the only form in QGIS 4) else the legacy enum."""
    owner = getattr(Qgis, scope, None)
    if owner is not None and hasattr(owner, member):
        return getattr(owner, member)
    return getattr(legacy_owner, legacy_name)


NUMBER_DOUBLE = _compat("ProcessingNumberParameterType", "Double", QgsProcessingParameterNumber,
                        "Double")
NUMBER_INTEGER = _compat("ProcessingNumberParameterType", "Integer", QgsProcessingParameterNumber,
                         "Integer")
SOURCE_POLYGON = _compat("ProcessingSourceType", "VectorPolygon", QgsProcessing,
                         "TypeVectorPolygon")
FILE_FOLDER = _compat("ProcessingFileParameterBehavior", "Folder", QgsProcessingParameterFile,
                      "Folder")
FLAG_ADVANCED = _compat("ProcessingParameterFlag", "Advanced", QgsProcessingParameterDefinition,
                        "FlagAdvanced")


# ---- reading parameter values -------------------------------------------------------------------
def is_unset(parameters: Mapping[str, Any], name: str) -> bool:
    value = parameters.get(name)
    return value is None or (isinstance(value, str) and not value.strip())


def read_bands(
    alg: QgsProcessingAlgorithm,
    parameters: Mapping[str, Any],
    context: QgsProcessingContext,
    layer: QgsRasterLayer | None,
) -> list[int] | None:
    if is_unset(parameters, BANDS):
        return None
    bands = [int(b) for b in alg.parameterAsInts(parameters, BANDS, context)]
    if not bands:
        return None
    if layer is not None:
        bad = [b for b in bands if b < 1 or b > layer.bandCount()]
        if bad:
            raise QgsProcessingException(
                f"BANDS {bad} do not exist: the raster has {layer.bandCount()} band(s), numbered "
                "from 1."
            )
    return bands


# ---- layers and geometry ------------------------------------------------------------------------
def raster_file_path(layer: QgsRasterLayer | None, name: str) -> str:
    """The GDAL-readable file behind ``layer`` or a clear error (WMS, XYZ, WCS... are refused)."""
    if layer is None or not layer.isValid():
        raise QgsProcessingException(f"{name}: no valid raster layer was given.")
    if layer.providerType() != "gdal":
        raise QgsProcessingException(
            f"{name}: layer '{layer.name()}' comes from the '{layer.providerType()}' provider; "
            "the analogue search reads pixels with GDAL and needs a file-based raster. Save it "
            "as a GeoTIFF first (right-click > Export > Save As... or Raster > Conversion > "
            "Translate) and use that file."
        )
    parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
    path = str(parts.get("path") or layer.source())
    if not path.startswith("/vsi") and not os.path.isfile(path):
        raise QgsProcessingException(
            f"{name}: '{layer.source()}' is not a raster file that can be read directly; save "
            "the layer as a GeoTIFF first and use that file."
        )
    return path


def polygons_as_wkb(
    source: QgsFeatureSource,
    target_crs: QgsCoordinateReferenceSystem,
    context: QgsProcessingContext,
    feedback: QgsProcessingFeedback | None,
    class_field: str | None = None,
) -> Iterator[tuple[bytes, Any, int]]:
    """Yield ``(wkb in target CRS, class attribute or None, feature id)`` for valid polygons
    (repaired; those without area after repair are skipped with a warning: core's rule)."""
    from analog_plugin.core.vector_io import clean_polygon_wkb

    source_crs = source.sourceCrs()
    transform = QgsCoordinateTransform(source_crs, target_crs, context.transformContext())
    if source_crs.isValid() and target_crs.isValid() and source_crs != target_crs:
        if not transform.isValid():
            raise QgsProcessingException(
                f"Polygons in {source_crs.authid() or source_crs.description()} cannot be "
                f"transformed to the raster CRS {target_crs.authid() or target_crs.description()}"
                " (different celestial bodies?); give polygons in the raster's CRS."
            )
    elif not source_crs.isValid() and feedback is not None:
        feedback.pushWarning("The polygons have no CRS: they are assumed to be in the raster CRS.")
    request = QgsFeatureRequest()
    for feature in source.getFeatures(request):
        if feedback is not None and feedback.isCanceled():
            return
        geom = feature.geometry()
        if geom is None or geom.isEmpty():
            continue
        if transform.isValid() and not transform.isShortCircuited():
            try:
                geom.transform(transform)
            except Exception as err:  # QgsCsException: polygon outside the raster CRS domain
                raise QgsProcessingException(
                    f"Polygon {feature.id()} cannot be transformed to the raster CRS "
                    f"{target_crs.authid() or target_crs.description()} (different celestial "
                    f"bodies?); give polygons in the raster's CRS. {err}"
                ) from err
        wkb = clean_polygon_wkb(bytes(geom.asWkb()))
        if wkb is None:
            if feedback is not None:
                feedback.pushWarning(f"Polygon {feature.id()} has no area (after repairing it): "
                                     "skipped.")
            continue
        cls = feature[class_field] if class_field else None
        yield wkb, cls, int(feature.id())


# ---- running core -------------------------------------------------------------------------------
@contextmanager
def core_errors() -> Iterator[None]:
    """Turn core's AnalogError (and a missing onnxruntime) into QgsProcessingException."""
    try:
        deps.require_onnxruntime()
    except deps.MissingDependencyError as err:
        raise QgsProcessingException(str(err)) from err
    from analog_plugin.core.errors import AnalogError

    try:
        yield
    except AnalogError as err:
        raise QgsProcessingException(str(err)) from err
    except deps.MissingDependencyError as err:
        raise QgsProcessingException(str(err)) from err


def output_gpkg_path(
    alg: QgsProcessingAlgorithm, parameters: Mapping[str, Any], context: QgsProcessingContext
) -> str:
    """OUTPUT as a ``.gpkg`` file path (temporary outputs get a .gpkg name); nothing is created."""
    dest = alg.parameterAsOutputLayer(parameters, OUTPUT, context)
    if not dest:
        raise QgsProcessingException("OUTPUT: no output file was given.")
    path = dest.split("|", 1)[0]
    if path.startswith("ogr:"):
        raise QgsProcessingException("OUTPUT must be a GeoPackage file path ending in .gpkg.")
    if path.startswith("memory:") or not path.lower().endswith(".gpkg"):
        raise QgsProcessingException(
            f"OUTPUT must be a GeoPackage file ending in .gpkg (got '{dest}'): the results and "
            "their default style are stored in a GeoPackage."
        )
    return dest


def attach_style(context: QgsProcessingContext, dest: str, style: str) -> None:
    """Desktop only: style the layer QGIS loads on completion (never runs under qgis_process)."""
    if not context.willLoadLayerOnCompletion(dest):
        return
    from .postprocess import LayerStylePostProcessor

    details = context.layerToLoadOnCompletionDetails(dest)
    details.setPostProcessor(LayerStylePostProcessor.create(str(style_path(style))))
