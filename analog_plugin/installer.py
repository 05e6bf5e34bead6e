"""Install onnxruntime for the Python that runs QGIS, without breaking QGIS (no qgis import here).

Where the plugins of this field fail (pip into the wrong Python, numpy 2 pulled in over the numpy
QGIS and GDAL were built against, a system site-packages that refuses writes): we

- run ``<QGIS's python> -m pip install --target <profile>/python/analog_deps/pyX.Y`` - a folder
  inside the QGIS profile, never the system site-packages, one per Python version;
- pin numpy to the version QGIS is running (a constraints file), so pip never upgrades it; the
  folder is APPENDED to ``sys.path`` (``deps.extra_paths``), so QGIS's own numpy stays first;
- find QGIS's Python per platform: Linux ``<prefix>/bin/python3.X``; Windows (OSGeo4W and the
  standalone installer) ``python.exe``/``python3.exe`` beside or above ``sys.executable`` (which is
  ``qgis-bin.exe`` there); macOS ``QGIS.app/Contents/MacOS/bin/python3`` (or ``.../Resources``).

The GUI (``gui/install_dialog.py``) runs :func:`install_command` in a QProcess and shows the log
live; the same command is shown for a manual install.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

PACKAGE_CPU = "onnxruntime"
PACKAGE_GPU = "onnxruntime-gpu"


def deps_dir(profile_dir: str | os.PathLike[str]) -> Path:
    """The plugin's package folder inside a QGIS profile, for this Python version."""
    major, minor = sys.version_info[:2]
    return Path(profile_dir) / "python" / "analog_deps" / f"py{major}.{minor}"


def python_candidates(executable: str = sys.executable, prefix: str = sys.base_prefix,
                      platform: str = sys.platform) -> list[Path]:
    """Where QGIS's own Python interpreter may be, most likely first."""
    major, minor = sys.version_info[:2]
    exe = Path(executable)
    if platform.startswith("win"):
        roots = [Path(prefix), exe.parent, exe.parent.parent]
        apps = exe.parent.parent / "apps"  # OSGeo4W: apps/Python3XX/python.exe
        names = ("python.exe", "python3.exe")
        found = [r / n for r in roots for n in names]
        found += [apps / f"Python{major}{minor}" / n for n in names]
        return found
    unix_names = (f"python{major}.{minor}", f"python{major}", "python")
    roots = [Path(prefix) / "bin", exe.parent]
    if platform == "darwin":  # QGIS.app/Contents/MacOS/QGIS -> .../MacOS/bin/python3
        roots += [exe.parent / "bin", exe.parent.parent / "Resources" / "python" / "bin"]
    return [r / n for r in roots for n in unix_names]


def find_python(executable: str = sys.executable, prefix: str = sys.base_prefix,
                platform: str = sys.platform) -> str:
    """The first existing candidate, else a plain name the user's shell can resolve."""
    for cand in python_candidates(executable, prefix, platform):
        if cand.is_file():
            return str(cand)
    return "python" if platform.startswith("win") else "python3"


def numpy_pin() -> str | None:
    """``numpy==X.Y.Z`` for the numpy this process runs (None when numpy is not importable)."""
    try:
        import numpy
    except ImportError:
        return None
    return f"numpy=={numpy.__version__}"


def install_command(python: str, target: str | os.PathLike[str], gpu: bool = False,
                    constraints: str | os.PathLike[str] | None = None,
                    extra: Sequence[str] = ()) -> list[str]:
    """The pip command line (a list, no shell)."""
    cmd = [python, "-m", "pip", "install", "--upgrade", "--target", str(target),
           "--no-warn-script-location", "--disable-pip-version-check",
           PACKAGE_GPU if gpu else PACKAGE_CPU]
    if constraints is not None:
        cmd += ["--constraint", str(constraints)]
    return [*cmd, *extra]


def write_constraints(folder: str | os.PathLike[str]) -> Path | None:
    """A constraints file pinning numpy to the running version, in ``folder``."""
    pin = numpy_pin()
    if pin is None:
        return None
    path = Path(folder) / "constraints.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(pin + "\n", encoding="utf-8")
    return path


def shell_line(cmd: Sequence[str], platform: str = sys.platform) -> str:
    """The command as a user would paste it into a terminal (or the OSGeo4W shell)."""
    if platform.startswith("win"):
        return " ".join(f'"{c}"' if " " in c else c for c in cmd)
    return " ".join(shlex.quote(c) for c in cmd)
