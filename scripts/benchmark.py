#!/usr/bin/env python3
"""Measure scoring throughput of the core pipeline (tiles per second), against a baseline in the
same run: batch size 1 (one inference call per tile, as a naive plugin would do).

Scene: the bundled demo scene (real HiRISE mosaic, Mars CRS) tiled at the model's input size with
50 % overlap, so there are enough tiles to time. Library: built from the bundled Earth exemplars.
Each configuration runs ``--repeat`` times; the best (least disturbed) time is reported.

Usage: ``python scripts/benchmark.py [--device cpu|cuda|auto] [--batch-sizes 1,8,32,64]``
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from analog_plugin.core.paths import bundled_model_path  # noqa: E402
from analog_plugin.core.pipeline import build_library, score_raster  # noqa: E402

SCENE = REPO / "demo" / "mars_scene.tif"
EXEMPLARS = REPO / "demo" / "earth_exemplars"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--batch-sizes", default="1,8,32,64")
    ap.add_argument("--overlap", type=float, default=50.0)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    model = bundled_model_path()
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "library.gpkg"
        build_library(model_path=model, output_path=lib, image_folder=EXEMPLARS,
                      device=args.device)
        for bs in sizes:
            best = float("inf")
            summary = None
            for k in range(args.repeat):
                out = Path(tmp) / f"scores_{bs}_{k}.gpkg"
                t0 = time.perf_counter()
                summary = score_raster(raster_path=SCENE, library_path=lib, model_path=model,
                                       output_path=out, overlap=args.overlap,
                                       device=args.device, batch_size=bs)
                best = min(best, time.perf_counter() - t0)
            assert summary is not None
            results.append({"batch_size": bs, "tiles": summary.n_scored, "seconds": best,
                            "tiles_per_s": summary.n_scored / best,
                            "provider": summary.provider})
    base = next((r for r in results if r["batch_size"] == 1), results[0])
    print(f"machine: {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}, device={args.device}")
    print(f"scene: {SCENE.name}, overlap {args.overlap:g} %, best of {args.repeat}")
    print("| batch | tiles | seconds | tiles/s | vs batch 1 | provider |")
    print("|---:|---:|---:|---:|---:|---|")
    for r in results:
        print(f"| {r['batch_size']} | {r['tiles']} | {r['seconds']:.2f} | "
              f"{r['tiles_per_s']:.0f} | {r['tiles_per_s'] / base['tiles_per_s']:.2f}x | "
              f"{r['provider']} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
