#!/usr/bin/env python3
"""Check a release zip against the official QGIS plugin repository's rules (`make package` runs it).

- one top folder ``analog_plugin/`` with ``__init__.py``, ``metadata.txt`` and ``LICENSE``;
- no compiled binaries (.so .pyd .dll .dylib .exe .pyc), no ``_vendor``, no hidden junk;
- at most 25 MB;
- complete metadata: name, qgisMinimumVersion, qgisMaximumVersion, description, about, version,
  author, email, repository, tracker, homepage, tags, changelog, icon (present in the zip).
Exit 1 listing every problem.
"""

from __future__ import annotations

import configparser
import sys
import zipfile
from pathlib import Path

MAX_BYTES = 25 * 1024 * 1024
BINARY = (".so", ".pyd", ".dll", ".dylib", ".exe", ".pyc", ".o", ".a")
REQUIRED = ("name", "qgisMinimumVersion", "qgisMaximumVersion", "description", "about",
            "version", "author", "email", "repository", "tracker", "homepage", "tags",
            "changelog", "icon")


def problems(zip_path: Path) -> list[str]:
    out: list[str] = []
    size = zip_path.stat().st_size
    if size > MAX_BYTES:
        out.append(f"zip is {size / 1e6:.1f} MB, over 25 MB")
    with zipfile.ZipFile(zip_path) as z:
        names = z.namelist()
        tops = {n.split("/", 1)[0] for n in names}
        if tops != {"analog_plugin"}:
            out.append(f"top-level entries {sorted(tops)}, expected only analog_plugin/")
        for n in names:
            low = n.lower()
            if low.endswith(BINARY) or ".so." in low:
                out.append(f"compiled binary: {n}")
            if "/_vendor/" in n or "/__pycache__/" in n or "/." in n:
                out.append(f"not for release: {n}")
        for need in ("analog_plugin/__init__.py", "analog_plugin/metadata.txt",
                     "analog_plugin/LICENSE"):
            if need not in names:
                out.append(f"missing {need}")
        if "analog_plugin/metadata.txt" in names:
            cfg = configparser.ConfigParser()
            cfg.read_string(z.read("analog_plugin/metadata.txt").decode("utf-8"))
            meta = cfg["general"] if cfg.has_section("general") else {}
            for key in REQUIRED:
                if not str(meta.get(key, "")).strip():
                    out.append(f"metadata.txt: '{key}' missing or empty")
            icon = str(meta.get("icon", ""))
            if icon and f"analog_plugin/{icon}" not in names:
                out.append(f"metadata.txt: icon '{icon}' is not in the zip")
    return out


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: check_release.py PLUGIN.zip", file=sys.stderr)
        return 2
    found = problems(Path(sys.argv[1]))
    for p in found:
        print(f"release check: {p}", file=sys.stderr)
    if not found:
        print(f"release check: {sys.argv[1]} passes")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
