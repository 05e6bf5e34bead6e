"""Elevation and slope of a DEM on the site grid: slope at the DEM's own resolution, in metres.

Why not resample the DEM first and differentiate after: resampling to coarser cells flattens
slopes (and GDAL's downsampling kernels add a few percent of ripple even on a perfect plane), so a
MAX_SLOPE test would pass steep ground. Instead the slope is computed on the DEM's native pixels,
with each pixel's ground size from its CRS's own geometry (``crs_units.pixel_size_m``: right for
geographic, equirectangular with any ``lat_ts`` and polar stereographic DEMs, on any body), and
then carried to the site grid with the MAXIMUM of the pixels in each cell (conservative: the
steepest DEM pixel under an ellipse counts). Elevation goes over as the cell average.

Only the DEM window under the scored area is read, decimated to at most MAX_DEM_PIXELS.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from osgeo import gdal, osr

from .crs_units import pixel_size_m
from .errors import TilingError
from .site_frame import Grid, MetricFrame

MAX_DEM_PIXELS = 4096 * 4096
NODATA = -1e30
LATTICE = 17  # pixel sizes evaluated on a LATTICE x LATTICE lattice, interpolated in between


def _open(path: str, frame: MetricFrame) -> tuple[Any, osr.SpatialReference]:
    src = gdal.OpenEx(path, gdal.OF_RASTER)
    if src is None:
        raise TilingError(f"cannot open the DEM '{path}'; give a GDAL-readable elevation raster")
    srs = osr.SpatialReference()
    if not src.GetProjection() or srs.ImportFromWkt(src.GetProjection()) != 0:
        raise TilingError(f"the DEM '{path}' has no CRS; assign one")
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    a_dem, a_scores = srs.GetSemiMajor(), frame.source.GetSemiMajor()
    if abs(a_dem - a_scores) > 0.01 * a_scores:
        raise TilingError(
            f"the DEM's body radius {a_dem:.0f} m differs from the scores layer's "
            f"{a_scores:.0f} m: DEM and scores must be on the same body"
        )
    return src, srs


def _window(src: Any, srs: osr.SpatialReference, grid: Grid, frame: MetricFrame
            ) -> tuple[int, int, int, int]:
    """DEM pixel window (col, row, width, height) covering the grid, clipped to the DEM."""
    ct = osr.CreateCoordinateTransformation(frame.aeqd, srs)
    if ct is None:
        raise TilingError(f"the DEM's CRS ({srs.GetName()}) cannot be reached from the scores' "
                          "frame: different celestial bodies? give a DEM of the same body")
    xs = np.linspace(grid.x0, grid.x0 + grid.width * grid.cell, 9)
    ys = np.linspace(grid.y0 - grid.height * grid.cell, grid.y0, 9)
    edge = [(x, y) for x in xs for y in (ys[0], ys[-1])] + [(x, y) for y in ys
                                                             for x in (xs[0], xs[-1])]
    pts = np.array(ct.TransformPoints(edge))[:, :2]
    pts = pts[np.isfinite(pts).all(axis=1)]
    if not len(pts):
        raise TilingError("the scored area cannot be located in the DEM's CRS")
    gt = src.GetGeoTransform()
    inv = gdal.InvGeoTransform(gt)
    cols = inv[0] + inv[1] * pts[:, 0] + inv[2] * pts[:, 1]
    rows = inv[3] + inv[4] * pts[:, 0] + inv[5] * pts[:, 1]
    c0 = max(0, int(math.floor(cols.min())) - 2)
    r0 = max(0, int(math.floor(rows.min())) - 2)
    c1 = min(src.RasterXSize, int(math.ceil(cols.max())) + 2)
    r1 = min(src.RasterYSize, int(math.ceil(rows.max())) + 2)
    if c1 - c0 < 3 or r1 - r0 < 3:
        raise TilingError("the DEM does not cover the scored area; give a DEM over it")
    return c0, r0, c1 - c0, r1 - r0


def _pixel_sizes(wkt: str, gt: tuple[float, ...], w: int, h: int) -> tuple[np.ndarray, ...]:
    """(dx_m, dy_m) of every pixel of a (h, w) grid with GDAL geotransform ``gt``."""
    affine = (gt[1], gt[2], gt[0], gt[4], gt[5], gt[3])
    cs, rs = np.linspace(0.5, w - 0.5, LATTICE), np.linspace(0.5, h - 0.5, LATTICE)
    sx, sy = np.zeros((LATTICE, LATTICE)), np.zeros((LATTICE, LATTICE))
    for i, r in enumerate(rs):
        for j, c in enumerate(cs):
            sx[i, j], sy[i, j] = pixel_size_m(wkt, affine, c, r)
    cc, rr = np.arange(w) + 0.5, np.arange(h) + 0.5

    def interp(v: np.ndarray) -> np.ndarray:
        along = np.stack([np.interp(cc, cs, row) for row in v])  # (LATTICE, w)
        return np.stack([np.interp(rr, rs, along[:, k]) for k in range(w)], axis=1)

    return interp(sx), interp(sy)


def dem_on_grid(path: str, grid: Grid, frame: MetricFrame
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(elevation, valid, slope_deg)`` on ``grid``: cell-average elevation, cells with DEM
    data, and the steepest native-resolution slope inside each cell."""
    src, srs = _open(path, frame)
    c0, r0, w, h = _window(src, srs, grid, frame)
    f = max(1.0, math.sqrt(w * h / MAX_DEM_PIXELS))
    bw, bh = max(3, int(w / f)), max(3, int(h / f))
    band = src.GetRasterBand(1)
    z = band.ReadAsArray(c0, r0, w, h, buf_xsize=bw, buf_ysize=bh,
                         resample_alg=gdal.GRIORA_Average).astype(np.float64)
    nodata = band.GetNoDataValue()
    if nodata is not None:
        z[z == nodata] = np.nan
    z[~np.isfinite(z)] = np.nan
    gt0 = src.GetGeoTransform()
    ox = gt0[0] + c0 * gt0[1] + r0 * gt0[2]
    oy = gt0[3] + c0 * gt0[4] + r0 * gt0[5]
    sx_, sy_ = w / bw, h / bh
    gt = (ox, gt0[1] * sx_, gt0[2] * sy_, oy, gt0[4] * sx_, gt0[5] * sy_)
    dx, dy = _pixel_sizes(srs.ExportToWkt(), gt, bw, bh)
    gy, gx = np.gradient(z)
    slope = np.degrees(np.arctan(np.hypot(gx / dx, gy / dy)))
    return (_to_grid(z, gt, srs, grid, frame, "average"),
            *_valid_and_slope(z, slope, gt, srs, grid, frame))


def _warp(arr: np.ndarray, gt: tuple[float, ...], srs: osr.SpatialReference, grid: Grid,
          frame: MetricFrame, alg: str) -> np.ndarray:
    h, w = arr.shape
    mem = gdal.GetDriverByName("MEM").Create("", w, h, 1, gdal.GDT_Float64)
    mem.SetGeoTransform(gt)
    mem.SetProjection(srs.ExportToWkt())
    b = mem.GetRasterBand(1)
    b.SetNoDataValue(NODATA)
    b.WriteArray(np.where(np.isfinite(arr), arr, NODATA))
    dst = grid.dataset(1, gdal.GDT_Float64)
    dst.SetProjection(frame.aeqd.ExportToWkt())
    dst.GetRasterBand(1).SetNoDataValue(NODATA)
    dst.GetRasterBand(1).Fill(NODATA)
    opts = gdal.WarpOptions(resampleAlg=alg, srcNodata=NODATA, dstNodata=NODATA,
                            errorThreshold=0)
    if gdal.Warp(dst, mem, options=opts) is None:
        raise TilingError("cannot resample the DEM onto the site grid")
    out = dst.GetRasterBand(1).ReadAsArray().astype(np.float64)
    out[out <= NODATA / 10] = np.nan
    return out  # type: ignore[no-any-return]


def _to_grid(z: np.ndarray, gt: tuple[float, ...], srs: osr.SpatialReference, grid: Grid,
             frame: MetricFrame, alg: str) -> np.ndarray:
    # Cells finer than the DEM pixels: 'average' would be blocky; bilinear is then the honest
    # elevation. Coarser cells: the average of the pixels inside.
    finer = grid.cell < min(abs(gt[1]), abs(gt[5])) * frame.radius_m * math.pi / 180 \
        if srs.IsGeographic() else grid.cell < min(abs(gt[1]), abs(gt[5]))
    return _warp(z, gt, srs, grid, frame, "bilinear" if finer else alg)


def _valid_and_slope(z: np.ndarray, slope: np.ndarray, gt: tuple[float, ...],
                     srs: osr.SpatialReference, grid: Grid, frame: MetricFrame
                     ) -> tuple[np.ndarray, np.ndarray]:
    s = _warp(slope, gt, srs, grid, frame, "max")
    near = _warp(slope, gt, srs, grid, frame, "near")  # cells finer than DEM pixels get none
    s = np.where(np.isfinite(s), s, near)
    valid = np.isfinite(s)
    return valid, s
