"""The inputs every "tiles of a raster against a library" algorithm reads the same way.

analog:scoretiles and analog:classifylandforms take INPUT, LIBRARY, MODEL, EXTENT, MASK and BANDS
with identical rules (file-based raster, extent in the raster CRS, mask polygons reprojected,
bands checked against the layer); reading them lives here once.
"""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
)

from analog_plugin.core import params as P

from .common import is_unset, polygons_as_wkb, raster_file_path, read_bands


def read_tile_inputs(
    alg: QgsProcessingAlgorithm, parameters: dict[str, Any], context: QgsProcessingContext,
    feedback: QgsProcessingFeedback,
) -> dict[str, Any]:
    """Core keyword arguments: raster_path, library_path, model_path, extent, mask_wkb, bands."""
    layer = alg.parameterAsRasterLayer(parameters, P.INPUT.name, context)
    raster_path = raster_file_path(layer, P.INPUT.name)
    crs = layer.crs()
    library = alg.parameterAsFile(parameters, P.LIBRARY.name, context)
    if not library:
        raise QgsProcessingException("LIBRARY: give the analogue library GeoPackage (.gpkg).")
    model = alg.parameterAsFile(parameters, P.MODEL.name, context) or None
    extent = None
    if not is_unset(parameters, P.EXTENT.name):
        rect = alg.parameterAsExtent(parameters, P.EXTENT.name, context, crs)
        if rect.isNull() or rect.isEmpty():
            raise QgsProcessingException(
                f"EXTENT {parameters.get(P.EXTENT.name)!r} is empty or could not be read."
            )
        extent = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
    mask_wkb: list[bytes] = []
    if not is_unset(parameters, P.MASK.name):
        mask = alg.parameterAsSource(parameters, P.MASK.name, context)
        if mask is None:
            raise QgsProcessingException(f"MASK {parameters.get(P.MASK.name)!r} could not be read.")
        mask_wkb = [wkb for wkb, _cls, _fid in polygons_as_wkb(mask, crs, context, feedback)]
        if not mask_wkb:
            raise QgsProcessingException(
                "MASK has no polygon with a geometry: every tile would be masked out."
            )
    return {
        "raster_path": raster_path, "library_path": library, "model_path": model,
        "extent": extent, "mask_wkb": tuple(mask_wkb),
        "bands": read_bands(alg, parameters, context, layer),
    }
