#!/usr/bin/env python
"""Cluster-backend benchmark: 3 rasters of 12288^2 px (the demo's real HiRISE mosaic mirrored,
each one flipped differently), scored in this process and on a LocalCluster of 2 workers, with the
bundled model and the Earth dune exemplars. Prints a markdown table and writes JSON.

    .venv/bin/python scripts/bench_cluster.py [--size 12288] [--workers 2] [--chunk 2048]

Overhead share = 1 - (sum of the chunk tasks' own run times / workers) / cluster wall time:
what scheduling, transfers and the merge cost beyond the scoring itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from analog_bench.scene import make_scene  # noqa: E402

from analog_plugin.core.feedback import ConsoleFeedback  # noqa: E402


def rasters(size: int, out: Path) -> list[str]:
    import rasterio

    base = make_scene(size, out)
    paths = [str(base)]
    for flip in ("h", "v"):
        p = out / f"scene_{size}_{flip}.tif"
        if not p.is_file():
            with rasterio.open(base) as src:
                prof = src.profile
                with rasterio.open(p, "w", **prof) as dst:
                    data = src.read(1)
                    dst.write(data[:, ::-1] if flip == "h" else data[::-1], 1)
        paths.append(str(p))
    return paths


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=12288)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=2048)
    ap.add_argument("--out", type=Path, default=REPO / "build" / "bench_cluster")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from analog_plugin.core.batch_job import score_many
    from analog_plugin.core.library_job import build_library

    paths = rasters(args.size, args.out)
    lib = args.out / "lib.gpkg"
    if not lib.is_file():
        build_library(output_path=lib, image_folder=REPO / "demo" / "earth_exemplars")
    results = {}
    for mode in ("in process", "local"):
        out = args.out / f"scores_{mode.replace(' ', '_')}.gpkg"
        parts = out.with_name(f"{out.stem}.parts")
        for p in parts.glob("*.parquet"):
            p.unlink()
        t0 = time.perf_counter()
        res = score_many(rasters=paths, library_path=lib, output_path=out,
                         scheduler=None if mode == "in process" else "local",
                         workers=args.workers, chunk_tiles=args.chunk,
                         feedback=ConsoleFeedback(quiet=True))
        wall = time.perf_counter() - t0
        slots = 1 if mode == "in process" else args.workers
        results[mode] = {"wall_s": round(wall, 2), "tiles": res.n_scored,
                         "chunks": res.n_chunks, "task_s": round(res.task_seconds, 2),
                         "merge_s": round(res.merge_seconds, 2),
                         "overhead_share": round(1 - res.task_seconds / slots / wall, 3)}
        print(mode, results[mode], flush=True)
    a, b = results["in process"], results["local"]
    table = ["| mode | wall s | tiles | tiles/s | chunk time s (sum) | merge s | overhead share |",
             "|---|---|---|---|---|---|---|"]
    for mode, r in results.items():
        table.append(f"| {mode} | {r['wall_s']} | {r['tiles']} | {r['tiles'] / r['wall_s']:.0f} "
                     f"| {r['task_s']} | {r['merge_s']} | {r['overhead_share']:.1%} |")
    table.append(f"\ncluster / in-process wall time: {b['wall_s'] / a['wall_s']:.2f} "
                 f"({args.workers} workers x 1 thread vs 1 process x {args.workers} threads, "
                 f"{len(paths)} rasters of {args.size}^2 px, chunks of {args.chunk} tiles)")
    print("\n".join(table))
    (args.out / "bench_cluster.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
