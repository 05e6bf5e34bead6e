"""Machine facts recorded with every bench, and the bench-wide progress / ETA printer."""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analog_plugin.core.threads import MAX_DEFAULT_THREADS, affinity_cpus, cgroup_cpu_limit


def usable_cpus() -> int:
    """CPUs this process may use, counted as the engine counts them by default (affinity, a
    cgroup quota rounded up, at most MAX_DEFAULT_THREADS) but ignoring ``ANALOG_THREADS``: the
    bench sets that variable itself for the runs it starts."""
    n = affinity_cpus()
    quota = cgroup_cpu_limit()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, min(n, MAX_DEFAULT_THREADS))


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
