"""Pieces shared by the two jobs (score_job, library_job): input checks, tile size in pixels,
the batcher that turns a stream of prepared tiles into batched model calls, and job summaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import TilingError
from .model import EmbeddingModel
from .preprocess import Stretch
from .raster_reader import (
    RasterSource,
)
from .tiling import (
    PixelWindow,
    check_tile_size,
    pixel_to_map,
)

MAX_BATCH = 1024


@dataclass(frozen=True)
class LibrarySummary:
    n_exemplars: int
    classes: tuple[str, ...]
    output_path: Path


@dataclass(frozen=True)
class ScoreSummary:
    n_tiles: int
    n_scored: int
    n_skipped: int
    provider: str
    seconds: float
    output_path: Path


# -- shared checks ------------------------------------------------------------------------------


def check_batch(batch_size: int) -> int:
    if not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH:
        raise TilingError(
            f"batch size {batch_size} must be an integer in 1..{MAX_BATCH}; 32 is a good default "
            "(smaller batches make cancel faster, larger ones a GPU busier)"
        )
    return batch_size


def check_channels(n_bands: int, channels: int) -> None:
    if n_bands == channels or (channels == 1 and n_bands == 3) or (channels == 3 and n_bands == 1):
        return
    raise TilingError(
        f"the model takes {channels} channel(s) but {n_bands} band(s) are selected; "
        f"choose 1 or 3 bands with the BANDS parameter"
    )


def tile_pixels(
    src: RasterSource,
    model: EmbeddingModel,
    tile_size: float | None,
    tile_units: str,
    extent: PixelWindow,
) -> tuple[int, int]:
    from .crs_units import tile_size_pixels

    if tile_size is None:
        return model.input_size, model.input_size
    check_tile_size(float(tile_size), tile_units)
    cx, cy = pixel_to_map(
        src.info.transform, extent.col_off + extent.width / 2, extent.row_off + extent.height / 2
    )
    return tile_size_pixels(
        float(tile_size), tile_units, src.info.crs_wkt, src.info.res[0], src.info.res[1], cy
    )


def stretch_info(stretch: Stretch) -> str:
    lows_highs = zip(stretch.low, stretch.high, strict=True)
    pairs = ", ".join(f"{lo:.4g}..{hi:.4g}" for lo, hi in lows_highs)
    return f"Per-layer 2-98 % stretch (per band): {pairs}"


class Batcher:
    """Accumulates model inputs with their payloads and embeds them batch_size at a time."""

    def __init__(self, model: EmbeddingModel, batch_size: int) -> None:
        self.model = model
        self.batch_size = batch_size
        self.inputs: list[np.ndarray] = []
        self.payloads: list[Any] = []

    def add(self, x: np.ndarray, payload: Any) -> bool:
        self.inputs.append(x)
        self.payloads.append(payload)
        return len(self.inputs) >= self.batch_size

    def flush(self) -> tuple[np.ndarray, list[Any]]:
        if not self.inputs:
            return np.zeros((0, self.model.embedding_dim), np.float32), []
        emb = self.model.embed(np.stack(self.inputs))
        payloads = self.payloads
        self.inputs, self.payloads = [], []
        return emb, payloads


