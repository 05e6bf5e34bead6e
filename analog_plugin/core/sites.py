"""Candidate landing ellipses on a metric grid: which are allowed, how good, and the best few apart.

Pure numpy on rasters already in the metric frame (``site_frame``). An ellipse is the set of grid
cells whose centre lies inside it (major axis ``a``, minor ``b``, ``azimuth`` clockwise from grid
north); every candidate uses the same cell offsets, so evaluating thousands is a gather.

A candidate is **allowed** only if every one of its cells is scored (never partly outside the
scored area or over skipped tiles), none is excluded, and, with a DEM, every cell has an elevation,
the steepest slope is <= MAX_SLOPE and every elevation lies in [MIN_ELEVATION, MAX_ELEVATION]; the
latitude band is checked on the outline (``rank_sites_job``). Allowed candidates are ranked by
``mean_score`` (ties: ``frac_above``, the share of cells scoring >= THRESHOLD), and picked
greedily so that no two chosen ellipses overlap.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Ellipse:
    """Semi-axes in metres and the major axis' azimuth in degrees clockwise from north."""

    semi_major: float
    semi_minor: float
    azimuth_deg: float

    def _axes(self) -> tuple[float, float]:
        t = math.radians(self.azimuth_deg)
        return math.sin(t), math.cos(t)  # unit vector of the major axis (east, north)

    def offsets(self, cell: float) -> tuple[np.ndarray, np.ndarray]:
        """``(drow, dcol)`` of the cells whose centres lie inside, relative to the centre cell."""
        r = math.ceil(self.semi_major / cell) + 1
        d = np.arange(-r, r + 1)
        dr, dc = np.meshgrid(d, d, indexing="ij")
        x, y = dc * cell, -dr * cell
        ux, uy = self._axes()
        u = x * ux + y * uy
        v = -x * uy + y * ux
        inside = (u / self.semi_major) ** 2 + (v / self.semi_minor) ** 2 <= 1.0
        return dr[inside], dc[inside]

    def outline(self, cx: float, cy: float, n: int = 72) -> np.ndarray:
        """``(n + 1, 2)`` closed outline in metric coordinates around (cx, cy)."""
        t = np.linspace(0, 2 * math.pi, n + 1)
        t[-1] = 0.0
        u, v = self.semi_major * np.cos(t), self.semi_minor * np.sin(t)
        ux, uy = self._axes()
        return np.column_stack([cx + u * ux - v * uy, cy + u * uy + v * ux])


@dataclass(frozen=True, eq=False)
class Candidates:
    """Allowed candidate centres (grid row/col) and their statistics."""

    row: np.ndarray
    col: np.ndarray
    mean_score: np.ndarray
    frac_above: np.ndarray
    max_slope: np.ndarray | None
    mean_elevation: np.ndarray | None
    n_considered: int
    rejected: dict[str, int]


CHUNK = 8192  # candidates gathered at once: CHUNK x cells-per-ellipse values in memory


def evaluate(
    score: np.ndarray, scored: np.ndarray, excluded: np.ndarray, ellipse: Ellipse, cell: float,
    spacing: float, threshold: float, slope: np.ndarray | None = None,
    elevation: np.ndarray | None = None, dem_ok: np.ndarray | None = None,
    max_slope: float | None = None, min_elevation: float | None = None,
    max_elevation: float | None = None, cancelled: Callable[[], bool] = lambda: False,
) -> Candidates:
    """Every candidate on a ``spacing`` lattice over the grid, filtered and scored (in chunks
    of CHUNK candidates, so memory stays bounded; ``cancelled`` is polled between chunks)."""
    h, w = score.shape
    dr, dc = ellipse.offsets(cell)
    step = max(1, int(round(spacing / cell)))
    rr, cc = np.meshgrid(np.arange(0, h, step), np.arange(0, w, step), indexing="ij")
    rr, cc = rr.ravel(), cc.ravel()
    n_considered = len(rr)
    # Candidates whose ellipse leaves the grid are outside the scored area by construction.
    inside = ((rr + dr.min() >= 0) & (rr + dr.max() < h) & (cc + dc.min() >= 0)
              & (cc + dc.max() < w))
    rejected: dict[str, int] = {"outside the scored area": int((~inside).sum())}
    rr, cc = rr[inside], cc[inside]
    dem = ((dem_ok, slope, elevation) if dem_ok is not None and slope is not None
           and elevation is not None else None)
    have_dem = dem is not None
    parts: list[tuple[np.ndarray, ...]] = []
    for s in range(0, len(rr), CHUNK):
        if cancelled():
            break
        r0, c0 = rr[s:s + CHUNK], cc[s:s + CHUNK]
        R, C = r0[:, None] + dr[None, :], c0[:, None] + dc[None, :]
        tests = [("outside the scored area", scored[R, C].all(axis=1)),
                 ("in an excluded zone", ~excluded[R, C].any(axis=1))]
        if dem is not None:
            ok_d, slope_d, elev_d = dem
            sl, el = slope_d[R, C], elev_d[R, C]
            tests.append(("without DEM coverage",
                          ok_d[R, C].all(axis=1) & np.isfinite(sl).all(axis=1)))
            with np.errstate(invalid="ignore"):
                if max_slope is not None:
                    tests.append(("too steep", np.nanmax(sl, axis=1) <= max_slope))
                if min_elevation is not None:
                    tests.append(("below MIN_ELEVATION", el.min(axis=1) >= min_elevation))
                if max_elevation is not None:
                    tests.append(("above MAX_ELEVATION", el.max(axis=1) <= max_elevation))
        keep = np.ones(len(r0), bool)
        for why, ok in tests:  # a candidate is counted under the first rule it breaks
            rejected[why] = rejected.get(why, 0) + int((keep & ~ok).sum())
            keep &= ok
        vals = score[R[keep], C[keep]]
        part = [r0[keep], c0[keep], vals.mean(axis=1) if keep.any() else np.zeros(0),
                (vals >= threshold).mean(axis=1) if keep.any() else np.zeros(0)]
        if dem is not None:
            part += [dem[1][R[keep], C[keep]].max(axis=1) if keep.any() else np.zeros(0),
                     dem[2][R[keep], C[keep]].mean(axis=1) if keep.any() else np.zeros(0)]
        parts.append(tuple(part))
    cols = [np.concatenate([p[i] for p in parts]) if parts else np.zeros(0)
            for i in range(6 if have_dem else 4)]
    return Candidates(cols[0].astype(np.int64), cols[1].astype(np.int64), cols[2], cols[3],
                      cols[4] if have_dem else None, cols[5] if have_dem else None,
                      n_considered, rejected)


def pick_non_overlapping(order: np.ndarray, cx: np.ndarray, cy: np.ndarray, ellipse: Ellipse,
                         count: int) -> list[int]:
    """Indices (in ``order``'s order of preference) of up to ``count`` candidates whose ellipses
    do not overlap: exact test on polygon outlines, only against the ones already chosen."""
    from osgeo import ogr

    from .gpkg_io import polygon_from_ring

    chosen: list[int] = []
    shapes: list[ogr.Geometry] = []
    reach = 2 * ellipse.semi_major
    for i in order:
        if len(chosen) >= count:
            break
        near = [s for j, s in zip(chosen, shapes, strict=True)
                if math.hypot(cx[j] - cx[i], cy[j] - cy[i]) < reach]
        if near:
            g = polygon_from_ring([tuple(p) for p in ellipse.outline(cx[i], cy[i])])
            if any(g.Intersects(s) for s in near):
                continue
        else:
            g = polygon_from_ring([tuple(p) for p in ellipse.outline(cx[i], cy[i])])
        chosen.append(int(i))
        shapes.append(g)
    return chosen
