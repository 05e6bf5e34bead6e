"""Where the bundled model and styles live, in a git checkout and in a deployed plugin.

Deployed (``make build``/plugin zip): ``analog_plugin/models`` and ``analog_plugin/resources``.
Checkout: ``<repo>/models`` and ``<repo>/resources``. The deployed location wins so an installed
plugin never picks up files from some checkout that happens to be its parent folder.
"""

from __future__ import annotations

from pathlib import Path

MODEL_FILENAME = "analog-siamese.onnx"

PLUGIN_DIR = Path(__file__).resolve().parent.parent
"""The ``analog_plugin`` folder."""

REPO_ROOT = PLUGIN_DIR.parent
"""The checkout root when running from git (meaningless when deployed; only used as fallback)."""


def _find(*parts: str) -> Path:
    candidates = [PLUGIN_DIR.joinpath(*parts), REPO_ROOT.joinpath(*parts)]
    for c in candidates:
        if c.exists():
            return c
    # Neither exists: report the deployed location, which is where it should be in a release.
    return candidates[0] if PLUGIN_DIR.joinpath(parts[0]).is_dir() else candidates[1]


def bundled_model_path() -> Path:
    """Path of the bundled ``models/analog-siamese.onnx``.

    Always returns a path (the algorithms use it as a parameter default); it may not exist in a
    checkout before training/export, in which case loading it raises ModelLoadError.
    """
    return _find("models", MODEL_FILENAME)


def style_path(name: str) -> Path:
    """Path of ``resources/styles/<name>`` (e.g. ``scores.qml``); may not exist, callers check."""
    return _find("resources", "styles", name)


__all__ = ["MODEL_FILENAME", "PLUGIN_DIR", "REPO_ROOT", "bundled_model_path", "style_path"]
