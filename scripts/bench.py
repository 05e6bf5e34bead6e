#!/usr/bin/env python3
"""End-to-end throughput and memory benchmark of ``analog:scoretiles`` (a report, never a test).

What is measured, and why each number exists:

* **e2e** - wall time of a whole ``qgis_process run analog:scoretiles`` (QGIS start-up, library
  load, tiling, reads, inference, GeoPackage write), because that is what a user waits for. Tiles
  are counted in the output GeoPackage, so the rate is scored tiles per second.
* **model-only** - onnxruntime alone on random normalised batches, at the SAME thread count and
  batch size, measured in the same run on the same machine: the ceiling the engine can approach.
  ``e2e / model-only`` is the fraction of the hardware the engine actually turns into scores.
  A shared (virtual) machine drifts by +-15 % within minutes, so model-only is measured right
  before AND right after every e2e and baseline run (each a median of three 2 s windows, which
  ignores one stalled window), and each run is compared with the mean of its own two brackets;
  ``e2e / baseline`` is the ratio of the two bracketed ratios.
* **engine inference ceiling** - onnxruntime alone run as the engine runs it (its workers side
  by side, each in runs of 8 tiles of 128 px on CPU): faster than one 64-tile run on 2 threads,
  so the e2e ratio is also given against it (measured once, at the start, after model-only).
* **baseline** - a plain sequential read -> stretch -> infer -> write loop written here (no
  threads, no tricks): what a straightforward script gets. ``e2e / baseline`` says whether the
  engine's machinery pays for itself; ``baseline / model-only`` shows the cost of I/O + numpy.
* **stage shares** - the engine's own ``Timing: {json}`` log line (read / preprocess / inference
  / write), when it prints one, to see where the remaining time goes ("n/a" otherwise).
* **peak RSS** at several scene sizes (config tile128) - must stay flat: the engine streams tiles,
  so memory must not grow with the scene. Measured per run by ``scripts/bench_rss.py``.
* **time vs tiles** - least-squares fit ``wall = fixed + slope * tiles`` over those sizes: the
  slope (ms/tile) is the marginal cost, the intercept the fixed cost (QGIS start-up, model load).

Configurations (CPU by default, batch 64): tile128 (128 px, no overlap), tile256 (256 px tiles,
decimated by GDAL to the model input), overlap50 (128 px, 50 % overlap, stride 64 px).
Scenes are the bundled real HiRISE mosaic (demo/mars_scene.tif) mirrored to N x N px, cached under
``--out-dir``. Results: markdown tables on stdout, all numbers in ``<out-dir>/bench.json``.

Code: the measurements live in ``scripts/analog_bench/`` (one module each); this file plans the
runs, brackets each with the model-only reference and prints the report.

Usage (through make, which exports the headless QGIS environment)::

    make bench BENCH_ARGS="--sizes 2048,8192 --scene-size 8192"
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # analog_bench, when run as a file

from analog_bench import REPO  # noqa: E402
from analog_bench.baseline import run_baseline, tile_windows  # noqa: E402
from analog_bench.e2e import qgis_startup_s, run_e2e  # noqa: E402
from analog_bench.machine import Progress, machine_facts, usable_cpus  # noqa: E402
from analog_bench.model_only import engine_layout_only, model_only  # noqa: E402
from analog_bench.report import (  # noqa: E402
    linear_fit,
    memory_table,
    no_nan,
    ratio,
    throughput_table,
)
from analog_bench.scene import build_library, make_scene, qgis_env  # noqa: E402
from analog_bench.settings import CONFIGS, MODEL_ONLY_MIN_S, MODEL_ONLY_WINDOWS  # noqa: E402


def n_tiles(n: int, cfg: str) -> int:
    tile, overlap = CONFIGS[cfg]
    stride = max(1, round(tile * (1 - overlap / 100)))
    return sum(1 for _ in tile_windows(n, n, tile, stride))


def scene_estimate(n: int, out_dir: Path) -> float:
    """Rough seconds to write scene_N.tif (~40 Mpx/s); 0 once cached."""
    return 0.0 if (out_dir / f"scene_{n}.tif").is_file() else n * n / 4e7


@dataclass
class Plan:
    """The runs to do, in order, with rough duration estimates (tiles / model-only rate)."""

    runs: list[tuple[str, str, int]]  # (kind e2e|baseline, config, scene px)
    scenes: list[int]

    def estimate(self, kind: str, cfg: str, n: int, rate: float, prog: Progress) -> float:
        fixed = (3.0 if kind == "e2e" else 0.5) + 2 * MODEL_ONLY_WINDOWS * MODEL_ONLY_MIN_S
        return (fixed + n_tiles(n, cfg) / rate) * prog.correction.get(kind, 1.5)


def make_plan(args: argparse.Namespace) -> Plan:
    runs: list[tuple[str, str, int]] = []
    for cfg in args.configs:
        runs.append(("e2e", cfg, args.scene_size))
        if not args.skip_baseline:
            runs.append(("baseline", cfg, args.scene_size))
    for n in args.sizes:
        if not ("tile128" in args.configs and n == args.scene_size):
            runs.append(("e2e", "tile128", n))
    scenes = sorted({n for _, _, n in runs})
    return Plan(runs, scenes)


def execute(plan: Plan, args: argparse.Namespace, threads: int,
            rate: float) -> dict[tuple[str, str, int], dict[str, Any]]:
    prog = Progress(steps=len(plan.scenes) + 1 + len(plan.runs))
    runs_est = sum(plan.estimate(*r, rate, prog) for r in plan.runs)
    prog.remaining_est = runs_est + sum(scene_estimate(n, args.out_dir) for n in plan.scenes)
    scenes: dict[int, Path] = {}
    for n in plan.scenes:
        t = prog.start(f"scene {n} px", scene_estimate(n, args.out_dir))
        scenes[n] = make_scene(n, args.out_dir)
        prog.remaining_est = max(0.0, prog.remaining_est - scene_estimate(n, args.out_dir))
        prog.finish(t, f"scene {n} px")
    env = qgis_env(threads)
    t = prog.start("library (analog:buildlibrary)", 2.0)
    lib = build_library(args.out_dir, env)
    prog.finish(t, "library")
    results: dict[tuple[str, str, int], dict[str, Any]] = {}
    for i, run in enumerate(plan.runs):
        kind, cfg, n = run
        est = plan.estimate(kind, cfg, n, rate, prog)
        prog.remaining_est = sum(plan.estimate(*r, rate, prog) for r in plan.runs[i:])
        t = prog.start(f"{kind} {cfg} {n} px ({n_tiles(n, cfg)} tiles)", est)
        before = model_only(threads, args.batch, args.device)["tiles_per_s"]
        if kind == "e2e":
            rec = run_e2e(scenes[n], lib, cfg, n, args, env)
        else:
            rec = run_baseline(scenes[n], lib, cfg, n, args, threads)
        after = model_only(threads, args.batch, args.device)["tiles_per_s"]
        rec["model_only_bracket"] = [before, after]
        rec["model_only_tiles_per_s"] = (before + after) / 2
        results[run] = rec
        # Rescale later estimates of this kind by how far off this one was.
        prog.correction[kind] = (time.perf_counter() - t) / (est / prog.correction.get(kind, 1.5))
        prog.finish(t, f"{kind} {cfg} {n} px")
    print(f"bench total {prog.elapsed():.0f} s", flush=True)
    return results


def assemble(plan: Plan, args: argparse.Namespace, results: dict[tuple[str, str, int], Any],
             model_rate: float, startup_s: float) -> tuple[list[dict[str, Any]],
                                                           list[dict[str, Any]]]:
    rows = []
    for cfg in args.configs:
        e = results[("e2e", cfg, args.scene_size)]
        b = results.get(("baseline", cfg, args.scene_size))
        e_vs_m = ratio(e["tiles_per_s"], e.get("model_only_tiles_per_s", model_rate))
        b_vs_m = (ratio(b["tiles_per_s"], b.get("model_only_tiles_per_s", model_rate))
                  if b else math.nan)
        rows.append({"config": cfg, "scene_px": args.scene_size, "e2e": e, "baseline": b,
                     "model_only_tiles_per_s": e.get("model_only_tiles_per_s", model_rate),
                     "e2e_vs_model": e_vs_m, "baseline_vs_model": b_vs_m,
                     "e2e_vs_model_without_qgis_startup": ratio(
                         ratio(e["tiles"], e["wall_s"] - startup_s),
                         e.get("model_only_tiles_per_s", model_rate)),
                     "e2e_vs_baseline": ratio(e_vs_m, b_vs_m)})
    memory = [results[("e2e", "tile128", n)] for n in args.sizes
              if ("e2e", "tile128", n) in results]
    return rows, memory


def engine_ceiling(mo: dict[str, Any], threads: int,
                   args: argparse.Namespace) -> dict[str, Any]:
    """The engine's inference ceiling (:func:`engine_layout_only`), measured once, right after
    the batch model-only reference, and their ratio ``speedup``. Not bracketed like model-only
    (it would add 12 s per run): the e2e rate over it is good to the machine's drift (+-5-15 %)."""
    from analog_plugin.core.model import cpu_run_tiles

    size = int(mo["input_shape"][2])
    run_tiles = args.batch if args.device == "cuda" else min(args.batch, cpu_run_tiles(size))
    ceiling = engine_layout_only(threads, run_tiles, args.device)
    print(f"engine layout, inference only ({ceiling['workers']} workers x "
          f"{ceiling['intra_op_threads']} thread(s), runs of {run_tiles} tiles): "
          f"{ceiling['tiles_per_s']:.0f} tiles/s", flush=True)
    return {**ceiling, "speedup": ceiling["tiles_per_s"] / mo["tiles_per_s"]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", default="2048,8192,16384,32768",
                    help="scene sizes (px, comma list) for the memory / time-vs-tiles runs")
    ap.add_argument("--scene-size", type=int, default=16384, help="scene px for the configs")
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"subset of {list(CONFIGS)}")
    ap.add_argument("--threads", type=int, default=None, help="default: usable CPUs")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--out-dir", type=Path, default=REPO / "build" / "bench")
    ap.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    args.sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    args.configs = [c.strip() for c in str(args.configs).split(",") if c.strip()]
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown:
        ap.error(f"unknown config(s) {unknown}; choose from {list(CONFIGS)}")
    if min([args.scene_size, *args.sizes]) < 256:
        ap.error("scene sizes must be >= 256 px")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out_dir = args.out_dir.resolve()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    threads = args.threads or usable_cpus()
    facts = machine_facts(threads, args.device)
    print("machine: " + ", ".join(f"{k}={v}" for k, v in facts.items()), flush=True)
    mo = model_only(threads, args.batch, args.device)
    print(f"model-only ({mo['provider']}, {threads} threads, batch {args.batch}, input "
          f"{mo['input_shape']}): {mo['tiles_per_s']:.0f} tiles/s", flush=True)
    ceiling = engine_ceiling(mo, threads, args)
    plan = make_plan(args)
    results = execute(plan, args, threads, mo["tiles_per_s"])
    startup = qgis_startup_s(args.out_dir, qgis_env(threads))
    print(f"QGIS start-up (median of 3 trivial qgis_process runs): {startup:.2f} s", flush=True)
    rows, memory = assemble(plan, args, results, mo["tiles_per_s"], startup)
    fit = linear_fit([(r["tiles"], r["wall_s"]) for r in memory if r["rc"] == 0])
    print(f"\n## Throughput ({threads} threads, batch {args.batch}; model-only bracketing each "
          f"run, {mo['tiles_per_s']:.0f} tiles/s at the start)\n")
    print(throughput_table(rows))
    print("\n## Peak RSS and wall vs scene size (tile128)\n")
    print(memory_table(memory, fit))
    for r in rows:
        r["e2e_vs_ceiling"] = ratio(r["e2e"]["tiles_per_s"], ceiling["tiles_per_s"])
    print(f"\nAgainst the engine's inference ceiling ({ceiling['tiles_per_s']:.0f} tiles/s at the "
          f"start, {ceiling['speedup']:.2f}x the batch-{args.batch} model-only then): "
          + ", ".join(f"{r['config']} {r['e2e_vs_ceiling']:.2f}" for r in rows))
    report = {"machine": facts, "batch": args.batch, "model_only": mo,
              "engine_inference_ceiling": ceiling, "qgis_startup_s": startup, "configs": rows,
              "memory": memory, "fit": fit}
    text = json.dumps(no_nan(report), indent=2, default=str)
    (args.out_dir / "bench.json").write_text(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
