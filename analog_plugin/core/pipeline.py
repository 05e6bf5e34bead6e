"""The whole jobs, shared by the QGIS algorithms, the command line and batch runs.

A stable facade: callers import ``build_library`` and ``score_raster`` from here; the work lives in
``library_job`` and ``score_job``, both consumers of the tile-embedding stream.
"""

from __future__ import annotations

from .classify_job import ClassifySummary, classify_landforms
from .exemplar_plan import ExemplarPolygon
from .library_job import LibrarySummary, build_library
from .rank_sites_job import SitesSummary, rank_sites
from .score_job import ScoreSummary, score_raster

__all__ = [
    "ClassifySummary",
    "classify_landforms",
    "ExemplarPolygon",
    "LibrarySummary",
    "ScoreSummary",
    "SitesSummary",
    "rank_sites",
    "build_library",
    "score_raster",
]
