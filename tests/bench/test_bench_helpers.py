"""The benchmark's pure helpers, against hand-computed values (the bench is a report, never a
test, but its tile counts, fit and reference must be right for its ratios to mean anything)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from analog_bench import baseline, machine, model_only, report, scene

from tests.onnx_models import make_mean_model


def test_mirror_index_folds_back_without_seams() -> None:
    # length 3: 0 1 2 | 2 1 0 | 0 ...
    assert scene.mirror_index(7, 3).tolist() == [0, 1, 2, 2, 1, 0, 0]


def test_tile_windows_counts_and_order_by_hand() -> None:
    # 300 x 200 px, 128 px tiles, stride 128: ceil(172 / 128) + 1 = 3 columns,
    # ceil(72 / 128) + 1 = 2 rows, row-major (col_off, row_off).
    got = list(baseline.tile_windows(300, 200, 128, 128))
    assert got == [(0, 0), (128, 0), (256, 0), (0, 128), (128, 128), (256, 128)]
    assert list(baseline.tile_windows(256, 256, 256, 256)) == [(0, 0)]
    # 50 % overlap on 256 px: stride 64 -> ceil(128 / 64) + 1 = 3 per axis
    assert len(list(baseline.tile_windows(256, 256, 128, 64))) == 9


def test_linear_fit_recovers_slope_and_fixed_cost() -> None:
    fit = report.linear_fit([(100, 1.3), (300, 1.7), (500, 2.1)])  # 1.1 s + 2 ms / tile
    assert fit is not None
    assert fit["slope_ms_per_tile"] == pytest.approx(2.0)
    assert fit["fixed_s"] == pytest.approx(1.1)
    assert report.linear_fit([(100, 1.3), (100, 1.4)]) is None  # one size: no slope


def test_ratio_is_nan_rather_than_a_number_from_missing_data() -> None:
    assert report.ratio(3.0, 2.0) == 1.5
    assert math.isnan(report.ratio(3.0, 0.0))
    assert math.isnan(report.ratio(math.nan, 2.0))


def test_usable_cpus_ignores_the_engine_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANALOG_THREADS", "7")
    monkeypatch.setattr(machine, "affinity_cpus", lambda: 3)
    monkeypatch.setattr(machine, "cgroup_cpu_limit", lambda: 1.5)  # 1.5 cores -> 2
    assert machine.usable_cpus() == 2
    monkeypatch.setattr(machine, "cgroup_cpu_limit", lambda: None)
    assert machine.usable_cpus() == 3


def test_model_only_reports_the_median_window(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_mean_model(tmp_path / "m.onnx", input_size=8)
    monkeypatch.setattr(model_only, "MODEL_ONLY_MIN_S", 0.01)
    res = model_only.model_only(threads=1, batch=4, device="cpu", model=path, windows=3)
    rates = res["window_tiles_per_s"]
    assert len(rates) == 3
    assert res["tiles_per_s"] == float(np.median(rates))
    assert res["input_shape"] == [4, 1, 8, 8]
    assert res["batches"] >= 15  # at least 5 runs per window


def test_engine_layout_runs_its_workers_side_by_side(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """2 threads -> 2 workers x 1 intra-op thread (plan_workers), each running 3-tile batches:
    every window counts at least 5 runs per worker."""
    path = make_mean_model(tmp_path / "m.onnx", input_size=8)
    monkeypatch.setattr(model_only, "MODEL_ONLY_MIN_S", 0.01)
    res = model_only.engine_layout_only(threads=2, run_tiles=3, device="cpu", model=path,
                                        windows=2)
    assert (res["workers"], res["intra_op_threads"], res["run_tiles"]) == (2, 1, 3)
    assert len(res["window_tiles_per_s"]) == 2
    assert res["tiles_per_s"] == float(np.median(res["window_tiles_per_s"]))
    assert res["batches"] >= 2 * 2 * 5
