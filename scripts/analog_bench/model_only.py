"""The reference: onnxruntime alone on random normalised batches, at the engine's thread count."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .settings import MODEL, MODEL_ONLY_MIN_S, MODEL_ONLY_WINDOWS


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


def _windows(sess: Any, x: np.ndarray, workers: int, windows: int) -> dict[str, Any]:
    """Run ``x`` through ``sess`` on ``workers`` threads for ``windows`` windows of at least
    MODEL_ONLY_MIN_S (and 5 runs per thread) each: the median window rate and the counts.

    Why a median of windows and not one long window: on this shared machine the rate of a single
    3 s window swung by +-15 % between neighbouring measurements (284-398 tiles/s in one bench),
    mostly short stalls from other tenants. A median of three ignores one stalled window, where a
    mean, or one longer window, would carry the stall into every ratio bracketed by it."""
    name = sess.get_inputs()[0].name
    for _ in range(3):
        sess.run(None, {name: x})
    runs = [0] * workers

    def loop(i: int, deadline: float) -> None:
        n = 0
        while n < 5 or time.perf_counter() < deadline:
            sess.run(None, {name: x})
            n += 1
        runs[i] += n

    rates, seconds = [], 0.0
    for _ in range(max(1, windows)):
        before, t0 = sum(runs), time.perf_counter()
        pool = [threading.Thread(target=loop, args=(i, t0 + MODEL_ONLY_MIN_S))
                for i in range(workers)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        dt = time.perf_counter() - t0
        rates.append((sum(runs) - before) * x.shape[0] / dt)
        seconds += dt
    return {"tiles_per_s": float(np.median(rates)), "window_tiles_per_s": rates,
            "batches": sum(runs), "seconds": seconds, "provider": sess.get_providers()[0]}


def model_only(threads: int, batch: int, device: str, model: Path = MODEL,
               windows: int = MODEL_ONLY_WINDOWS) -> dict[str, Any]:
    """Tiles/s of onnxruntime alone on random normalised batches of ``batch`` tiles, one session
    on ``threads`` intra-op threads (also the model card's throughput figure,
    ``analog_train.card``); see :func:`_windows` for how the rate is taken."""
    sess = make_session(threads, device, model)
    _, c, s, _, _ = model_input(sess)
    x = np.random.default_rng(0).standard_normal((batch, c, s, s)).astype(np.float32)
    return {**_windows(sess, x, 1, windows), "input_shape": [batch, c, s, s]}


def engine_layout_only(threads: int, run_tiles: int, device: str, model: Path = MODEL,
                       windows: int = MODEL_ONLY_WINDOWS) -> dict[str, Any]:
    """Tiles/s of onnxruntime alone run the way the engine runs it: ``plan_workers(threads)``
    worker threads sharing one session (each with the engine's intra-op threads), each running
    ``run_tiles``-tile batches back to back.

    Why: this is the engine's inference ceiling (nothing read, prepared or written). On 2 cores
    two 1-thread runs of 8 tiles side by side are faster than one 2-thread run of 64 (the
    issue's reference), so the e2e ratio to this one says how much of the achievable rate the
    reading, preparing, writing and start-up cost."""
    from analog_plugin.core.threads import plan_workers

    provider = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
    workers, intra = plan_workers(threads, provider)
    sess = make_session(intra, device, model)
    _, c, s, _, _ = model_input(sess)
    x = np.random.default_rng(0).standard_normal((run_tiles, c, s, s)).astype(np.float32)
    return {**_windows(sess, x, workers, windows), "workers": workers,
            "intra_op_threads": intra, "run_tiles": run_tiles}
