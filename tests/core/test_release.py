"""The release zip passes the plugin repository's rules; the checker catches what it must."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
from check_release import problems  # noqa: E402


def test_release_zip_passes(tmp_path: Path) -> None:
    zip_path = tmp_path / "analog_plugin.zip"
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "build_plugin.py"), "--dest",
                    str(tmp_path / "stage"), "--zip", str(zip_path)], check=True,
                   capture_output=True, timeout=300)
    assert problems(zip_path) == []
    with zipfile.ZipFile(zip_path) as z:
        names = z.namelist()
    assert "analog_plugin/models/analog-siamese.onnx" in names
    assert "analog_plugin/resources/models/analogueworkflow.model3" in names
    assert not any("archive" in n for n in names)  # the old model stays out of the plugin


def test_checker_flags_binaries_and_missing_metadata(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("analog_plugin/__init__.py", "")
        z.writestr("analog_plugin/metadata.txt", "[general]\nname=x\n")
        z.writestr("analog_plugin/_vendor/onnxruntime/capi/lib.so", b"\x7fELF")
    found = problems(bad)
    assert any("compiled binary" in p for p in found)
    assert any("_vendor" in p for p in found)
    assert any("'email' missing" in p for p in found)
    assert any("LICENSE" in p for p in found)
