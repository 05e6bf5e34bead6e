"""``python -m analog_plugin build-library|score ...``: the engine without QGIS (core/cli.py)."""

from __future__ import annotations

import sys

from .core.cli import main

if __name__ == "__main__":
    sys.exit(main())
