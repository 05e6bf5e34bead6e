"""The ``scores`` GeoPackage: tile polygons and their scores, streamed batch by batch.

Layout (docs/DESIGN.md): layer ``scores`` in the raster CRS with fields tile_id, row, col, score,
best_class, best_exemplar, valid_frac; the run's model and parameters as layer metadata; the
graduated style, fitted to this run's score quantiles, as the default in ``layer_styles``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from osgeo import ogr

from .feedback import Feedback
from .gpkg_io import add_default_style, polygon_wkbs, read_style
from .layer_writer import StreamingLayerWriter
from .style_breaks import fit_graduated_ranges
from .tiling import Tile, Transform, pixel_to_map

SCORES_LAYER = "scores"
SCORE_FIELDS = [
    ("tile_id", ogr.OFTInteger64),
    ("row", ogr.OFTInteger),
    ("col", ogr.OFTInteger),
    ("score", ogr.OFTReal),
    ("best_class", ogr.OFTString),
    ("best_exemplar", ogr.OFTString),
    ("valid_frac", ogr.OFTReal),
]


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
    ) -> None:
        super().__init__(target, SCORES_LAYER, crs_wkt, SCORE_FIELDS, metadata=metadata)
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
    ) -> None:
        rows = [
            (t.tile_id, t.row, t.col, float(s), c, e, float(v))
            for t, s, c, e, v in zip(tiles, scores, best_class, best_exemplar, valid_frac,
                                     strict=True)
        ]
        self.append(rows, polygon_wkbs(tile_rings(self.transform, tiles)))
        self._scores.append(np.asarray(scores, np.float32))

    def finish(self) -> None:
        """Store the default style, its classes fitted to this run's scores."""
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
