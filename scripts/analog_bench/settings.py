"""What the bench measures on, and its fixed knobs (paths, configurations, timing windows)."""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt

from . import REPO

DEMO_SCENE = REPO / "demo" / "mars_scene.tif"
EXEMPLARS = REPO / "demo" / "earth_exemplars"
MODEL = REPO / "models" / "analog-siamese.onnx"
RSS_WRAPPER = REPO / "scripts" / "bench_rss.py"
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

F32 = npt.NDArray[np.float32]
