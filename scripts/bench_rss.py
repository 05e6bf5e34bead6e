#!/usr/bin/env python3
"""Run one command and report its wall time and peak resident memory, isolated from the caller.

``python scripts/bench_rss.py RESULT.json -- CMD [ARGS...]`` runs CMD (its stdout/stderr pass
through unchanged), waits for it, then writes ``{"rc", "wall_s", "maxrss_kib"}`` to RESULT.json
and exits with CMD's status. ``maxrss_kib`` is ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` (KiB on
Linux): the largest peak RSS among this wrapper's waited-for children, i.e. of CMD alone, because
this fresh wrapper process has run nothing else. Used by ``scripts/bench.py`` (no /usr/bin/time
on the bench machines).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    result_path, cmd = Path(argv[1]), argv[3:]
    t0 = time.perf_counter()
    rc = subprocess.call(cmd)
    wall = time.perf_counter() - t0
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result_path.write_text(json.dumps({"rc": rc, "wall_s": wall, "maxrss_kib": maxrss}))
    return rc


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
