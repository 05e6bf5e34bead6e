"""A local metric frame on the scores' own body; rasters of scores, exclusions and terrain in it.

Landing ellipses are sized in kilometres, slopes in degrees over metres: both must be right on Mars
and away from the equator, whatever CRS the scores came in (geographic degrees, equirectangular
with any ``lat_ts``, polar stereographic...). So everything is reprojected to an azimuthal
equidistant projection centred on the scored area and built on the SAME geographic CRS (body,
radius) as the scores layer: distances from the centre are exact, and over a site-selection area
(hundreds of km on Mars) the scale error elsewhere stays below 1 % (AEQD's radial scale is exact,
its tangential scale is (d / R) / sin(d / R): 0.4 % at 300 km from the centre on Mars).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from osgeo import gdal, ogr, osr

from .errors import TilingError

MAX_CELLS = 4096 * 4096


def _srs(wkt: str, what: str) -> osr.SpatialReference:
    srs = osr.SpatialReference()
    if not wkt or srs.ImportFromWkt(wkt) != 0:
        raise TilingError(f"{what} has no usable CRS; assign one (Layer Properties > Source)")
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def _transform(src: osr.SpatialReference, dst: osr.SpatialReference, what: str) -> Any:
    try:
        ct = osr.CreateCoordinateTransformation(src, dst)  # None on failure, unlike the class
    except (RuntimeError, TypeError):
        ct = None
    if ct is None:
        raise TilingError(f"{what} ({src.GetName()}) cannot be transformed to {dst.GetName()}: "
                          "different celestial bodies? give layers on the same body")
    return ct


@dataclass
class MetricFrame:
    """AEQD on the scores' body centred at (lat0, lon0); transforms to and from it."""

    source: osr.SpatialReference
    aeqd: osr.SpatialReference
    geographic: osr.SpatialReference
    lat0: float
    lon0: float
    radius_m: float
    _to_geo: Any = None

    @classmethod
    def around(cls, crs_wkt: str, bounds: tuple[float, float, float, float]) -> MetricFrame:
        """The frame centred on the middle of ``bounds`` (xmin, ymin, xmax, ymax in ``crs_wkt``)."""
        source = _srs(crs_wkt, "the scores layer")
        geo = osr.SpatialReference()
        geo.CopyGeogCSFrom(source)
        geo.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        cx, cy = (bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2
        lon0, lat0, _ = _transform(source, geo, "the scores layer").TransformPoint(cx, cy)
        if not (math.isfinite(lat0) and math.isfinite(lon0)):
            raise TilingError(f"the centre {cx, cy} of the scores layer has no latitude/longitude")
        aeqd = osr.SpatialReference()
        aeqd.CopyGeogCSFrom(source)
        aeqd.SetAE(lat0, lon0, 0.0, 0.0)
        aeqd.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        return cls(source, aeqd, geo, float(lat0), float(lon0), float(source.GetSemiMajor()))

    def to_metric(self, srs: osr.SpatialReference, what: str) -> Any:
        return _transform(srs, self.aeqd, what)

    def from_metric(self) -> Any:
        """Metric frame -> the scores' CRS."""
        return _transform(self.aeqd, self.source, "the metric frame")

    def geometries_to_metric(self, wkbs: Sequence[bytes], srs: osr.SpatialReference,
                             what: str) -> list[ogr.Geometry]:
        ct = self.to_metric(srs, what)
        out = []
        for i, wkb in enumerate(wkbs):
            g = ogr.CreateGeometryFromWkb(wkb)
            if g is None or g.IsEmpty():
                continue
            if g.Transform(ct) != 0:
                raise TilingError(f"{what}: feature {i} cannot be reprojected to the metric frame")
            out.append(g)
        return out

    def lonlat(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Longitude, latitude (degrees on the body) of metric-frame points."""
        if self._to_geo is None:  # built once: _in_band asks for thousands of points in chunks
            self._to_geo = _transform(self.aeqd, self.geographic, "the metric frame")
        pts = self._to_geo.TransformPoints(np.column_stack([x.ravel(), y.ravel()]).tolist())
        arr = np.asarray(pts, np.float64).reshape(-1, 3)
        return arr[:, 0].reshape(x.shape), arr[:, 1].reshape(x.shape)


@dataclass
class Grid:
    """A north-up raster grid in the metric frame: origin (x0, y0) = top-left, square cells."""

    x0: float
    y0: float
    cell: float
    width: int
    height: int

    @classmethod
    def covering(cls, geoms: Sequence[ogr.Geometry], cell: float) -> Grid:
        env = [g.GetEnvelope() for g in geoms]  # (minx, maxx, miny, maxy)
        xmin, xmax = min(e[0] for e in env), max(e[1] for e in env)
        ymin, ymax = min(e[2] for e in env), max(e[3] for e in env)
        w, h = math.ceil((xmax - xmin) / cell), math.ceil((ymax - ymin) / cell)
        if w * h > MAX_CELLS:
            factor = math.sqrt(w * h / MAX_CELLS)
            return cls.covering(geoms, cell * factor * 1.001)
        return cls(xmin, ymax, cell, max(w, 1), max(h, 1))

    @property
    def geotransform(self) -> tuple[float, ...]:
        return (self.x0, self.cell, 0.0, self.y0, 0.0, -self.cell)

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        xs = self.x0 + (np.arange(self.width) + 0.5) * self.cell
        ys = self.y0 - (np.arange(self.height) + 0.5) * self.cell
        return xs, ys

    def dataset(self, bands: int, dtype: int = gdal.GDT_Float32) -> Any:
        ds = gdal.GetDriverByName("MEM").Create("", self.width, self.height, bands, dtype)
        ds.SetGeoTransform(self.geotransform)
        return ds


def rasterize(grid: Grid, srs: osr.SpatialReference, geoms: Sequence[ogr.Geometry],
              values: Sequence[float] | None, all_touched: bool = False
              ) -> tuple[np.ndarray, np.ndarray]:
    """``(sum, count)`` of the values burnt into each cell whose centre a geometry covers
    (``all_touched``: every cell a geometry touches); overlapping polygons add up, so
    ``sum / count`` is the mean of overlapping tiles. Without values: count only."""
    mem = ogr.GetDriverByName("Memory").CreateDataSource("")
    lyr = mem.CreateLayer("g", srs, ogr.wkbUnknown)
    lyr.CreateField(ogr.FieldDefn("v", ogr.OFTReal))
    defn = lyr.GetLayerDefn()
    for i, g in enumerate(geoms):
        f = ogr.Feature(defn)
        f.SetField(0, float(values[i]) if values is not None else 1.0)
        f.SetGeometry(g)
        lyr.CreateFeature(f)
    ds = grid.dataset(2, gdal.GDT_Float64)
    ds.SetProjection(srs.ExportToWkt())
    opts = ["MERGE_ALG=ADD"] + (["ALL_TOUCHED=TRUE"] if all_touched else [])
    gdal.RasterizeLayer(ds, [1], lyr, options=[*opts, "ATTRIBUTE=v"])
    gdal.RasterizeLayer(ds, [2], lyr, burn_values=[1.0], options=opts)
    return ds.GetRasterBand(1).ReadAsArray(), ds.GetRasterBand(2).ReadAsArray()
