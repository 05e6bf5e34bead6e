"""The ``scores`` GeoPackage: tile polygons and their scores, streamed batch by batch.

Layout (docs/DESIGN.md): layer ``scores`` in the raster CRS with fields tile_id, row, col, score,
best_class, best_exemplar, valid_frac, one ``score_<class>`` per library class, rank and
percentile; the run's model and parameters as layer metadata; the graduated style, fitted to this
run's score quantiles, as the default in ``layer_styles``.

Rank and percentile need every score of the run, so they are filled at the end by one SQL
statement with window functions inside the temp GeoPackage (no second pass through Python).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from osgeo import ogr

from .feedback import Feedback
from .gpkg_io import add_default_style, polygon_wkbs, read_style
from .layer_writer import StreamingLayerWriter
from .style_breaks import fit_graduated_ranges
from .tiling import Tile, Transform, pixel_to_map

SCORES_LAYER = "scores"
BASE_FIELDS = [
    ("tile_id", ogr.OFTInteger64),
    ("row", ogr.OFTInteger),
    ("col", ogr.OFTInteger),
    ("score", ogr.OFTReal),
    ("best_class", ogr.OFTString),
    ("best_exemplar", ogr.OFTString),
    ("valid_frac", ogr.OFTReal),
]
RANK_FIELDS = [("rank", ogr.OFTInteger64), ("percentile", ogr.OFTReal)]
RANK_SQL = (
    "UPDATE {t} SET rank = r.rk, percentile = r.pc FROM (SELECT fid AS f, "
    "ROW_NUMBER() OVER (ORDER BY score DESC, fid) AS rk, "
    "100.0 * CUME_DIST() OVER (ORDER BY score) AS pc FROM {t}) AS r WHERE {t}.fid = r.f"
)


def tile_rings(transform: Transform, tiles: Sequence[Tile]) -> np.ndarray:
    """``(N, 5, 2)`` closed footprint rings of the tiles in map coordinates (vectorised)."""
    c0 = np.array([t.col_off for t in tiles], np.float64)
    r0 = np.array([t.row_off for t in tiles], np.float64)
    c1 = c0 + np.array([t.width for t in tiles], np.float64)
    r1 = r0 + np.array([t.height for t in tiles], np.float64)
    cols = np.stack([c0, c1, c1, c0, c0], axis=1)
    rows = np.stack([r0, r0, r1, r1, r0], axis=1)
    x, y = pixel_to_map(transform, cols, rows)  # type: ignore[arg-type]
    return np.stack([x, y], axis=-1)


class ScoreWriter(StreamingLayerWriter):
    """The ``scores`` layer: ``write_tiles`` per batch, ``finish`` stores the fitted style; a
    context manager with StreamingLayerWriter's atomic publish."""

    def __init__(
        self,
        target: str | os.PathLike[str],
        crs_wkt: str,
        transform: Transform,
        metadata: Mapping[str, str],
        style_qml: Path | None,
        feedback: Feedback,
        class_fields: Sequence[str] = (),
        extra_fields: Sequence[tuple[str, int]] = (),
    ) -> None:
        fields = [*BASE_FIELDS, *extra_fields, *((f, ogr.OFTReal) for f in class_fields),
                  *RANK_FIELDS]
        # No publish-time cancel check here (feedback not forwarded): scoretiles may publish a
        # heat map just before this file, and a cancel between the two renames would leave one
        # replaced; score_job checks once before both instead.
        super().__init__(target, SCORES_LAYER, crs_wkt, fields, metadata=metadata)
        self.n_class_fields = len(class_fields)
        self.extra_names = [name for name, _ in extra_fields]
        self.transform, self.fb = transform, feedback
        self.qml = read_style(style_qml)
        self._scores: list[np.ndarray] = []

    def write_tiles(
        self,
        tiles: Sequence[Tile],
        scores: np.ndarray,
        best_class: Sequence[str],
        best_exemplar: Sequence[str],
        valid_frac: np.ndarray,
        per_class: np.ndarray | None = None,
    ) -> None:
        """One batch; ``per_class`` (N, C) fills the ``score_<class>`` fields in order."""
        extra = (np.zeros((len(tiles), 0)) if per_class is None else np.asarray(per_class))
        if extra.shape[1] != self.n_class_fields:
            raise ValueError(f"{extra.shape[1]} class scores for {self.n_class_fields} fields")
        rows = [
            (t.tile_id, t.row, t.col, float(s), c, e, float(v), *map(float, x), None, None)
            for t, s, c, e, v, x in zip(tiles, scores, best_class, best_exemplar, valid_frac,
                                        extra, strict=True)
        ]
        self.append(rows, polygon_wkbs(tile_rings(self.transform, tiles)))
        self._scores.append(np.asarray(scores, np.float32))

    def append_records(self, columns: Mapping[str, Sequence[Any]], per_class: np.ndarray,
                       wkbs: Sequence[bytes]) -> None:
        """Pre-scored tiles (the cluster merge): ``columns`` holds the BASE_FIELDS and the
        extra fields by name, ``per_class`` (N, C) the class scores."""
        names = [f for f, _ in BASE_FIELDS] + self.extra_names
        rows = [(*(columns[k][i] for k in names), *map(float, per_class[i]), None, None)
                for i in range(len(wkbs))]
        self.append(rows, wkbs)
        self._scores.append(np.asarray(columns["score"], np.float32))

    def finish(self) -> None:
        """Fill rank and percentile, store the default style fitted to this run's scores."""
        self.datasource.ExecuteSQL(RANK_SQL.format(t=SCORES_LAYER))
        if self.qml is None:
            self.fb.pushWarning(
                "no default style found (resources/styles/scores.qml); the layer is written "
                "without a stored style"
            )
            return
        scores = np.concatenate(self._scores) if self._scores else np.zeros(0, np.float32)
        fitted = fit_graduated_ranges(self.qml, scores.tolist())
        add_default_style(self.datasource, SCORES_LAYER, fitted, "scores",
                          "Mars Analogue Finder scores")
