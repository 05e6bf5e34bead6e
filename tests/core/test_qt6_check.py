"""The Qt6 portability rules of scripts/check_qt6.py catch what they claim, and only that."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from check_qt6 import RULES  # noqa: E402


def flagged(line: str) -> bool:
    return any(rx.search(line) for rx, _ in RULES)


@pytest.mark.parametrize("line", [
    "from PyQt5.QtCore import Qt", "import PyQt6", "dialog.exec_()",
    "QgsField('a', QVariant.String)", "label.setAlignment(Qt.AlignLeft)", "x = QVariant()",
])
def test_bad_lines_are_flagged(line: str) -> None:
    assert flagged(line)


@pytest.mark.parametrize("line", [
    "from qgis.PyQt.QtCore import Qt", "dialog.exec()", "QgsField('a', QMetaType.Type.QString)",
    "label.setAlignment(Qt.AlignmentFlag.AlignLeft)", "value = NULL",
])
def test_good_lines_pass(line: str) -> None:
    assert not flagged(line)
