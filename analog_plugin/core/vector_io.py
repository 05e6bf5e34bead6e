"""Polygons from a vector file with OGR, reprojected to a raster's CRS (the command line's reader;
QGIS reads its own layers). The class rule is shared with the toolbox: ``exemplar_polygons``."""

from __future__ import annotations

from typing import Any

from osgeo import ogr, osr

from .errors import TilingError


def read_polygons(
    path: str, target_wkt: str, layer: str | None = None, class_field: str | None = None,
) -> tuple[list[tuple[bytes, object, int]], str]:
    """``[(WKB in the target CRS, class value or None, fid)]`` and the layer name."""
    ds, lyr = _open_layer(path, layer)
    defn = lyr.GetLayerDefn()
    if class_field and defn.GetFieldIndex(class_field) < 0:
        fields = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
        raise TilingError(f"class field '{class_field}' is not a field of '{path}' ({fields})")
    transform = _transform(lyr.GetSpatialRef(), target_wkt, path)
    rows: list[tuple[bytes, object, int]] = []
    for feat in lyr:
        geom = feat.GetGeometryRef()
        if geom is None or geom.IsEmpty():
            continue
        g = geom.Clone()
        if transform is not None and g.Transform(transform) != 0:
            raise TilingError(
                f"feature {feat.GetFID()} of '{path}' cannot be reprojected to the raster CRS "
                "(different celestial bodies?); give polygons in the raster's CRS"
            )
        wkb = polygonal_wkb(g)
        if wkb is None:
            continue
        value = feat.GetField(class_field) if class_field else None
        rows.append((wkb, value, int(feat.GetFID())))
    return rows, lyr.GetName()


def polygonal_wkb(geom: Any) -> bytes | None:
    """The polygonal part of an OGR geometry as WKB, repaired (MakeValid), or None when it has
    no area. Why: a self-intersecting ring "repairs" into polygons, but a zero-area sliver repairs
    into lines, and a line used as a mask or an exemplar would select the pixels it touches, not
    an area. The toolbox and the command line share this rule (``clean_polygon_wkb``)."""
    g = geom if geom.IsValid() else (geom.MakeValid() or geom)
    kind = ogr.GT_Flatten(g.GetGeometryType())
    if kind == ogr.wkbGeometryCollection:
        parts = ogr.Geometry(ogr.wkbMultiPolygon)
        for i in range(g.GetGeometryCount()):
            part = g.GetGeometryRef(i)
            part_kind = ogr.GT_Flatten(part.GetGeometryType())
            if part_kind == ogr.wkbPolygon:
                parts.AddGeometry(part)
            elif part_kind == ogr.wkbMultiPolygon:
                for j in range(part.GetGeometryCount()):
                    parts.AddGeometry(part.GetGeometryRef(j))
        g = parts
    elif kind not in (ogr.wkbPolygon, ogr.wkbMultiPolygon):
        return None
    if g.IsEmpty() or not g.GetArea() > 0.0:
        return None
    return bytes(g.ExportToWkb())


def clean_polygon_wkb(wkb: bytes) -> bytes | None:
    """``polygonal_wkb`` of a WKB geometry (for callers holding WKB, e.g. QGIS features)."""
    geom = ogr.CreateGeometryFromWkb(bytes(wkb))
    return None if geom is None else polygonal_wkb(geom)


def _open_layer(path: str, layer: str | None) -> tuple[Any, Any]:
    """(datasource, layer): keep the datasource referenced while the layer is used."""
    ds = ogr.Open(path)
    if ds is None:
        raise TilingError(f"cannot open vector file '{path}'; give a GeoPackage, shapefile, ...")
    lyr = ds.GetLayerByName(layer) if layer else ds.GetLayer(0)
    if lyr is None:
        raise TilingError(f"layer '{layer}' not found in '{path}'")
    return ds, lyr


def _transform(src_srs: osr.SpatialReference | None, target_wkt: str, path: str) -> object:
    if src_srs is None or not target_wkt:
        return None
    dst = osr.SpatialReference()
    if dst.ImportFromWkt(target_wkt) != 0 or src_srs.IsSame(dst):
        return None
    src = src_srs.Clone()
    src.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    dst.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    try:
        ct = osr.CreateCoordinateTransformation(src, dst)  # None on failure, unlike the class
    except (RuntimeError, TypeError):
        ct = None
    if ct is None:
        raise TilingError(
            f"the polygons of '{path}' ({src.GetName()}) cannot be transformed to the raster CRS "
            f"({dst.GetName()}): different celestial bodies? give polygons in the raster's CRS"
        )
    return ct


def read_scores(path: str, field: str, layer: str | None = None
                ) -> tuple[list[bytes], list[float | None], str]:
    """WKB geometries, the numeric ``field`` (None where NULL) and the CRS WKT of a scores
    layer (the command line's reader for rank-sites; QGIS reads its own layers)."""
    ds, lyr = _open_layer(path, layer)
    defn = lyr.GetLayerDefn()
    idx = defn.GetFieldIndex(field)
    if idx < 0:
        names = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
        raise TilingError(f"SCORE_FIELD '{field}' is not a field of '{path}' ({names}); use "
                          "'score' or a 'score_<class>' field")
    if defn.GetFieldDefn(idx).GetType() not in (ogr.OFTReal, ogr.OFTInteger, ogr.OFTInteger64):
        raise TilingError(f"SCORE_FIELD '{field}' of '{path}' is not numeric")
    srs = lyr.GetSpatialRef()
    wkbs: list[bytes] = []
    values: list[float | None] = []
    for feat in lyr:
        geom = feat.GetGeometryRef()
        if geom is None or geom.IsEmpty():
            continue
        wkbs.append(bytes(geom.ExportToWkb()))
        values.append(None if not feat.IsFieldSetAndNotNull(idx) else feat.GetFieldAsDouble(idx))
    return wkbs, values, srs.ExportToWkt() if srs is not None else ""
