"""Ground size of a pixel, in metres, from the raster's own CRS.

Why not a library call: pyproj/GDAL geodesic helpers default to the WGS84 ellipsoid, which
silently makes every Mars tile 1.88x too large. Here the radius is always the CRS ellipsoid's
semi-major axis (Mars 2015 sphere: 3 396 190 m) and the units are the CRS's own.

Geographic CRS: ``deg * pi/180 * R`` north-south, times ``cos(latitude)`` east-west at the
latitude of the extent centre (one scale per run: tiles stay equal in pixels, which keeps the
grid regular; at high latitudes reproject to a polar projection for equal-area tiles).
Projected CRS: the linear unit factor (metre = 1, US foot = 0.3048006...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from osgeo import osr

from .errors import TilingError

# No osr.UseExceptions(): it is process-global and would change behaviour for every other QGIS
# plugin; return codes are checked instead (and RuntimeError caught in case someone enabled it).

MIN_COS_LAT = 1e-6
"""Guards the cos(latitude) factor at the poles against division by zero."""


@dataclass(frozen=True)
class CrsInfo:
    """What the metre conversion needs from a CRS."""

    is_geographic: bool
    semi_major_m: float
    linear_unit_m: float  # metres per projected unit (projected CRSs)
    angular_unit_rad: float  # radians per angular unit (geographic CRSs)
    name: str


def crs_info(crs_wkt: str) -> CrsInfo:
    """Parse a WKT (or any string osr understands) into ``CrsInfo``; TilingError when unusable."""
    if not crs_wkt:
        raise TilingError(
            "the raster has no CRS, so a tile size in metres cannot be converted; "
            "assign the raster a CRS or give TILE_SIZE in pixels"
        )
    srs = osr.SpatialReference()
    try:
        rc = srs.SetFromUserInput(crs_wkt)
    except RuntimeError as err:
        raise TilingError(f"cannot parse the raster CRS ({err}); give TILE_SIZE in pixels") from err
    if rc != 0:
        raise TilingError("cannot parse the raster CRS; give TILE_SIZE in pixels")
    name = srs.GetName() or "unnamed CRS"
    if srs.IsLocal() or not (srs.IsGeographic() or srs.IsProjected()):
        raise TilingError(
            f"the raster CRS '{name}' is neither geographic nor projected; give TILE_SIZE in pixels"
        )
    return CrsInfo(
        is_geographic=bool(srs.IsGeographic()),
        semi_major_m=float(srs.GetSemiMajor()),
        linear_unit_m=float(srs.GetLinearUnits()) if srs.IsProjected() else 1.0,
        angular_unit_rad=float(srs.GetAngularUnits()),
        name=name,
    )


def pixel_size_m(
    crs_wkt: str, res_x: float, res_y: float, center_lat: float = 0.0
) -> tuple[float, float]:
    """Ground size (x, y) in metres of one pixel of ``res_x`` by ``res_y`` CRS units.

    ``center_lat`` (in the CRS's angular unit) is only used for geographic CRSs.
    """
    info = crs_info(crs_wkt)
    rx, ry = abs(float(res_x)), abs(float(res_y))
    if info.is_geographic:
        per_unit = info.angular_unit_rad * info.semi_major_m
        lat_rad = center_lat * info.angular_unit_rad
        cos_lat = max(abs(math.cos(lat_rad)), MIN_COS_LAT)
        return rx * per_unit * cos_lat, ry * per_unit
    return rx * info.linear_unit_m, ry * info.linear_unit_m


def tile_size_pixels(
    size: float,
    units: str,
    crs_wkt: str = "",
    res_x: float = 1.0,
    res_y: float = 1.0,
    center_lat: float = 0.0,
) -> tuple[int, int]:
    """(width, height) in pixels of a tile of ``size`` ``units`` ("pixels" or "metres").

    In metres the window may be non-square in pixels (geographic CRS away from the equator);
    each tile is later resampled to the model's S x S.
    """
    units_l = units.lower().strip()
    if not (math.isfinite(size) and size > 0):
        raise TilingError(f"tile size {size} {units} must be > 0")
    if units_l in ("pixels", "pixel", "px"):
        if size != int(size):
            raise TilingError(f"tile size {size} pixels must be a whole number of pixels")
        return int(size), int(size)
    if units_l in ("metres", "meters", "metre", "meter", "m"):
        mx, my = pixel_size_m(crs_wkt, res_x, res_y, center_lat)
        w = max(1, int(round(size / mx)))
        h = max(1, int(round(size / my)))
        return w, h
    raise TilingError(f"tile units '{units}' unknown; use 'pixels' or 'metres'")
