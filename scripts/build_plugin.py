#!/usr/bin/env python3
"""Stage the installable plugin folder, and optionally zip it or vendor onnxruntime into it.

The repo keeps metadata.txt, resources/ and models/ at the top level (per the project layout); QGIS
needs them inside the plugin folder. This script assembles ``<dest>/analog_plugin/`` from:
analog_plugin/ (code), metadata.txt, resources/, models/*.onnx + model cards, LICENSE, README.md.

``--vendor`` pip-installs onnxruntime (no dependencies: its import needs none of them) into
``analog_plugin/_vendor`` for the Python that QGIS embeds, which cannot see a virtualenv.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PLUGIN = "analog_plugin"
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "_vendor", ".mypy_cache")


def stage(dest: Path) -> Path:
    """Copy the plugin into ``dest/analog_plugin`` (replacing an older copy) and return it."""
    target = dest / PLUGIN
    tmp = dest / f".{PLUGIN}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(REPO / PLUGIN, tmp, ignore=IGNORE)
    shutil.copy2(REPO / "metadata.txt", tmp / "metadata.txt")
    for extra in ("README.md", "LICENSE"):
        if (REPO / extra).exists():
            shutil.copy2(REPO / extra, tmp / extra)
    shutil.copytree(REPO / "resources", tmp / "resources", ignore=IGNORE)
    models = tmp / "models"
    models.mkdir()
    for f in sorted((REPO / "models").glob("*")):
        if f.is_file() and f.suffix in {".onnx", ".md", ".json"}:
            shutil.copy2(f, models / f.name)
    if (REPO / "models" / "figures").is_dir():
        shutil.copytree(REPO / "models" / "figures", models / "figures")
    vendor_old = target / "_vendor"
    if vendor_old.is_dir():
        shutil.move(str(vendor_old), tmp / "_vendor")
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return target


def vendor(target: Path, requirements: Path) -> None:
    """Install the runtime requirements (no deps) into the staged plugin's _vendor folder."""
    vend = target / "_vendor"
    if vend.is_dir() and any(vend.iterdir()):
        return
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(vend),
         "-r", str(requirements)],
        check=True,
    )


def make_zip(target: Path, zip_path: Path) -> None:
    """Zip ``target`` so that the archive's top folder is ``analog_plugin/``."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = zip_path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(target.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(target.parent))
    tmp.replace(zip_path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dest", type=Path, default=REPO / "build" / "plugin",
                    help="folder that receives analog_plugin/ (default build/plugin)")
    ap.add_argument("--vendor", action="store_true",
                    help="pip-install onnxruntime into analog_plugin/_vendor")
    ap.add_argument("--zip", type=Path, default=None, help="also write this zip file")
    args = ap.parse_args()
    args.dest.mkdir(parents=True, exist_ok=True)
    target = stage(args.dest)
    if args.vendor:
        vendor(target, REPO / "requirements.txt")
    if args.zip:
        make_zip(target, args.zip)
        print(f"wrote {args.zip}")
    print(f"staged {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
