"""The tile-embedding stream: windows of a raster -> reads -> preprocessing -> batched inference.

Every job that needs embeddings of raster tiles (scoring, library building, and later
classification, heat maps, a cluster backend) iterates this stream and only decides what to do
with each :class:`EmbeddedBatch`; none of them has a tile loop of its own.

Why a reader thread: reading a window (GDAL) and preparing it (numpy) both release the GIL, and
so does onnxruntime, so the next batch is read and prepared while the current one is inferred and
the model runs at close to its own speed. The queue between them is bounded (``prefetch``
batches), so memory stays flat whatever the raster size. Cancel is checked between batches and
while waiting (a batch is a fraction of a second); an exception in the reader is re-raised in the
caller with its original type.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import AnalogCancelled
from .feedback import Feedback, check_cancelled
from .model import EmbeddingModel
from .preprocess import LayerStats, prepare_batch
from .raster_reader import RasterSource, decimated_shape
from .tiling import PixelWindow

POLL_S = 0.2
"""How often a waiting side looks at the cancel flag / stop event."""


@dataclass(frozen=True)
class TileRequest:
    """One window to embed and an opaque payload (a Tile, an exemplar job...) carried along."""

    payload: Any
    window: PixelWindow


@dataclass(frozen=True, eq=False)
class EmbeddedBatch:
    """Up to ``batch_size`` embedded tiles: ``payloads`` (N,), ``valid_frac`` (N,) and
    ``embeddings`` (N, D) L2-normalised float32; ``done`` = requests consumed so far."""

    payloads: tuple[Any, ...]
    valid_frac: np.ndarray
    embeddings: np.ndarray
    done: int


@dataclass
class StageTimes:
    """Seconds spent per stage (reader-thread and caller-thread time, so they may overlap)."""

    read_s: float = 0.0
    preprocess_s: float = 0.0
    inference_s: float = 0.0
    write_s: float = 0.0
    tiles: int = 0
    skipped: int = 0

    def as_dict(self) -> dict[str, float]:
        return {
            "read_s": round(self.read_s, 4),
            "preprocess_s": round(self.preprocess_s, 4),
            "inference_s": round(self.inference_s, 4),
            "write_s": round(self.write_s, 4),
            "tiles": self.tiles,
            "skipped": self.skipped,
        }


@dataclass(frozen=True, eq=False)
class _Prepared:
    payloads: tuple[Any, ...]
    valid_frac: np.ndarray
    inputs: np.ndarray
    done: int


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


class Progress:
    """Progress to a Feedback with a rate and an ETA line every ``every_s`` seconds."""

    def __init__(self, fb: Feedback, total: int, span: tuple[float, float] = (0.0, 95.0),
                 what: str = "tiles", every_s: float = 10.0) -> None:
        self.fb, self.total, self.span = fb, max(total, 1), span
        self.what, self.every_s = what, every_s
        self.t0 = time.perf_counter()
        self.last_msg = self.t0

    def update(self, done: int) -> None:
        lo, hi = self.span
        self.fb.setProgress(lo + (hi - lo) * min(done, self.total) / self.total)
        now = time.perf_counter()
        if now - self.last_msg >= self.every_s and 0 < done < self.total:
            self.last_msg = now
            rate = done / max(now - self.t0, 1e-9)
            eta = (self.total - done) / max(rate, 1e-9)
            self.fb.pushInfo(
                f"  {100 * done / self.total:5.1f} % ({done}/{self.total} {self.what}, "
                f"{rate:.0f}/s, ETA {_fmt_s(eta)})"
            )


def _fmt_s(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class TileEmbeddingStream:
    """Iterate :class:`EmbeddedBatch` for ``requests`` over an open :class:`RasterSource`.

    Tiles whose valid fraction is 0 or below ``min_valid`` are skipped (counted in ``times``);
    ``keep`` (optional) filters requests before any read (e.g. tiles outside a mask);
    ``mask_shapes`` (GeoJSON-like polygons, raster CRS) make pixels outside them invalid.
    """

    def __init__(
        self,
        source: RasterSource,
        requests: Iterable[TileRequest],
        model: EmbeddingModel,
        layer: LayerStats,
        feedback: Feedback,
        *,
        batch_size: int = 64,
        min_valid: float = 0.0,
        mask_shapes: Sequence[dict[str, Any]] | None = None,
        keep: Callable[[TileRequest], bool] | None = None,
        prefetch: int = 3,
    ) -> None:
        self.source, self.requests, self.model, self.layer = source, requests, model, layer
        self.fb, self.batch_size, self.min_valid = feedback, batch_size, min_valid
        self.mask_shapes, self.keep, self.prefetch = mask_shapes, keep, max(1, prefetch)
        self.times = StageTimes()

    # -- reader thread ------------------------------------------------------------------------
    def _read_all(self, out: queue.Queue[Any], stop: threading.Event) -> None:
        try:
            for item in self._prepared_batches(stop):
                self._put(out, stop, item)
                if stop.is_set():
                    return
            self._put(out, stop, _END)
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            self._put(out, stop, _Failure(err))

    @staticmethod
    def _put(out: queue.Queue[Any], stop: threading.Event, item: Any) -> None:
        """Put ``item``, waiting for room but giving up as soon as the caller has stopped."""
        while not stop.is_set():
            try:
                out.put(item, timeout=POLL_S)
                return
            except queue.Full:
                continue

    def _prepared_batches(self, stop: threading.Event) -> Iterator[_Prepared]:
        contract = self.model.contract
        size = contract.input_size
        pix: list[np.ndarray] = []
        valid: list[np.ndarray] = []
        payloads: list[Any] = []
        fracs: list[float] = []
        done = 0
        for req in self.requests:
            if stop.is_set():
                return
            done += 1
            if self.keep is not None and not self.keep(req):
                self.times.skipped += 1
                continue
            t0 = time.perf_counter()
            w = req.window
            td = self.source.read_window(w, decimated_shape(w.width, w.height, size),
                                         self.mask_shapes)
            self.times.read_s += time.perf_counter() - t0
            if td.valid_frac <= 0.0 or td.valid_frac < self.min_valid:
                self.times.skipped += 1
                continue
            pix.append(td.pixels)
            valid.append(td.valid)
            payloads.append(req.payload)
            fracs.append(td.valid_frac)
            if len(pix) >= self.batch_size:
                yield self._prepare(pix, valid, payloads, fracs, done)
                pix, valid, payloads, fracs = [], [], [], []
        if pix:
            yield self._prepare(pix, valid, payloads, fracs, done)

    def _prepare(self, pix: list[np.ndarray], valid: list[np.ndarray], payloads: list[Any],
                 fracs: list[float], done: int) -> _Prepared:
        t0 = time.perf_counter()
        contract = self.model.contract
        if len({p.shape for p in pix}) == 1:
            inputs = prepare_batch(np.stack(pix), contract, self.layer, np.stack(valid))
        else:  # windows decimated to different shapes: prepare one by one, same function
            inputs = np.concatenate([
                prepare_batch(p[None], contract, self.layer, v[None])
                for p, v in zip(pix, valid, strict=True)
            ])
        self.times.preprocess_s += time.perf_counter() - t0
        return _Prepared(tuple(payloads), np.asarray(fracs, np.float64), inputs, done)

    # -- caller side ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[EmbeddedBatch]:
        out: queue.Queue[Any] = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        reader = threading.Thread(target=self._read_all, args=(out, stop),
                                  name="analog-tile-reader", daemon=True)
        reader.start()
        try:
            while True:
                item = self._next(out)
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                t0 = time.perf_counter()
                emb = self.model.embed(item.inputs)
                self.times.inference_s += time.perf_counter() - t0
                self.times.tiles += len(item.payloads)
                yield EmbeddedBatch(item.payloads, item.valid_frac, emb, item.done)
                check_cancelled(self.fb, "scoring")
        finally:
            stop.set()
            reader.join()

    def _next(self, out: queue.Queue[Any]) -> Any:
        while True:
            try:
                return out.get(timeout=POLL_S)
            except queue.Empty:
                if self.fb.isCanceled():
                    raise AnalogCancelled(
                        "cancelled by the user while reading tiles; no output was written or "
                        "changed"
                    ) from None
