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

Usage (through make, which exports the headless QGIS environment)::

    make bench BENCH_ARGS="--sizes 2048,8192 --scene-size 8192"
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parent.parent
DEMO_SCENE = REPO / "demo" / "mars_scene.tif"
EXEMPLARS = REPO / "demo" / "earth_exemplars"
MODEL = REPO / "models" / "analog-siamese.onnx"
RSS_WRAPPER = Path(__file__).resolve().parent / "bench_rss.py"
BLOCK = 256
CONFIGS: dict[str, tuple[int, float]] = {  # name -> (tile px, overlap %)
    "tile128": (128, 0.0),
    "tile256": (256, 0.0),
    "overlap50": (128, 50.0),
}
STAGES = ("read_s", "preprocess_s", "inference_s", "write_s")
TIMING_RE = re.compile(r"Timing:\s*(\{.*\})")
PROGRESS_RE = re.compile(r"(\d+)\.\.\.")
MODEL_ONLY_MIN_S = 2.0
MODEL_ONLY_WINDOWS = 3
MIN_VALID = 0.5
MAX_THREADS = 16

F32 = npt.NDArray[np.float32]


# ---- machine ----------------------------------------------------------------------------------


def usable_cpus() -> int:
    """CPUs this process may use: affinity, limited by a cgroup v2 ``cpu.max`` quota (rounded
    up) and capped at MAX_THREADS, as the engine's default thread count."""
    n = len(os.sched_getaffinity(0))
    for path in _cgroup_cpu_max_paths():
        try:
            quota, period = path.read_text().split()[:2]
        except (OSError, ValueError):
            continue
        if quota != "max" and float(period) > 0:
            n = min(n, max(1, math.ceil(float(quota) / float(period))))
            break
    return min(n, MAX_THREADS)


def _cgroup_cpu_max_paths() -> list[Path]:
    paths = []
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                paths.append(Path("/sys/fs/cgroup") / line[3:].lstrip("/") / "cpu.max")
    except OSError:
        pass
    paths.append(Path("/sys/fs/cgroup/cpu.max"))
    return [p for p in paths if p.is_file()]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts(threads: int, device: str) -> dict[str, Any]:
    import onnxruntime as ort

    return {
        "cpu_model": cpu_model(),
        "cpus_online": os.cpu_count(),
        "cpus_usable": usable_cpus(),
        "threads": threads,
        "device": device,
        "onnxruntime": ort.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


# ---- progress ---------------------------------------------------------------------------------


@dataclass
class Progress:
    """Bench-wide ETA: every step has an estimate; estimates are rescaled by what runs took."""

    steps: int
    t0: float = field(default_factory=time.perf_counter)
    done: int = 0
    remaining_est: float = 0.0
    correction: dict[str, float] = field(default_factory=dict)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def start(self, label: str, est_s: float) -> float:
        self.done += 1
        print(f"[{self.done}/{self.steps}] {label}: est. {est_s:.0f} s | bench elapsed "
              f"{self.elapsed():.0f} s, est. remaining {self.remaining_est:.0f} s", flush=True)
        return time.perf_counter()

    def finish(self, t_start: float, label: str) -> None:
        print(f"    {label} took {time.perf_counter() - t_start:.1f} s", flush=True)


def fmt_eta(elapsed: float, frac: float) -> str:
    left = elapsed * (1.0 - frac) / frac if frac > 0 else float("nan")
    return f"{frac * 100:3.0f} % after {elapsed:.0f} s, ~{left:.0f} s left"


# ---- scene and library ------------------------------------------------------------------------


def mirror_index(n: int, length: int) -> npt.NDArray[np.intp]:
    """Indices 0..n-1 folded into 0..length-1 by mirroring (no seams between copies)."""
    i = np.arange(n) % (2 * length)
    return np.where(i < length, i, 2 * length - 1 - i).astype(np.intp)


def make_scene(n: int, out_dir: Path) -> Path:
    """``scene_N.tif``: the demo mosaic mirrored to N x N px, tiled 256 x 256, uncompressed."""
    import rasterio
    from rasterio.transform import Affine
    from rasterio.windows import Window

    path = out_dir / f"scene_{n}.tif"
    if path.is_file():
        with rasterio.open(path) as ds:
            if ds.width == n and ds.height == n and ds.dtypes[0] == "uint8":
                return path
    with rasterio.open(DEMO_SCENE) as src:
        data = src.read(1)
        crs, t, nodata = src.crs, src.transform, src.nodata
    # Same origin and pixel size; shrink the pixel if the bounds would leave +-180 / +-90 deg.
    scale = min(1.0, (180.0 - t.c) / (n * t.a), (t.f + 90.0) / (n * -t.e))
    transform = Affine(t.a * scale, 0.0, t.c, 0.0, t.e * scale, t.f)
    profile = {
        "driver": "GTiff", "width": n, "height": n, "count": 1, "dtype": "uint8",
        "crs": crs, "transform": transform, "nodata": nodata, "tiled": True,
        "blockxsize": BLOCK, "blockysize": BLOCK, "compress": "none", "BIGTIFF": "IF_SAFER",
    }
    cols = mirror_index(n, data.shape[1])
    tmp = path.with_suffix(".tmp.tif")
    with rasterio.open(tmp, "w", **profile) as dst:
        for r0 in range(0, n, BLOCK):
            h = min(BLOCK, n - r0)
            rows = mirror_index(r0 + h, data.shape[0])[r0:]
            dst.write(data[rows][:, cols], 1, window=Window(0, r0, n, h))
    tmp.replace(path)
    Path(f"{path}.aux.xml").unlink(missing_ok=True)  # statistics of an older scene_N.tif
    return path


def qgis_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env["ANALOG_THREADS"] = str(threads)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    return env


def build_library(out_dir: Path, env: dict[str, str]) -> Path:
    lib = out_dir / "library.gpkg"
    lib.unlink(missing_ok=True)
    cmd = ["qgis_process", "run", "analog:buildlibrary", "--",
           f"IMAGE_FOLDER={EXEMPLARS}", f"OUTPUT={lib}"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not lib.is_file():
        sys.exit(f"analog:buildlibrary failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return lib


def library_embeddings(lib: Path) -> F32:
    """(M, D) unit-length float32 embeddings of layer ``exemplars`` (blob field ``embedding``)."""
    from osgeo import ogr

    ds = ogr.Open(str(lib))
    layer = ds.GetLayerByName("exemplars")
    vecs = [np.frombuffer(f.GetFieldAsBinary("embedding"), dtype="<f4") for f in layer]
    emb = np.vstack(vecs).astype(np.float32)
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def count_features(gpkg: Path) -> int:
    from osgeo import ogr

    ds = ogr.Open(str(gpkg))
    layer = ds.GetLayerByName("scores") if ds is not None else None
    return int(layer.GetFeatureCount()) if layer is not None else 0


# ---- end-to-end through qgis_process ----------------------------------------------------------


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


# ---- model-only and baseline ------------------------------------------------------------------


def make_session(threads: int, device: str, model: Path = MODEL) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(model), opts, providers=providers)


def model_input(sess: Any) -> tuple[str, int, int, tuple[float, ...], tuple[float, ...]]:
    """Input name, channels, size, mean, std (from the session and its metadata_props)."""
    inp = sess.get_inputs()[0]
    meta = sess.get_modelmeta().custom_metadata_map
    size = inp.shape[2] if isinstance(inp.shape[2], int) else int(json.loads(meta["input_size"]))
    mean = tuple(float(v) for v in json.loads(meta["mean"]))
    std = tuple(float(v) for v in json.loads(meta["std"]))
    return inp.name, int(inp.shape[1]), int(size), mean, std


def model_only(threads: int, batch: int, device: str, model: Path = MODEL,
               windows: int = MODEL_ONLY_WINDOWS) -> dict[str, Any]:
    """Tiles/s of onnxruntime alone on random normalised batches: the median of ``windows``
    consecutive windows of >= MODEL_ONLY_MIN_S each (also the model card's throughput figure,
    ``analog_train.card``).

    Why a median of windows and not one long window: on this shared machine the rate of a single
    3 s window swung by +-15 % between neighbouring measurements (284-398 tiles/s in one bench),
    mostly short stalls from other tenants. A median of three ignores one stalled window, where a
    mean, or one longer window, would carry the stall into every ratio bracketed by it."""
    sess = make_session(threads, device, model)
    name, c, s, _, _ = model_input(sess)
    x = np.random.default_rng(0).standard_normal((batch, c, s, s)).astype(np.float32)
    for _ in range(3):
        sess.run(None, {name: x})
    rates, batches, seconds = [], 0, 0.0
    for _ in range(max(1, windows)):
        n, t0 = 0, time.perf_counter()
        while n < 5 or time.perf_counter() - t0 < MODEL_ONLY_MIN_S:
            sess.run(None, {name: x})
            n += 1
        dt = time.perf_counter() - t0
        rates.append(n * batch / dt)
        batches, seconds = batches + n, seconds + dt
    return {"tiles_per_s": float(np.median(rates)), "window_tiles_per_s": rates,
            "batches": batches, "seconds": seconds,
            "input_shape": [batch, c, s, s], "provider": sess.get_providers()[0]}


def tile_windows(width: int, height: int, tile: int, stride: int) -> Iterator[tuple[int, int]]:
    """(col_off, row_off) in row-major order; n = ceil((L - T) / s) + 1 per axis, as the engine."""
    n_cols = -(-(width - tile) // stride) + 1
    n_rows = -(-(height - tile) // stride) + 1
    for r, c in itertools.product(range(n_rows), range(n_cols)):
        yield c * stride, r * stride


@dataclass
class Writer:
    """Baseline output: one polygon (tile_id, score) per tile, one OGR transaction per batch."""

    path: Path
    crs_wkt: str
    transform: Any
    ds: Any = None
    layer: Any = None

    def __post_init__(self) -> None:
        from osgeo import ogr, osr

        self.path.unlink(missing_ok=True)
        self.ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(self.path))
        srs = osr.SpatialReference()
        srs.ImportFromWkt(self.crs_wkt)
        self.layer = self.ds.CreateLayer("scores", srs, ogr.wkbPolygon)
        self.layer.CreateField(ogr.FieldDefn("tile_id", ogr.OFTInteger64))
        self.layer.CreateField(ogr.FieldDefn("score", ogr.OFTReal))

    def write(self, tiles: list[tuple[int, int, int]], size: int, scores: F32) -> None:
        from osgeo import ogr

        self.layer.StartTransaction()
        for (tid, col, row), score in zip(tiles, scores, strict=True):
            ring = ogr.Geometry(ogr.wkbLinearRing)
            for dc, dr in ((0, 0), (size, 0), (size, size), (0, size), (0, 0)):
                ring.AddPoint_2D(*(self.transform * (col + dc, row + dr)))
            poly = ogr.Geometry(ogr.wkbPolygon)
            poly.AddGeometry(ring)
            feat = ogr.Feature(self.layer.GetLayerDefn())
            feat.SetField("tile_id", tid)
            feat.SetField("score", float(score))
            feat.SetGeometry(poly)
            self.layer.CreateFeature(feat)
        self.layer.CommitTransaction()

    def close(self) -> None:
        self.ds = self.layer = None


def stretch_tile(a: npt.NDArray[Any], valid: npt.NDArray[np.bool_], mean: float,
                 std: float) -> F32:
    """Per-tile 2-98 % stretch (valid pixels) -> 0..1 -> (x - mean) / std; nodata -> mean."""
    lo, hi = np.percentile(a[valid], (2.0, 98.0))
    x = np.clip((a.astype(np.float32) - np.float32(lo)) / np.float32(max(hi - lo, 1e-6)), 0, 1)
    x[~valid] = mean
    return (x - np.float32(mean)) / np.float32(std)


def run_baseline(scene: Path, lib: Path, cfg: str, n: int, args: argparse.Namespace,
                 threads: int) -> dict[str, Any]:
    """Plain sequential read -> stretch -> infer (batch) -> cosine -> write loop, no threads."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    sess = make_session(threads, args.device)
    name, c, s, mean, std = model_input(sess)
    library = library_embeddings(lib)
    tile, overlap = CONFIGS[cfg]
    stride = max(1, round(tile * (1 - overlap / 100)))
    t0 = time.perf_counter()
    with rasterio.open(scene) as src:
        writer = Writer(args.out_dir / f"baseline_{cfg}_{n}.gpkg", src.crs.to_wkt(), src.transform)
        windows = list(tile_windows(src.width, src.height, tile, stride))
        buf = np.empty((args.batch, c, s, s), dtype=np.float32)
        pending: list[tuple[int, int, int]] = []
        scored, next_mark = 0, 0.25

        def flush() -> None:
            emb = sess.run(None, {name: buf[: len(pending)]})[0]
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
            writer.write(pending, tile, (1.0 + (emb @ library.T).max(axis=1)) / 2.0)
            pending.clear()

        for tid, (col, row) in enumerate(windows):
            win = Window(col, row, tile, tile)
            boundless = col + tile > src.width or row + tile > src.height
            a = src.read(1, window=win, out_shape=(s, s), resampling=Resampling.average,
                         boundless=boundless, fill_value=src.nodata)
            valid = a != src.nodata if src.nodata is not None else np.ones(a.shape, bool)
            if valid.mean() < MIN_VALID:
                continue
            buf[len(pending)] = stretch_tile(a, valid, mean[0], std[0])  # 1 band -> all channels
            pending.append((tid, col, row))
            scored += 1
            if len(pending) == args.batch:
                flush()
            if (tid + 1) / len(windows) >= next_mark:
                print(f"    baseline {cfg} {n}px: "
                      f"{fmt_eta(time.perf_counter() - t0, (tid + 1) / len(windows))}", flush=True)
                next_mark += 0.25
        if pending:
            flush()
        writer.close()
    wall = time.perf_counter() - t0
    return {"tiles": scored, "wall_s": wall, "tiles_per_s": scored / wall if wall else math.nan}


# ---- analysis and report ----------------------------------------------------------------------


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


# ---- orchestration ----------------------------------------------------------------------------


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


def no_nan(v: Any) -> Any:
    """NaN -> None recursively, so bench.json is strict JSON."""
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, dict):
        return {k: no_nan(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [no_nan(x) for x in v]
    return v


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
    report = {"machine": facts, "batch": args.batch, "model_only": mo,
              "qgis_startup_s": startup, "configs": rows,
              "memory": memory, "fit": fit}
    text = json.dumps(no_nan(report), indent=2, default=str)
    (args.out_dir / "bench.json").write_text(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
