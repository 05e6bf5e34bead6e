"""How many CPU threads the engine may use: the CPUs this process may really run on.

Why not ``os.cpu_count()``: in a container or a SLURM job the machine may have 64 cores while the
process is pinned to 2 (affinity) or throttled to 2 cores' worth of time (cgroup ``cpu.max``);
onnxruntime with 64 threads there is several times slower than with 2. Why not "all but one": on a
2-core laptop that halves inference speed, while the reader thread that prepares tiles needs far
less than a core (it sleeps in GDAL and numpy without the GIL).

Setting: the environment variable ``ANALOG_THREADS`` (a positive integer) overrides everything.
How the threads are used (batch-parallel workers x intra-op threads): :func:`plan_workers`.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from pathlib import Path

THREADS_ENV = "ANALOG_THREADS"
MAX_DEFAULT_THREADS = 16
"""onnxruntime scales poorly beyond this for small convnets; more needs ANALOG_THREADS."""


def affinity_cpus() -> int:
    """CPUs in this process's affinity mask (``os.cpu_count()`` where the OS has no affinity)."""
    getter = getattr(os, "sched_getaffinity", None)
    if getter is not None:
        try:
            return max(1, len(getter(0)))
        except OSError:
            pass
    return max(1, os.cpu_count() or 1)


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPU quota of this process's cgroup in cores (v2 ``cpu.max`` or v1 cfs files), or None."""
    candidates = [root / "cpu.max"]
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            parts = line.split(":", 2)
            if len(parts) == 3 and parts[0] == "0":
                candidates.insert(0, root / parts[2].lstrip("/") / "cpu.max")
    except OSError:
        pass
    for path in candidates:
        try:
            quota, period = path.read_text().split()[:2]
        except (OSError, ValueError):
            continue
        if quota != "max" and float(period) > 0:
            return float(quota) / float(period)
    try:
        q = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        p = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return q / p if q > 0 and p > 0 else None


def default_threads() -> int:
    """``ANALOG_THREADS`` if set, else min(affinity CPUs, cgroup quota rounded up, 16)."""
    env = os.environ.get(THREADS_ENV, "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    n = affinity_cpus()
    quota = cgroup_cpu_limit()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, min(n, MAX_DEFAULT_THREADS))


MAX_WORKERS = 4
"""Batch-parallel inference workers at most; more threads go into each worker's onnxruntime."""


def plan_workers(threads: int, provider: str = "CPUExecutionProvider") -> tuple[int, int]:
    """``(workers, intra_op_threads)`` for ``threads`` CPU threads in all.

    Why batch-parallel workers rather than one onnxruntime run on all threads: a small convnet's
    operators are too short to split well (2 intra-op threads give 1.8x, two 1-thread runs side by
    side 2.1x on our 2-core bench machine), and a worker that also prepares its own batch keeps
    the cores busy without oversubscribing them. Beyond MAX_WORKERS the extra threads go into
    each worker's intra-op pool. On CUDA each worker only prepares batches and feeds the GPU, so
    its onnxruntime needs one CPU thread.
    """
    threads = max(1, int(threads))
    workers = min(threads, MAX_WORKERS)
    if provider == "CUDAExecutionProvider":
        return workers, 1
    return workers, max(1, threads // workers)


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """numpy's BLAS on one thread for the duration of a job (restored after).

    Why: the reader thread's resize is a matrix product; a multi-threaded BLAS (OpenBLAS) then
    wakes threads that spin against onnxruntime's on the same cores, which made preparing a tile
    10x slower in our benchmark. onnxruntime has its own thread pool and is not affected.
    Needs ``threadpoolctl`` (a runtime requirement); without it this does nothing.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
