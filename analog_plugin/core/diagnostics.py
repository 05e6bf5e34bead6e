"""What this installation can do, as copyable text: versions, execution providers, why CUDA is or is
not usable, and the bundled model's identity and contract.

Support requests in this field are mostly "it does not run on my GPU" or "numpy broke QGIS"; the
report answers both without the user opening a Python console. No qgis import: the QGIS version is
added by the caller (the Processing algorithm, the desktop Help menu).
"""

from __future__ import annotations

import ctypes.util
import importlib
import json
import os
import platform
import shutil
import subprocess  # nosec B404
import sys
from typing import Any

from .paths import bundled_model_path
from .threads import default_threads


def _version(module: str) -> str:
    try:
        return str(getattr(importlib.import_module(module), "__version__", "?"))
    except Exception as err:  # noqa: BLE001 - any import failure is a finding to report
        return f"not importable ({type(err).__name__}: {err})"


def cuda_status() -> tuple[bool, str]:
    """(usable, why): onnxruntime offering CUDAExecutionProvider, plus what blocks it if not."""
    try:
        import onnxruntime as ort
    except Exception as err:  # noqa: BLE001
        return False, f"onnxruntime is not importable ({err})"
    providers = ort.get_available_providers()
    if "CUDAExecutionProvider" in providers:
        return True, "CUDAExecutionProvider is available (onnxruntime-gpu)"
    why = ["onnxruntime has no CUDAExecutionProvider: install 'onnxruntime-gpu' (same version "
           "as onnxruntime, and remove 'onnxruntime' so the two do not shadow each other)"]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        why.append("nvidia-smi not found: no NVIDIA driver on this machine?")
    else:
        try:
            out = subprocess.run([smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10, check=False)  # nosec B603
            why.append(f"GPU: {out.stdout.strip() or out.stderr.strip()}")
        except (OSError, subprocess.SubprocessError) as err:
            why.append(f"nvidia-smi failed: {err}")
    for lib in ("cudart", "cublas", "cudnn"):
        if ctypes.util.find_library(lib) is None:
            why.append(f"lib{lib} not found on the library path")
    return False, "; ".join(why)


def model_summary(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The bundled (or given) model's version, sha256 and contract, or why it cannot load."""
    from .model import EmbeddingModel

    p = path or bundled_model_path()
    try:
        m = EmbeddingModel(p, device="cpu")
    except Exception as err:  # noqa: BLE001 - reported, not raised
        return {"path": str(p), "error": str(err)}
    return {"path": str(m.path), "version": m.metadata.version, "sha256": m.sha256,
            "input": [m.channels, m.input_size, m.input_size], "embedding_dim": m.embedding_dim,
            "preprocessing": m.contract.describe(), "tile_px": m.contract.tile_px,
            "same_landform_cos": m.metadata.same_landform_cos}


def report(extra: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything as a dict (``format_report`` makes it text)."""
    try:
        import onnxruntime as ort

        providers: Any = ort.get_available_providers()
    except Exception as err:  # noqa: BLE001
        providers = f"none (onnxruntime not importable: {err})"
    usable, why = cuda_status()
    try:
        from osgeo import gdal

        gdal_version = str(gdal.__version__)
    except Exception as err:  # noqa: BLE001
        gdal_version = f"not importable ({err})"
    return {
        **(extra or {}),
        "python": f"{sys.version.split()[0]} ({sys.executable})",
        "platform": platform.platform(),
        "threads_default": default_threads(),
        "numpy": _version("numpy"),
        "gdal": gdal_version,
        "onnxruntime": _version("onnxruntime"),
        "execution_providers": providers,
        "cuda_usable": usable,
        "cuda_detail": why,
        "model": model_summary(),
    }


def format_report(doc: dict[str, Any]) -> str:
    lines = ["Mars Analogue Finder diagnostics"]
    for k, v in doc.items():
        lines.append(f"{k}: {json.dumps(v) if isinstance(v, (dict, list)) else v}")
    return "\n".join(lines)
