"""Make ``analog_plugin`` and ``analog_train`` (under scripts/) importable without install."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
for _p in (ROOT, ROOT / "scripts"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

FIXTURES = ROOT / "tests" / "data" / "training"


@pytest.fixture
def fixture_dir() -> Path:
    """Tiny real images: 12 HiRISE tiles (48 px, labels.csv) and 3 AID images (48 px)."""
    return FIXTURES
