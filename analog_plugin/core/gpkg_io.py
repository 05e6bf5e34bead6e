"""Generic GeoPackage I/O with OGR: data sources, layers, fields, WKB polygons, layer metadata and
the QGIS ``layer_styles`` default style. Knows nothing about scores or libraries.

Why ``layer_styles``: QGIS looks for a row with useAsDefault=1 when it opens a GeoPackage layer,
in the desktop, in qgis_process output loaded later and on another machine. Storing the QML in
the file is the only way the result opens styled everywhere. The table is created through OGR
exactly as QGIS itself does (FID ``id``, registered in gpkg_contents as an attribute table).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from osgeo import ogr, osr

from .errors import OutputError
from .paths import style_path

GEOMETRY_COLUMN = "geom"
STYLES_TABLE = "layer_styles"


def make_srs(crs_wkt: str) -> osr.SpatialReference | None:
    """osr SRS from WKT with x=easting/longitude order (as rasterio gives coordinates)."""
    if not crs_wkt:
        return None
    srs = osr.SpatialReference()
    try:
        rc = srs.ImportFromWkt(crs_wkt)
    except RuntimeError:
        rc = 1
    if rc != 0:
        rc = srs.SetFromUserInput(crs_wkt)
        if rc != 0:
            return None
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def utc_now() -> str:
    """Current UTC time as ISO 8601, with ``timezone.utc``: the plugin runs on Python 3.10
    (QGIS 3.34), so no 3.11-only names (ruff checks analog_plugin/ against py310)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_WKB_HEADER = struct.pack("<BII", 1, 3, 1)  # little endian, wkbPolygon, one ring


def polygon_wkbs(rings: np.ndarray) -> list[bytes]:
    """``(N, K, 2)`` closed rings -> N WKB polygons, built in one go (no per-point OGR calls)."""
    rings = np.ascontiguousarray(rings, dtype="<f8")
    n, k = rings.shape[:2]
    head = _WKB_HEADER + struct.pack("<I", k)
    body = rings.reshape(n, 2 * k).view(np.uint8)  # (N, 16 K) bytes, x/y float64 pairs
    return [head + row.tobytes() for row in body]


def set_layer_metadata(layer: Any, items: Mapping[str, str]) -> None:
    """GDAL metadata items on a layer (stored in the GeoPackage's gpkg_metadata tables)."""
    for key, value in items.items():
        layer.SetMetadataItem(str(key), str(value))


def polygon_from_ring(ring: Sequence[tuple[float, float]]) -> ogr.Geometry:
    lr = ogr.Geometry(ogr.wkbLinearRing)
    for x, y in ring:
        lr.AddPoint_2D(float(x), float(y))
    lr.CloseRings()
    poly = ogr.Geometry(ogr.wkbPolygon)
    poly.AddGeometry(lr)
    return poly


def create_gpkg(path: Path) -> Any:
    """A new GeoPackage datasource (OutputError on failure)."""
    drv = ogr.GetDriverByName("GPKG")
    if drv is None:
        raise OutputError("GDAL has no GPKG driver; reinstall GDAL/QGIS")
    try:
        ds = drv.CreateDataSource(str(path))
    except RuntimeError as err:
        ds = None
        detail = str(err)
    else:
        detail = ""
    if ds is None:
        raise OutputError(f"cannot create GeoPackage '{path}' {detail}".strip())
    return ds


def create_layer(ds: Any, name: str, srs: osr.SpatialReference | None, geom_type: int) -> Any:
    lyr = ds.CreateLayer(
        name, srs, geom_type, options=[f"GEOMETRY_NAME={GEOMETRY_COLUMN}", "FID=fid"]
    )
    if lyr is None:
        raise OutputError(f"cannot create layer '{name}' in the GeoPackage")
    return lyr


def add_fields(lyr: Any, fields: Iterable[tuple[str, int]]) -> None:
    for name, ftype in fields:
        if lyr.CreateField(ogr.FieldDefn(name, ftype)) != 0:
            raise OutputError(f"cannot create field '{name}'")


def resolve_style(style_qml: str | os.PathLike[str] | None, default_name: str) -> Path | None:
    """The QML to embed: explicit path (must exist) or the bundled default (None if absent)."""
    if style_qml is None or str(style_qml) == "":
        p = style_path(default_name)
        return p if p.is_file() else None
    p = Path(os.fspath(style_qml))
    if not p.is_file():
        raise OutputError(f"style file '{p}' not found; give an existing .qml or leave it empty")
    return p


def read_style(style_qml: Path | None) -> str | None:
    if style_qml is None:
        return None
    try:
        return style_qml.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise OutputError(f"cannot read style '{style_qml}' ({err})") from err


def add_default_style(
    ds: Any, table: str, qml: str, style_name: str, description: str = ""
) -> None:
    """Insert ``qml`` as the default style of ``table`` into ``layer_styles`` (created if
    needed, with the schema QGIS uses)."""
    lyr = ds.GetLayerByName(STYLES_TABLE)
    if lyr is None:
        lyr = ds.CreateLayer(STYLES_TABLE, None, ogr.wkbNone, options=["FID=id"])
        if lyr is None:
            raise OutputError("cannot create the layer_styles table")
        for name, width in (
            ("f_table_catalog", 256),
            ("f_table_schema", 256),
            ("f_table_name", 256),
            ("f_geometry_column", 256),
            ("styleName", 30),
            ("styleQML", 0),
            ("styleSLD", 0),
        ):
            fd = ogr.FieldDefn(name, ogr.OFTString)
            fd.SetWidth(width)
            lyr.CreateField(fd)
        fd = ogr.FieldDefn("useAsDefault", ogr.OFTInteger)
        fd.SetSubType(ogr.OFSTBoolean)
        lyr.CreateField(fd)
        lyr.CreateField(ogr.FieldDefn("description", ogr.OFTString))
        fd = ogr.FieldDefn("owner", ogr.OFTString)
        fd.SetWidth(30)
        lyr.CreateField(fd)
        fd = ogr.FieldDefn("ui", ogr.OFTString)
        fd.SetWidth(30)
        lyr.CreateField(fd)
        fd = ogr.FieldDefn("update_time", ogr.OFTDateTime)
        fd.SetDefault("CURRENT_TIMESTAMP")
        lyr.CreateField(fd)
    feat = ogr.Feature(lyr.GetLayerDefn())
    values: dict[str, Any] = {
        "f_table_catalog": "",
        "f_table_schema": "",
        "f_table_name": table,
        "f_geometry_column": GEOMETRY_COLUMN,
        "styleName": style_name[:30],
        "styleQML": qml,
        "styleSLD": "",
        "useAsDefault": 1,
        "description": description,
        "owner": "",
        "ui": "",
        "update_time": utc_now(),
    }
    for k, v in values.items():
        feat.SetField(k, v)
    if lyr.CreateFeature(feat) != 0:
        raise OutputError("cannot write the default style into layer_styles")
