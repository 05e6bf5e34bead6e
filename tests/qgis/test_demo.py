"""`make demo`'s job end to end: the bundled model and real demo data through real qgis_process."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from osgeo import ogr

from tests.conftest import REPO_ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("qgis_process") is None, reason="qgis_process not installed"),
]


def test_demo_runs_and_ranks_tiles(qgis_env: dict[str, str], tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "run_demo.py"), "--out", str(tmp_path)],
        env=qgis_env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "48 tiles scored, 0 skipped" in out
    assert "(layer style from the GeoPackage: graduatedSymbol)" in out
    for name in ("library.gpkg", "scores.gpkg", "scores.png"):
        assert (tmp_path / name).stat().st_size > 0, name

    # The printed top 5 are the five best tiles of the GeoPackage, with their true landform.
    with open(REPO_ROOT / "demo" / "mars_scene_truth.csv", newline="") as fh:
        truth = {(int(r["row"]), int(r["col"])): r["class"] for r in csv.DictReader(fh)}
    ds = ogr.Open(str(tmp_path / "scores.gpkg"))
    feats = sorted(ds.GetLayerByName("scores"), key=lambda f: -f.GetField("score"))
    printed = re.findall(r"^\s+(\d)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+(\w+)", out, re.MULTILINE)
    assert [int(p[0]) for p in printed] == [1, 2, 3, 4, 5]
    for p, f in zip(printed, feats[:5], strict=True):
        assert (int(p[1]), int(p[2])) == (f.GetField("row"), f.GetField("col"))
        assert float(p[3]) == pytest.approx(f.GetField("score"), abs=5e-4)
        assert p[4] == truth[(f.GetField("row"), f.GetField("col"))]
    # One tile per 227 m cell of the 8 x 6 scene: row/col match the truth grid exactly.
    assert {(f.GetField("row"), f.GetField("col")) for f in feats} == set(truth)
