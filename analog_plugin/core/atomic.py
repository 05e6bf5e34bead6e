"""Atomic output files: write to a temp file beside the target, os.replace() on success.

Why: a scoring run can take hours and may be cancelled or crash; a half-written GeoPackage that
replaced yesterday's good result would be worse than no result. os.replace is atomic on the same
filesystem, hence the temp file lives in the target folder (not in /tmp).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from .errors import OutputError

SIDE_CAR_SUFFIXES = ("-journal", "-wal", "-shm")
"""SQLite side files that GDAL may leave next to a GeoPackage; removed with the temp file."""


def validate_output_path(path: str | os.PathLike[str], suffix: str = ".gpkg") -> Path:
    """Check, before any heavy work, that ``path`` can be written; return it as an absolute Path.

    The folder must exist and accept a new file (tested by really creating one: os.access lies
    on network shares and with ACLs), the name must end in ``suffix`` and must not be a folder.
    """
    p = Path(os.fspath(path)).expanduser()
    if not str(path).strip():
        raise OutputError("no output path given; choose a file name ending in " + suffix)
    if p.suffix.lower() != suffix:
        raise OutputError(
            f"output '{p}' must be a GeoPackage file ending in '{suffix}'; "
            f"rename it, e.g. '{p.with_suffix(suffix).name}'"
        )
    p = p.absolute()
    if p.is_dir():
        raise OutputError(f"output '{p}' is a folder; give a file name ending in '{suffix}'")
    folder = p.parent
    if not folder.is_dir():
        raise OutputError(
            f"the output folder '{folder}' does not exist; create it or choose another folder"
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".analog-write-test-", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise OutputError(
            f"cannot write in the output folder '{folder}' ({err.strerror or err}); "
            "choose a folder you can write to"
        ) from err
    if p.exists() and not p.is_file():
        raise OutputError(f"output '{p}' exists and is not a regular file; choose another name")
    return p


def temp_path_for(target: Path) -> Path:
    """A unique hidden temp name in the target's folder, keeping the suffix (GDAL picks the
    driver from it)."""
    return target.with_name(f".{target.stem}.tmp-{uuid.uuid4().hex[:10]}{target.suffix}")


def remove_quietly(path: Path) -> None:
    """Remove a file and its SQLite side files, ignoring the ones that do not exist."""
    for candidate in (path, *(Path(str(path) + s) for s in SIDE_CAR_SUFFIXES)):
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path to write; on normal exit it replaces ``path``, on any exception
    (including AnalogCancelled and KeyboardInterrupt) it is deleted and ``path`` is untouched.

    The caller must have closed every handle on the temp file before leaving the block.
    """
    target = Path(os.fspath(path)).absolute()
    tmp = temp_path_for(target)
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError(f"internal error: nothing was written to the temp file '{tmp}'")
        try:
            os.replace(tmp, target)
        except OSError as err:
            raise OutputError(
                f"could not replace '{target}' ({err.strerror or err}); if it is open in QGIS "
                "or another program, close it (or choose another name) and run again"
            ) from err
    except BaseException:
        remove_quietly(tmp)
        raise
