"""Ratios, the time-vs-tiles fit and the markdown tables printed by the bench."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .settings import STAGES


def linear_fit(points: list[tuple[int, float]]) -> dict[str, float] | None:
    """Least squares ``wall = fixed + slope * tiles``; None with fewer than two distinct sizes."""
    if len({t for t, _ in points}) < 2:
        return None
    tiles = np.array([t for t, _ in points], dtype=np.float64)
    wall = np.array([w for _, w in points], dtype=np.float64)
    slope, fixed = np.polyfit(tiles, wall, 1)
    return {"slope_ms_per_tile": float(slope) * 1000.0, "fixed_s": float(fixed)}


def ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def fmt(v: Any, spec: str = ".1f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return format(v, spec)


def shares_cell(timing: dict[str, Any] | None) -> str:
    if not timing or "shares" not in timing:
        return "n/a"
    return "/".join(f"{timing['shares'][k] * 100:.0f}" for k in STAGES)


def throughput_table(rows: list[dict[str, Any]]) -> str:
    head = ("| config | scene px | tiles | e2e s | e2e tiles/s | model-only tiles/s | "
            "e2e vs model-only | same, QGIS start-up excluded | baseline tiles/s | "
            "baseline vs model-only | e2e vs baseline | "
            "peak RSS MB | read/preprocess/inference/write % |")
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        e, b = r["e2e"], r.get("baseline") or {}
        lines.append(
            f"| {r['config']} | {r['scene_px']} | {e['tiles']} | {fmt(e['wall_s'])} | "
            f"{fmt(e['tiles_per_s'], '.0f')} | {fmt(r['model_only_tiles_per_s'], '.0f')} | "
            f"{fmt(r['e2e_vs_model'], '.2f')} | "
            f"{fmt(r.get('e2e_vs_model_without_qgis_startup'), '.2f')} | "
            f"{fmt(b.get('tiles_per_s'), '.0f')} | {fmt(r['baseline_vs_model'], '.2f')} | "
            f"{fmt(r['e2e_vs_baseline'], '.2f')} | {fmt(e['peak_rss_mb'], '.0f')} | "
            f"{shares_cell(e['timing'])} |")
    return "\n".join(lines)


def memory_table(rows: list[dict[str, Any]], fit: dict[str, float] | None) -> str:
    lines = ["| scene px | tiles | wall s | peak RSS MB |", "|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['scene_px']} | {r['tiles']} | {fmt(r['wall_s'])} | "
                     f"{fmt(r['peak_rss_mb'], '.0f')} |")
    if fit is None:
        lines.append("\nlinear fit: n/a (needs two scene sizes)")
    else:
        lines.append(f"\nlinear fit wall = fixed + slope * tiles: slope "
                     f"{fit['slope_ms_per_tile']:.3f} ms/tile, fixed {fit['fixed_s']:.2f} s")
    return "\n".join(lines)


def no_nan(v: Any) -> Any:
    """NaN -> None recursively, so bench.json is strict JSON."""
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dict):
        return {k: no_nan(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [no_nan(x) for x in v]
    return v
