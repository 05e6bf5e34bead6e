#!/usr/bin/env python3
"""Qt5/Qt6 (QGIS 3 / QGIS 4) portability check for the plugin and its tests (part of `make lint`).

Flags what the QGIS repository's ``pyqt5_to_pyqt6`` migration rewrites or what breaks under Qt6:
direct PyQt5/PyQt6 imports (use ``qgis.PyQt``), ``exec_()`` (use ``exec()``), ``QVariant`` type
constants and ``QVariant()`` values (use ``QMetaType.Type`` / ``NULL``), and unscoped Qt enums for
the names we use (``Qt.AlignLeft`` -> ``Qt.AlignmentFlag.AlignLeft``). Exit 1 with file:line.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RULES = [
    (re.compile(r"^\s*(from|import)\s+PyQt[56]\b"), "import from qgis.PyQt, not PyQt5/PyQt6"),
    (re.compile(r"\.exec_\("), "exec_() is gone in Qt6: use exec()"),
    (re.compile(r"\bQVariant\.(Int|LongLong|Double|String|Bool|Date|DateTime|Invalid)\b"),
     "QVariant type constants are gone in Qt6: use QMetaType.Type"),
    (re.compile(r"\bQVariant\(\)"), "QVariant() null values: use qgis.core.NULL"),
    (re.compile(r"\bQt\.(Align(Left|Right|Center|Top|Bottom|HCenter|VCenter)|Checked|Unchecked"
                r"|UserRole|DisplayRole|DecorationRole|ToolTipRole|Horizontal|Vertical"
                r"|KeepAspectRatio|SmoothTransformation|ItemIsEnabled|ItemIsSelectable)\b"),
     "unscoped Qt enum: use the scoped name (e.g. Qt.AlignmentFlag.AlignLeft)"),
]


def main() -> int:
    bad = []
    for root in ("analog_plugin", "tests"):
        for path in sorted((REPO / root).rglob("*.py")):
            if "_vendor" in path.parts or path.name == "test_qt6_check.py":  # its bad examples
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if line.lstrip().startswith("#"):
                    continue
                for rx, why in RULES:
                    if rx.search(line):
                        bad.append(f"{path.relative_to(REPO)}:{n}: {why}: {line.strip()}")
    print("\n".join(bad) or "Qt6 check: clean")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
