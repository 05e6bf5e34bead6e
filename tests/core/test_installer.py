"""The dependency installer: the command it builds (checked with a fake pip that records its
arguments), where QGIS's Python is found per platform, and one real offline pip install of a local
wheel into a profile folder that the plugin's lookup then finds."""

from __future__ import annotations

import base64
import hashlib
import importlib
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from analog_plugin import deps, installer


def test_command_targets_the_profile_and_pins_numpy(tmp_path: Path) -> None:
    target = installer.deps_dir(tmp_path / "profile")
    assert target == tmp_path / "profile" / "python" / "analog_deps" / (
        f"py{sys.version_info[0]}.{sys.version_info[1]}")
    cons = installer.write_constraints(tmp_path)
    assert cons is not None and cons.read_text() == f"numpy=={np.__version__}\n"
    cmd = installer.install_command("/opt/qgis/python3", target, constraints=cons)
    assert cmd[:4] == ["/opt/qgis/python3", "-m", "pip", "install"]
    assert cmd[cmd.index("--target") + 1] == str(target)
    assert cmd[cmd.index("--constraint") + 1] == str(cons)
    assert "onnxruntime" in cmd and "--user" not in cmd and "--break-system-packages" not in cmd
    assert "onnxruntime-gpu" in installer.install_command("py", target, gpu=True)


def test_fake_pip_receives_exactly_that_command(tmp_path: Path) -> None:
    """A stand-in 'python' that records argv and 'installs' a module into --target."""
    fake = tmp_path / "python3"
    log = tmp_path / "argv.txt"
    fake.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > "{log}"\n'
        'while [ "$1" != "--target" ]; do shift; done\n'
        'mkdir -p "$2" && echo "VALUE = 42" > "$2/fake_ort.py"\n'
    )
    fake.chmod(0o755)
    target = installer.deps_dir(tmp_path / "profile")
    cmd = installer.install_command(str(fake), target, constraints=tmp_path / "c.txt")
    subprocess.run(cmd, check=True)
    assert log.read_text().splitlines() == cmd[1:]
    assert (target / "fake_ort.py").is_file()


@pytest.mark.parametrize(("platform", "exe", "prefix", "expect"), [
    ("linux", "/usr/bin/qgis", "/usr", "/usr/bin/python{v}"),
    ("win32", "C:/OSGeo4W/bin/qgis-bin.exe", "C:/OSGeo4W/apps/Python312",
     "C:/OSGeo4W/apps/Python312/python.exe"),
    ("darwin", "/Applications/QGIS.app/Contents/MacOS/QGIS",
     "/Applications/QGIS.app/Contents/Frameworks",
     "/Applications/QGIS.app/Contents/MacOS/bin/python{v}"),
])
def test_python_candidates_per_platform(platform: str, exe: str, prefix: str,
                                        expect: str) -> None:
    v = f"{sys.version_info[0]}.{sys.version_info[1]}"
    cands = [str(p).replace("\\", "/") for p in installer.python_candidates(exe, prefix,
                                                                            platform)]
    assert expect.format(v=v) in cands


def test_shell_line_quotes_for_the_platform() -> None:
    cmd = ["/opt/my qgis/python3", "-m", "pip", "install", "onnxruntime"]
    assert installer.shell_line(cmd, "linux") == "'/opt/my qgis/python3' -m pip install onnxruntime"
    assert installer.shell_line(cmd, "win32").startswith('"/opt/my qgis/python3" -m')


def _wheel(folder: Path, name: str = "analog_probe", version: str = "1.0") -> Path:
    """A minimal, valid pure-Python wheel built by hand (no network, no build backend)."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": b"ANSWER = 42\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\n"
                         b"Tag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    whl = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        for path, data in files.items():
            z.writestr(path, data)
        z.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return whl


def test_real_offline_install_of_a_local_wheel_is_found_by_the_plugin(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whl = _wheel(tmp_path)
    profile = tmp_path / "profile"
    target = installer.deps_dir(profile)
    cmd = installer.install_command(sys.executable, target,
                                    extra=["--no-index", "--find-links", str(tmp_path)])
    cmd[cmd.index("onnxruntime")] = str(whl)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (target / "analog_probe" / "__init__.py").is_file()
    monkeypatch.setattr(sys, "path", list(sys.path))
    deps.set_profile_dir(profile)
    try:
        assert str(target) in deps.add_extra_paths()
        assert sys.path.index(str(target)) > sys.path.index(str(Path(np.__file__).parents[1]))
        assert importlib.import_module("analog_probe").ANSWER == 42
    finally:
        deps.set_profile_dir(None)
        sys.modules.pop("analog_probe", None)
