"""The pieces of ``scripts/bench.py`` (a report, never a test): machine facts and progress,
the bench scenes, end-to-end runs through ``qgis_process``, the model-only reference, the plain
baseline loop and the tables. One module per measurement so each can be read, and reused (the
model card takes its throughput from :func:`analog_bench.model_only.model_only`), on its own."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # the engine's own helpers (analog_plugin.core) for thread counts
    sys.path.insert(0, str(REPO))
