"""Ground size of a pixel, in metres, measured from the raster's own CRS geometry.

Why not a library call: pyproj/GDAL geodesic helpers default to the WGS84 ellipsoid, which
silently makes every Mars tile 1.88x too large. Here the body is always the CRS's own ellipsoid
or sphere (semi-major axis and flattening read from the CRS; Mars 2015 sphere: 3 396 190 m).

Why not the projected linear unit: a projected CRS's unit is only a ground metre where the
projection has true scale (its standard parallel, or the pole of a polar stereographic). In the
usual global Mars mosaic (equirectangular, lat_ts=0) a "100 m" pixel at 60 deg latitude is 50 m
wide on the ground, so a tile sized from the unit alone is 2x too narrow there.

So the scale is measured locally: at the requested pixel, step half a pixel either side along
columns and along rows (half of several pixels when pixels are tiny, see _MIN_STEP_OF_RADIUS;
one-sided where one end falls outside the CRS's domain), transform the end points from the
raster CRS to the CRS's geographic base CRS (its own datum), place them on that ellipsoid
(body-centred x, y, z) and turn the chord into an arc. Unlike ``hypot(M dphi, N cos(phi)
dlon)`` this has no singularity at the pole (the centre of every polar mosaic, where that
formula is pi/2 too large) and needs no longitude wrapping. Central differences are exact to
second order in the step: about 1e-9 relative. For a geographic CRS this reduces to
``deg * pi/180 * R`` north-south and ``... * cos(latitude)`` east-west at the pixel's own
latitude.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from osgeo import osr

from .errors import TilingError

# No osr.UseExceptions(): it is process-global and would change behaviour for every other QGIS
# plugin; return codes are checked instead (and RuntimeError caught in case someone enabled it).

Transform = Sequence[float]
"""Affine (a, b, c, d, e, f): x = a*col + b*row + c, y = d*col + e*row + f (rasterio ``Affine``
order; NOT GDAL's GetGeoTransform order (c, a, b, f, d, e))."""

PIXEL_UNITS = frozenset({"pixels", "pixel", "px"})
METRE_UNITS = frozenset({"metres", "meters", "metre", "meter", "m"})

_STEPS = ((-0.5, 0.5), (0.0, 1.0), (-1.0, 0.0))
"""Pixel offsets of the two end points: central difference first, then one-sided ones (used
only where a central end point falls outside the CRS's domain, e.g. half a pixel past a pole)."""

_MIN_STEP_OF_RADIUS = 1e-4
"""Pixels smaller than this fraction of the semi-major axis (340 m on Mars) are measured over
several pixels: PROJ's inverse loses precision for tiny steps near some singular points
(spherical polar stereographic at the pole: 0.8 % error with 0.25 m pixels). The truncation
error of a central difference over 1e-4 radii is about 1e-9; the result is still per pixel."""

_LAT_LIMIT_RAD = math.pi / 2 * (1 + 1e-12)
"""Some inverse projections (eqc) return latitudes beyond 90 deg instead of failing."""

_HINT = "give TILE_SIZE in pixels or reproject the raster to a projected or geographic CRS"


@dataclass(frozen=True)
class CrsInfo:
    """What the metre conversion needs from a CRS."""

    is_geographic: bool
    semi_major_m: float
    linear_unit_m: float  # metres per projected unit (projected CRSs)
    angular_unit_rad: float  # radians per angular unit (geographic CRSs)
    name: str


@dataclass(frozen=True)
class _Geometry:
    """A parsed CRS with its transformation to its own geographic base CRS (cached per WKT)."""

    info: CrsInfo
    to_geog: osr.CoordinateTransformation
    geog_rad_per_unit: float  # radians per angular unit of the geographic base CRS
    semi_major_m: float
    ecc2: float  # first eccentricity squared, f * (2 - f); 0 for a sphere
    # Kept alive alongside the transformation; the lock because an OGR transformation object
    # is not thread-safe and QGIS may run processing algorithms in parallel threads.
    srs: osr.SpatialReference
    geog: osr.SpatialReference
    lock: threading.Lock = field(default_factory=threading.Lock, compare=False)


def _parse(crs_wkt: str) -> osr.SpatialReference:
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
        raise TilingError(
            f"cannot parse the raster CRS (OGR error {rc} on '{crs_wkt[:60]}'); "
            "give TILE_SIZE in pixels"
        )
    return srs


@functools.lru_cache(maxsize=32)
def _geometry(crs_wkt: str) -> _Geometry:
    """Parse once per WKT: this is called per tile. Failures are not cached (they raise)."""
    srs = _parse(crs_wkt)
    name = srs.GetName() or "unnamed CRS"
    if srs.IsLocal() or not (srs.IsGeographic() or srs.IsProjected()):
        raise TilingError(
            f"the raster CRS '{name}' is neither geographic nor projected (local, engineering "
            f"or geocentric), so metres on the ground are unknown; {_HINT}"
        )
    geog = srs.CloneGeogCS()
    if geog is None:
        raise TilingError(f"the raster CRS '{name}' has no geographic base CRS; {_HINT}")
    semi_major = float(geog.GetSemiMajor())
    inv_f = float(geog.GetInvFlattening())
    if not (math.isfinite(semi_major) and semi_major > 0 and math.isfinite(inv_f)):
        raise TilingError(
            f"the raster CRS '{name}' has an unusable ellipsoid (semi-major axis {semi_major} m, "
            f"inverse flattening {inv_f}); {_HINT}"
        )
    flattening = 1.0 / inv_f if inv_f > 0 else 0.0  # 0 means a sphere
    for ref in (srs, geog):
        ref.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)  # x = lon/easting
    try:
        to_geog = osr.CreateCoordinateTransformation(srs, geog)
    except RuntimeError as err:
        raise TilingError(
            f"cannot transform the raster CRS '{name}' to its geographic CRS ({err}); {_HINT}"
        ) from err
    if to_geog is None:
        raise TilingError(
            f"cannot transform the raster CRS '{name}' to its geographic CRS; {_HINT}"
        )
    info = CrsInfo(
        is_geographic=bool(srs.IsGeographic()),
        semi_major_m=semi_major,
        linear_unit_m=float(srs.GetLinearUnits()) if srs.IsProjected() else 1.0,
        angular_unit_rad=float(srs.GetAngularUnits()),
        name=name,
    )
    return _Geometry(
        info=info,
        to_geog=to_geog,
        geog_rad_per_unit=float(geog.GetAngularUnits()),
        semi_major_m=semi_major,
        ecc2=flattening * (2.0 - flattening),
        srs=srs,
        geog=geog,
    )


def crs_info(crs_wkt: str) -> CrsInfo:
    """Parse a WKT (or any string osr understands) into ``CrsInfo``; TilingError when unusable."""
    return _geometry(crs_wkt).info


def _affine(transform: Transform) -> tuple[float, float, float, float, float, float]:
    values = tuple(float(v) for v in tuple(transform)[:6])
    if len(values) != 6 or not all(math.isfinite(v) for v in values):
        raise TilingError(
            f"the raster's geotransform {tuple(transform)} is not 6 finite numbers; "
            "check the raster's georeferencing or give TILE_SIZE in pixels"
        )
    a, b, c, d, e, f = values
    if a * e - b * d == 0:
        raise TilingError(
            f"the raster's geotransform {values} is degenerate (zero pixel area); "
            "check the raster's georeferencing or give TILE_SIZE in pixels"
        )
    return a, b, c, d, e, f


def _to_lonlat_rad(geom: _Geometry, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Transform map points to (lon, lat) radians; non-finite or |lat| > 90 deg -> NaN."""
    try:
        with geom.lock:
            out = geom.to_geog.TransformPoints(points)
    except (RuntimeError, TypeError, ValueError):
        out = None
    if out is None or len(out) != len(points):
        return [(math.nan, math.nan)] * len(points)
    k = geom.geog_rad_per_unit
    result = []
    for p in out:
        lon, lat = float(p[0]) * k, float(p[1]) * k
        ok = math.isfinite(lon) and math.isfinite(lat) and abs(lat) <= _LAT_LIMIT_RAD
        result.append((lon, lat) if ok else (math.nan, math.nan))
    return result


def _ground_m(geom: _Geometry, p: tuple[float, float], q: tuple[float, float]) -> float:
    """Length in metres on the CRS's ellipsoid between two nearby (lon, lat) radian points."""
    a, e2 = geom.semi_major_m, geom.ecc2

    def xyz(lon: float, lat: float) -> tuple[float, float, float]:
        s = math.sin(lat)
        n = a / math.sqrt(1.0 - e2 * s * s)  # prime vertical radius of curvature N(phi)
        r = n * math.cos(lat)  # distance from the polar axis
        return r * math.cos(lon), r * math.sin(lon), n * (1.0 - e2) * s

    chord = math.dist(xyz(*p), xyz(*q))
    # chord -> arc on the local (Gaussian) sphere sqrt(M N); exact for a sphere, and the
    # correction itself is only (chord / 2 rho)^2 / 6, so its ellipsoidal error is negligible.
    s = math.sin((p[1] + q[1]) / 2)
    rho = a * math.sqrt(1.0 - e2) / (1.0 - e2 * s * s)
    return 2.0 * rho * math.asin(min(1.0, chord / (2.0 * rho)))


def _step_m(
    geom: _Geometry,
    affine: tuple[float, float, float, float, float, float],
    col: float,
    row: float,
    dcol: float,
    drow: float,
) -> float:
    a, b, c, d, e, f = affine
    info = geom.info
    unit_m = info.angular_unit_rad * geom.semi_major_m if info.is_geographic else info.linear_unit_m
    approx_m = math.hypot(a * dcol + b * drow, d * dcol + e * drow) * unit_m
    long_step = _MIN_STEP_OF_RADIUS * geom.semi_major_m / approx_m if approx_m > 0 else 1.0
    for h in (long_step, 1.0) if long_step > 1.0 else (1.0,):
        for t0, t1 in _STEPS:
            ends = [(col + h * t * dcol, row + h * t * drow) for t in (t0, t1)]
            pts = [(a * i + b * j + c, d * i + e * j + f) for i, j in ends]
            p, q = _to_lonlat_rad(geom, pts)
            if math.isnan(p[0]) or math.isnan(q[0]):
                continue
            length = _ground_m(geom, p, q) / (h * (t1 - t0))
            if math.isfinite(length) and length > 0:
                return length
    x, y = a * col + b * row + c, d * col + e * row + f
    axis = "columns" if dcol else "rows"
    raise TilingError(
        f"cannot measure the pixel size in metres along {axis} at pixel ({col:g}, {row:g}), "
        f"map point ({x:.6g}, {y:.6g}) of the raster CRS '{info.name}': the point is outside "
        f"the CRS's valid area or cannot be transformed to latitude/longitude; {_HINT}"
    )


def pixel_size_m(crs_wkt: str, transform: Transform, col: float, row: float) -> tuple[float, float]:
    """Ground length in metres of one pixel step along columns (x) and along rows (y) at pixel
    (col, row), measured on the CRS's own ellipsoid. (col, row) use the transform's convention
    (rasterio: integer values are pixel corners, +0.5 the centre)."""
    geom = _geometry(crs_wkt)
    affine = _affine(transform)
    col, row = float(col), float(row)
    if not (math.isfinite(col) and math.isfinite(row)):
        raise TilingError(f"pixel ({col}, {row}) is not finite; give TILE_SIZE in pixels")
    return _step_m(geom, affine, col, row, 1.0, 0.0), _step_m(geom, affine, col, row, 0.0, 1.0)


def tile_size_pixels(
    size: float,
    units: str,
    crs_wkt: str = "",
    transform: Transform = (1, 0, 0, 0, -1, 0),
    col: float = 0.0,
    row: float = 0.0,
) -> tuple[int, int]:
    """(width, height) in pixels of a tile ``size`` ``units`` ('pixels' or 'metres') centred at
    pixel (col, row).

    In metres the window may be non-square in pixels (away from a projection's true-scale
    line); each tile is later resampled to the model's S x S.
    """
    units_l = units.lower().strip()
    if not (math.isfinite(size) and size > 0):
        raise TilingError(f"tile size {size} {units} must be > 0")
    if units_l in PIXEL_UNITS:
        if size != int(size):
            raise TilingError(f"tile size {size} pixels must be a whole number of pixels")
        return int(size), int(size)
    if units_l in METRE_UNITS:
        mx, my = pixel_size_m(crs_wkt, transform, col, row)
        return max(1, round(size / mx)), max(1, round(size / my))
    raise TilingError(f"tile units '{units}' unknown; use 'pixels' or 'metres'")
