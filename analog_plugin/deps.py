"""Make the plugin's third-party runtime dependency (onnxruntime) importable inside QGIS.

The Python embedded in QGIS (desktop or ``qgis_process``) does not see a virtualenv, so onnxruntime
is looked up, in this order, after everything already on ``sys.path``:

1. ``analog_plugin/_vendor`` (filled by ``make deploy`` for a developer install);
2. the profile's ``python/analog_deps/pyX.Y`` folder, where the plugin's installer puts it
   (``installer.py``; the plugin passes the profile folder with :func:`set_profile_dir`);
3. every folder in the environment variable ``ANALOG_EXTRA_SITE`` (``os.pathsep``-separated; the
   Makefile points it at the project venv's site-packages).

Both are APPENDED so that the system numpy (the one QGIS and GDAL were built against) stays first.
Nothing here imports qgis; a missing onnxruntime never breaks the plugin load: the algorithms call
:func:`require_onnxruntime`, whose error tells the user how to install it.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

VENDOR_DIR = Path(__file__).resolve().parent / "_vendor"
EXTRA_SITE_ENV = "ANALOG_EXTRA_SITE"

INSTALL_HINT = (
    "The Python package 'onnxruntime' is needed by Mars Analogue Finder but cannot be imported "
    "by the Python that runs QGIS ({python}). Install it for that Python, then restart QGIS:\n"
    "  - Linux / macOS: {python} -m pip install --user onnxruntime\n"
    "    (Debian 12+/Ubuntu 23.04+ refuse this for the system Python unless you add "
    "--break-system-packages)\n"
    "  - Windows: open the 'OSGeo4W Shell' from the Start menu and run: "
    "python -m pip install onnxruntime\n"
    "  - or, in QGIS desktop, use the 'Install onnxruntime' button the plugin shows (it installs "
    "into the QGIS profile, never touching numpy),\n"
    "  - or point the environment variable ANALOG_EXTRA_SITE at a site-packages folder "
    "that contains onnxruntime (for Python {major}.{minor}).\n"
    "Import error: {error}"
)


class MissingDependencyError(ImportError):
    """onnxruntime cannot be imported; the message says how to install it."""


_PROFILE_DIR: list[Path] = []


def set_profile_dir(path: str | os.PathLike[str] | None) -> None:
    """Tell the lookup where the QGIS profile is (its installer folder joins the search)."""
    _PROFILE_DIR[:] = [Path(path)] if path else []


def installer_dir() -> Path | None:
    """The profile folder the installer writes to (None before :func:`set_profile_dir`)."""
    from .installer import deps_dir

    return deps_dir(_PROFILE_DIR[0]) if _PROFILE_DIR else None


def extra_paths() -> list[str]:
    """Folders this module adds to ``sys.path``: ``_vendor``, the installer's profile folder,
    then ``ANALOG_EXTRA_SITE`` (each only if it exists)."""
    paths: list[str] = []
    if VENDOR_DIR.is_dir():
        paths.append(str(VENDOR_DIR))
    inst = installer_dir()
    if inst is not None and inst.is_dir():
        paths.append(str(inst))
    for entry in os.environ.get(EXTRA_SITE_ENV, "").split(os.pathsep):
        entry = entry.strip()
        if entry and Path(entry).is_dir():
            paths.append(str(Path(entry)))
    return paths


def add_extra_paths() -> list[str]:
    """Append :func:`extra_paths` to the END of ``sys.path`` (once each); return those added."""
    added: list[str] = []
    for path in extra_paths():
        if path not in sys.path:
            sys.path.append(path)
            added.append(path)
    if added:
        importlib.invalidate_caches()
    return added


def qgis_python() -> str:
    """Best guess of the interpreter matching the Python embedded in QGIS.

    Inside QGIS ``sys.executable`` is unreliable (the QGIS binary, or whatever ``python3`` comes
    first on PATH); ``sys.base_prefix`` is the installation QGIS actually links against.
    """
    if sys.platform.startswith("win"):
        return "python"
    major, minor = sys.version_info[:2]
    for name in (f"python{major}.{minor}", f"python{major}"):
        candidate = Path(sys.base_prefix) / "bin" / name
        if candidate.is_file():
            return str(candidate)
    return "/usr/bin/python3" if sys.platform.startswith("linux") else "python3"


def _install_message(error: BaseException) -> str:
    return INSTALL_HINT.format(
        python=qgis_python(), major=sys.version_info[0], minor=sys.version_info[1], error=error
    )


def require_onnxruntime() -> None:
    """Import onnxruntime (after :func:`add_extra_paths`), else raise MissingDependencyError."""
    add_extra_paths()
    try:
        importlib.import_module("onnxruntime")
    except Exception as err:  # ImportError, or a broken binary wheel (OSError, AttributeError...)
        raise MissingDependencyError(_install_message(err)) from err


def onnxruntime_available() -> bool:
    """True when :func:`require_onnxruntime` would succeed."""
    try:
        require_onnxruntime()
    except MissingDependencyError:
        return False
    return True
