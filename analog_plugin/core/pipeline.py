"""The two whole jobs, shared by the QGIS algorithms, the CLI and batch runs.

A stable facade: callers import ``build_library`` and ``score_raster`` from here; the work lives in
``library_job`` and ``score_job`` (shared pieces in ``job_common``).
"""

from __future__ import annotations

from .job_common import LibrarySummary, ScoreSummary
from .library import ExemplarPolygon
from .library_job import build_library
from .score_job import score_raster

__all__ = [
    "ExemplarPolygon",
    "LibrarySummary",
    "ScoreSummary",
    "build_library",
    "score_raster",
]
