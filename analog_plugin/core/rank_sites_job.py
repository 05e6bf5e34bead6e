"""rank_sites: the best non-overlapping landing ellipses on a scores layer, under constraints.

Order of work: check the parameters; build the metric frame on the scores' body
(``site_frame``); rasterize the tile scores (overlaps averaged), the exclusions (every touched
cell) and, with a DEM, elevation and slope onto one metric grid; evaluate every candidate centre
of a lattice (``sites.evaluate``); keep those inside the latitude band (checked on the outline,
on the body); pick the best non-overlapping ones; write them back in the scores' CRS.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import ogr

from . import params as P
from .atomic import check_not_an_input, validate_output_path
from .errors import NoSiteError, ParameterError
from .feedback import Feedback, check_cancelled, ensure_feedback
from .gpkg_io import add_default_style, polygon_from_ring, read_style, resolve_style, utc_now
from .layer_writer import StreamingLayerWriter
from .site_dem import dem_on_grid
from .site_frame import Grid, MetricFrame, rasterize
from .sites import Ellipse, evaluate, pick_non_overlapping

SITES_LAYER = "sites"
SITE_FIELDS = [
    ("rank", ogr.OFTInteger),
    ("mean_score", ogr.OFTReal),
    ("frac_above", ogr.OFTReal),
    ("max_slope", ogr.OFTReal),
    ("mean_elevation", ogr.OFTReal),
    ("lat", ogr.OFTReal),
    ("lon", ogr.OFTReal),
]
CELLS_PER_MINOR_AXIS = 10


@dataclass(frozen=True)
class SitesSummary:
    n_sites: int
    n_candidates: int
    n_allowed: int
    rejected: dict[str, int]
    threshold: float
    cell_m: float
    output_path: Path
    sites: list[dict[str, float | None]]


def rank_sites(
    scores_wkb: Sequence[bytes],
    scores: Sequence[float | None],
    crs_wkt: str,
    output_path: str | os.PathLike[str],
    ellipse_major_km: float = 20.0,
    ellipse_minor_km: float = 7.0,
    azimuth: float = 90.0,
    spacing_km: float | None = None,
    dem: str | None = None,
    max_slope: float | None = None,
    min_elevation: float | None = None,
    max_elevation: float | None = None,
    exclude_wkb: Sequence[bytes] = (),
    latitude_min: float | None = None,
    latitude_max: float | None = None,
    threshold: float | None = None,
    count: int = 5,
    score_field: str = "score",
    feedback: Feedback | None = None,
    style_qml: str | os.PathLike[str] | None = None,
    inputs: Sequence[tuple[str, str]] = (),
) -> SitesSummary:
    """Rank landing ellipses; ``scores_wkb``/``scores`` are the tiles (geometry, value; None =
    unscored), ``exclude_wkb`` polygons, both in ``crs_wkt``. ``inputs`` (name, path) are files
    the output must not overwrite."""
    t0 = time.perf_counter()
    fb = ensure_feedback(feedback)
    major = float(P.check(P.ELLIPSE_MAJOR_KM, ellipse_major_km)) * 1000.0
    minor = float(P.check(P.ELLIPSE_MINOR_KM, ellipse_minor_km)) * 1000.0
    if minor > major:
        raise ParameterError(f"ELLIPSE_MINOR_KM = {minor / 1000:g} is larger than "
                             f"ELLIPSE_MAJOR_KM = {major / 1000:g}; swap them")
    az = float(P.check(P.AZIMUTH, azimuth))
    spacing = P.check(P.SPACING_KM, spacing_km)
    spacing_m = float(spacing) * 1000.0 if spacing is not None else minor / 4.0
    limits = {p.name: P.check(p, v) for p, v in ((P.MAX_SLOPE, max_slope),
                                                  (P.MIN_ELEVATION, min_elevation),
                                                  (P.MAX_ELEVATION, max_elevation),
                                                  (P.LATITUDE_MIN, latitude_min),
                                                  (P.LATITUDE_MAX, latitude_max))}
    lat_lo, lat_hi = limits["LATITUDE_MIN"], limits["LATITUDE_MAX"]
    if lat_lo is not None and lat_hi is not None and lat_lo >= lat_hi:
        raise ParameterError(f"LATITUDE_MIN = {lat_lo:g} is not below LATITUDE_MAX = "
                             f"{lat_hi:g}; give a band such as 5 and 30")
    lo_el, hi_el = limits["MIN_ELEVATION"], limits["MAX_ELEVATION"]
    if lo_el is not None and hi_el is not None and lo_el >= hi_el:
        raise ParameterError(f"MIN_ELEVATION = {lo_el:g} is not below MAX_ELEVATION = {hi_el:g}")
    needs_dem = [n for n in ("MAX_SLOPE", "MIN_ELEVATION", "MAX_ELEVATION")
                 if limits[n] is not None]
    if needs_dem and not dem:
        raise ParameterError(f"{', '.join(needs_dem)} need a DEM; give DEM or leave them empty")
    count = int(P.check(P.COUNT, count))
    out = validate_output_path(output_path)
    check_not_an_input(out, [*inputs, *([("DEM", dem)] if dem else [])])
    qml = read_style(resolve_style(style_qml, "sites.qml"))

    keep = [i for i, v in enumerate(scores) if v is not None and np.isfinite(float(v))]
    if not keep:
        raise NoSiteError(f"SCORES has no feature with a numeric '{score_field}'; give the "
                          "output of 'Score raster tiles' and one of its score fields")
    values = np.array([float(scores[i]) for i in keep], np.float64)  # type: ignore[arg-type]
    probe = [ogr.CreateGeometryFromWkb(scores_wkb[i]) for i in keep]
    env = [g.GetEnvelope() for g in probe if g is not None]
    bounds = (min(e[0] for e in env), min(e[2] for e in env), max(e[1] for e in env),
              max(e[3] for e in env))
    frame = MetricFrame.around(crs_wkt, bounds)
    tiles = frame.geometries_to_metric([scores_wkb[i] for i in keep], frame.source, "SCORES")
    cell = min(minor / CELLS_PER_MINOR_AXIS, spacing_m)
    grid = Grid.covering(tiles, cell)
    if grid.cell > cell:
        fb.pushWarning(f"the scored area is large for this ellipse: cells of {grid.cell:.0f} m "
                       f"instead of {cell:.0f} m (at most {grid.width} x {grid.height})")
    fb.pushInfo(f"Metric frame: azimuthal equidistant on the scores' body (radius "
                f"{frame.radius_m:.0f} m) centred at lat {frame.lat0:.4f}, lon {frame.lon0:.4f}; "
                f"grid {grid.width} x {grid.height} cells of {grid.cell:.0f} m")
    fb.setProgress(10.0)
    total, n = rasterize(grid, frame.aeqd, tiles, values.tolist())
    scored = n > 0
    score = np.where(scored, total / np.where(scored, n, 1.0), 0.0)
    excluded = np.zeros_like(scored)
    if exclude_wkb:
        zones = frame.geometries_to_metric(exclude_wkb, frame.source, "EXCLUDE")
        if zones:
            excluded = rasterize(grid, frame.aeqd, zones, None, all_touched=True)[1] > 0
    check_cancelled(fb, "rasterizing")
    fb.setProgress(30.0)
    slope = elevation = dem_ok = None
    if dem:
        elevation, dem_ok, slope = dem_on_grid(dem, grid, frame)
        dem_ok &= np.isfinite(elevation)
        fb.pushInfo(f"DEM on {grid.cell:.0f} m cells: slope at the DEM's own resolution (the "
                    "steepest pixel in each cell), elevation averaged")
    thr = P.check(P.THRESHOLD, threshold)
    thr = float(np.quantile(values, 0.9)) if thr is None else float(thr)
    ellipse = Ellipse(major / 2, minor / 2, az)
    cand = evaluate(score, scored, excluded, ellipse, grid.cell, spacing_m, thr, slope,
                    elevation, dem_ok, limits["MAX_SLOPE"], lo_el, hi_el,
                    cancelled=lambda: bool(fb.isCanceled()))
    check_cancelled(fb, "evaluating candidates")
    fb.setProgress(70.0)
    xs, ys = grid.centres()
    cx, cy = xs[cand.col], ys[cand.row]
    order = np.lexsort((-cand.frac_above, -cand.mean_score))
    rejected = dict(cand.rejected)
    if lat_lo is not None or lat_hi is not None:
        order, n_out = _in_band(order, cx, cy, ellipse, frame, lat_lo, lat_hi, count)
        rejected["outside the latitude band"] = n_out
    chosen = pick_non_overlapping(order, cx, cy, ellipse, count)
    if not chosen:
        why = ", ".join(f"{k}: {v}" for k, v in rejected.items() if v)
        raise NoSiteError(
            f"no candidate ellipse of {major / 1000:g} x {minor / 1000:g} km satisfies the "
            f"constraints ({cand.n_considered} candidates; rejected {why}); use a smaller "
            "ellipse, relax MAX_SLOPE / elevation / latitude limits, or score a larger area"
        )
    if len(chosen) < count:  # legitimate on a small area, but the user asked for more
        fb.pushWarning(
            f"only {len(chosen)} of the {count} requested ellipses fit without overlapping "
            f"({len(order)} allowed candidates, all others overlap a better one); score a "
            "larger area or use a smaller ellipse for more"
        )
    lon, lat = frame.lonlat(cx[chosen], cy[chosen])
    back = frame.from_metric()
    sites: list[dict[str, float | None]] = []
    rows, wkbs = [], []
    for rank, (i, la, lo) in enumerate(zip(chosen, lat, lon, strict=True), start=1):
        g = polygon_from_ring([tuple(p) for p in ellipse.outline(cx[i], cy[i])])
        g.Transform(back)
        site = {
            "rank": rank, "mean_score": float(cand.mean_score[i]),
            "frac_above": float(cand.frac_above[i]),
            "max_slope": None if cand.max_slope is None else float(cand.max_slope[i]),
            "mean_elevation": (None if cand.mean_elevation is None
                               else float(cand.mean_elevation[i])),
            "lat": float(la), "lon": float(lo),
        }
        sites.append(site)
        rows.append([site[f] for f, _ in SITE_FIELDS])
        wkbs.append(bytes(g.ExportToWkb()))
    meta = _metadata(score_field, major, minor, az, spacing_m, dem, limits, thr, count,
                     grid.cell)
    with StreamingLayerWriter(out, SITES_LAYER, crs_wkt, SITE_FIELDS, metadata=meta,
                              feedback=fb) as writer:
        writer.append(rows, wkbs)
        if qml is not None:
            add_default_style(writer.datasource, SITES_LAYER, qml, "sites",
                              "Mars Analogue Finder landing sites")
    fb.setProgress(100.0)
    allowed = len(cand.row) - rejected.get("outside the latitude band", 0)
    fb.pushInfo(f"{len(chosen)} site(s) from {allowed} allowed of {cand.n_considered} candidates "
                f"in {time.perf_counter() - t0:.1f} s; rejected: " + json.dumps(rejected))
    return SitesSummary(len(chosen), cand.n_considered, allowed, rejected, thr, grid.cell, out,
                        sites)


def _in_band(order: np.ndarray, cx: np.ndarray, cy: np.ndarray, ellipse: Ellipse,
             frame: MetricFrame, lo: float | None, hi: float | None,
             count: int) -> tuple[np.ndarray, int]:
    """``order`` without the candidates whose outline leaves the latitude band. Centres are
    screened at once; outlines are checked in preference order only until enough survive
    for the greedy pick (its overlap test may skip many, so a generous margin)."""
    lo_v = -90.0 if lo is None else lo
    hi_v = 90.0 if hi is None else hi
    _, lat_c = frame.lonlat(cx[order], cy[order])
    ok = (lat_c >= lo_v) & (lat_c <= hi_v)
    n_out = int((~ok).sum())
    screened = order[ok]
    kept: list[int] = []
    need = max(50 * count, 500)
    for s in range(0, len(screened), 256):
        part = screened[s:s + 256]
        outl = np.stack([ellipse.outline(cx[i], cy[i], 36) for i in part])
        _, lat = frame.lonlat(outl[..., 0], outl[..., 1])
        good = (lat.min(axis=1) >= lo_v) & (lat.max(axis=1) <= hi_v)
        n_out += int((~good).sum())
        kept.extend(part[good].tolist())
        if len(kept) >= need:
            break
    return np.array(kept, np.int64), n_out


def _metadata(score_field: str, major: float, minor: float, az: float, spacing: float,
              dem: str | None, limits: dict[str, float | None], thr: float, count: int,
              cell: float) -> dict[str, str]:
    run = {"SCORE_FIELD": score_field, "ELLIPSE_MAJOR_KM": major / 1000,
           "ELLIPSE_MINOR_KM": minor / 1000, "AZIMUTH": az, "SPACING_KM": spacing / 1000,
           "DEM": dem, **limits, "THRESHOLD": thr, "COUNT": count, "cell_m": cell}
    return {"analog_parameters": json.dumps(run), "analog_created_utc": utc_now()}
