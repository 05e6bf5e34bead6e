"""Atomic output files: write to a temp file beside the target, fsync, os.replace() on success.

Why: a scoring run can take hours and may be cancelled, crash or lose power; a half-written
GeoPackage that replaced yesterday's good result would be worse than no result. os.replace is
atomic on the same filesystem, hence the temp file lives in the target folder (not in /tmp), and
it is fsync'ed first so the rename never publishes data still in the page cache.

Temp names carry the writer's process id (``.<stem>.tmp-<pid>-<random><suffix>``): a run that was
killed leaves one behind, and the next run into the same folder removes those whose process is
gone. SQLite side files (``-wal``/``-shm``/``-journal``) of the OLD target are removed with it when
it is replaced: left beside the new file, SQLite would replay the old WAL into it.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import OutputError
from .feedback import Feedback, check_cancelled

SIDE_CAR_SUFFIXES = ("-journal", "-wal", "-shm")
"""SQLite side files that GDAL may leave next to a GeoPackage; removed with the temp file."""

_TEMP_RE = re.compile(r"^\.(?P<stem>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]{10}(?P<suffix>\.[^.]+)$")


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
            f"output '{p}' must be a file ending in '{suffix}'; "
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


def check_not_an_input(
    output: Path, inputs: Iterable[tuple[str, str | os.PathLike[str] | None]]
) -> None:
    """OutputError when the output is one of the inputs (``(parameter name, path)`` pairs):
    replacing the raster or library being read would destroy it."""
    out = Path(os.fspath(output)).absolute()
    for name, path in inputs:
        if path is None or not str(path).strip():
            continue
        p = Path(os.fspath(path)).expanduser().absolute()
        same = p == out
        if not same and p.exists() and out.exists():
            with contextlib.suppress(OSError):
                same = os.path.samefile(p, out)
        if same:
            raise OutputError(
                f"the output '{out}' is the same file as {name}; writing it would destroy the "
                "input: choose another output file name"
            )


def temp_path_for(target: Path) -> Path:
    """A unique hidden temp name in the target's folder, keeping the suffix (GDAL picks the
    driver from it) and carrying this process id (see module docstring)."""
    return target.with_name(
        f".{target.stem}.tmp-{os.getpid()}-{uuid.uuid4().hex[:10]}{target.suffix}"
    )


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else (or the OS cannot tell): keep it
    return True


def clean_stale_temps(target: Path) -> list[Path]:
    """Remove temp files of ``target`` left by killed runs (their process is gone)."""
    removed: list[Path] = []
    folder = target.parent
    with contextlib.suppress(OSError):
        for cand in folder.glob(f".{target.stem}.tmp-*{target.suffix}"):
            m = _TEMP_RE.match(cand.name)
            if m is None or m.group("stem") != target.stem or _pid_alive(int(m.group("pid"))):
                continue
            remove_quietly(cand)
            removed.append(cand)
    return removed


def clean_stale_temps_in(folder: Path) -> list[Path]:
    """Remove every temp file in ``folder`` whose writer process is gone (e.g. the GeoParquet
    parts of a batch run killed mid-write)."""
    removed: list[Path] = []
    with contextlib.suppress(OSError):
        for cand in folder.glob(".*.tmp-*"):
            m = _TEMP_RE.match(cand.name)
            if m is not None and not _pid_alive(int(m.group("pid"))):
                remove_quietly(cand)
                removed.append(cand)
    return removed


def remove_quietly(path: Path) -> None:
    """Remove a file and its SQLite side files, ignoring the ones that do not exist."""
    for candidate in (path, *(Path(str(path) + s) for s in SIDE_CAR_SUFFIXES)):
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()


def _fsync(path: Path, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return  # e.g. directories cannot be opened on Windows: nothing to sync there
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str],
                  feedback: Feedback | None = None) -> Iterator[Path]:
    """Yield a temp path to write; on normal exit it is fsync'ed and replaces ``path`` (whose old
    SQLite side files are removed), on any exception (including AnalogCancelled and
    KeyboardInterrupt) it is deleted and ``path`` is untouched.

    With ``feedback``, a cancel is checked once more right before the replace: the last moment
    a run may still say "cancelled" without having changed anything (a job's own checks come
    earlier; without this one, a cancel during its final step would publish AND report cancel).

    The caller must have closed every handle on the temp file before leaving the block.
    """
    target = Path(os.fspath(path)).absolute()
    clean_stale_temps(target)
    tmp = temp_path_for(target)
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError(f"internal error: nothing was written to the temp file '{tmp}'")
        if feedback is not None:
            check_cancelled(feedback, "writing")
        _fsync(tmp)
        try:
            for suffix in SIDE_CAR_SUFFIXES:
                with contextlib.suppress(FileNotFoundError):
                    Path(str(target) + suffix).unlink()
            os.replace(tmp, target)
        except OSError as err:
            raise OutputError(
                f"could not replace '{target}' ({err.strerror or err}); if it is open in QGIS "
                "or another program, close it (or choose another name) and run again"
            ) from err
        _fsync(target.parent, directory=True)
    except BaseException:
        remove_quietly(tmp)
        raise
