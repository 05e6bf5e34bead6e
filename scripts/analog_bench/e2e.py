"""End-to-end runs: one isolated ``qgis_process run analog:scoretiles`` per measurement, and the
cost of QGIS starting at all."""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .machine import fmt_eta
from .scene import count_features
from .settings import CONFIGS, PROGRESS_RE, RSS_WRAPPER, STAGES, TIMING_RE


def e2e_command(scene: Path, lib: Path, cfg: str, args: argparse.Namespace, out: Path) -> list[str]:
    tile, overlap = CONFIGS[cfg]
    return ["qgis_process", "run", "analog:scoretiles", "--", f"INPUT={scene}",
            f"LIBRARY={lib}", f"TILE_SIZE={tile}", "TILE_UNITS=pixels", f"OVERLAP={overlap:g}",
            f"BATCH_SIZE={args.batch}", f"DEVICE={args.device}", f"OUTPUT={out}"]


def stream_output(proc: subprocess.Popen[bytes], label: str) -> str:
    """Collect the child's output; print an ETA whenever qgis_process' progress passes 25 %."""
    assert proc.stdout is not None
    chunks: list[bytes] = []
    t0, next_mark = time.perf_counter(), 25
    tail = ""
    while chunk := os.read(proc.stdout.fileno(), 65536):
        chunks.append(chunk)
        tail = (tail + chunk.decode(errors="replace"))[-200:]
        pct = [int(p) for p in PROGRESS_RE.findall(tail)]
        if pct and max(pct) >= next_mark:
            print(f"    {label}: {fmt_eta(time.perf_counter() - t0, max(pct) / 100)}", flush=True)
            next_mark = (max(pct) // 25 + 1) * 25
            tail = ""
    proc.wait()
    return b"".join(chunks).decode(errors="replace")


def parse_timing(text: str) -> dict[str, Any] | None:
    found = TIMING_RE.findall(text)
    if not found:
        return None
    try:
        timing: dict[str, Any] = json.loads(found[-1])
    except json.JSONDecodeError:
        return None
    total = sum(float(timing.get(k, 0.0)) for k in STAGES)
    if total > 0:
        timing["shares"] = {k: float(timing.get(k, 0.0)) / total for k in STAGES}
    return timing


def run_e2e(scene: Path, lib: Path, cfg: str, n: int, args: argparse.Namespace,
            env: dict[str, str]) -> dict[str, Any]:
    """One isolated qgis_process run: wall, peak RSS, scored tiles, engine timing line."""
    out_dir: Path = args.out_dir
    out = out_dir / f"e2e_{cfg}_{n}.gpkg"
    result = out_dir / f"e2e_{cfg}_{n}.rss.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(RSS_WRAPPER), str(result), "--",
           *e2e_command(scene, lib, cfg, args, out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    text = stream_output(proc, f"e2e {cfg} {n}px")
    (out_dir / f"e2e_{cfg}_{n}.log").write_text(text)
    rss = json.loads(result.read_text()) if result.is_file() else {}
    tiles = count_features(out) if out.is_file() else 0
    wall = float(rss.get("wall_s", math.nan))
    rec: dict[str, Any] = {
        "config": cfg, "scene_px": n, "rc": proc.returncode, "tiles": tiles, "wall_s": wall,
        "tiles_per_s": tiles / wall if tiles and wall > 0 else math.nan,
        "peak_rss_mb": rss.get("maxrss_kib", math.nan) / 1024.0,
        "timing": parse_timing(text),
    }
    if proc.returncode != 0:
        print(f"    e2e {cfg} {n}px FAILED (rc {proc.returncode}); see "
              f"{out_dir / f'e2e_{cfg}_{n}.log'}:\n{text[-1500:]}", flush=True)
    return rec


def qgis_startup_s(out_dir: Path, env: dict[str, str], repeats: int = 3) -> float:
    """Median wall time of a trivial ``qgis_process run`` (a 10 x 10 constant raster): what QGIS
    itself costs before any algorithm of ours runs (application, providers, plugins). Reported so
    the e2e ratio can be read with and without this fixed cost, which no engine can remove."""
    out = out_dir / "startup_probe.tif"
    times = []
    for _ in range(repeats):
        out.unlink(missing_ok=True)
        cmd = ["qgis_process", "run", "native:createconstantrasterlayer", "--",
               "EXTENT=0,10,0,10 [EPSG:4326]", "TARGET_CRS=EPSG:4326", "PIXEL_SIZE=1",
               "NUMBER=1", f"OUTPUT={out}"]
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, capture_output=True, check=False)
        times.append(time.perf_counter() - t0)
    out.unlink(missing_ok=True)
    return float(np.median(times))
