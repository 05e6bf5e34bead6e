"""WKB polygons (what QGIS, OGR and the command line hand to core) -> OGR geometries or
GeoJSON-like dicts, with an error naming the bad polygon.

Through OGR rather than shapely: OGR parses every WKB flavour QGIS writes (curved, Z/M, ISO and
extended), ships with GDAL (no extra dependency) and its geometries intersect directly with tile
footprints.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .errors import RasterReadError, TilingError


def geometries_to_geojson(wkbs: Sequence[bytes]) -> list[dict[str, Any]]:
    """WKB polygons -> GeoJSON-like dicts for rasterio.features (via OGR, which parses any WKB)."""
    from osgeo import ogr

    out: list[dict[str, Any]] = []
    for i, wkb in enumerate(wkbs):
        geom = ogr.CreateGeometryFromWkb(bytes(wkb))
        if geom is None:
            raise RasterReadError(f"mask geometry #{i} is not valid WKB")
        out.append(json.loads(geom.ExportToJson()))
    return out


def geometries_from_wkb(wkbs: Sequence[bytes], what: str) -> list[Any]:
    """WKB -> OGR geometries; TilingError naming the bad one (empty or unparsable)."""
    from osgeo import ogr

    geoms = []
    for i, wkb in enumerate(wkbs):
        g = ogr.CreateGeometryFromWkb(bytes(wkb)) if wkb else None
        if g is None or g.IsEmpty():
            raise TilingError(f"{what} #{i} is empty or not valid WKB; fix or remove it")
        geoms.append(g)
    return geoms
