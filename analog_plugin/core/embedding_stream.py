"""The tile-embedding stream: windows of a raster -> reads -> preprocessing -> batched inference.

Every job that needs embeddings of raster tiles (scoring, library building, classification, heat
maps, a cluster backend) iterates this stream and only decides what to do with each
:class:`EmbeddedBatch`; none of them has a tile loop of its own.

Threads, and why this shape: one reader thread reads windows (GDAL handles are not thread-safe)
and groups them into raw batches; ``workers`` threads each prepare a batch (numpy) and run the
model on it (onnxruntime) with ``intra_op`` threads of their own; the caller's thread gets the
batches back in order. numpy, GDAL and onnxruntime all release the GIL. On a small CPU the
batch-parallel workers matter: one onnxruntime run on 2 intra-op threads next to a busy
preprocessing thread oversubscribes the cores and loses ~20 % at every barrier inside the
network, while two workers with one thread each never wait for each other (measured: 0.80x vs
0.97x of the model's own throughput on a 2-core machine, scripts/bench.py). Queues and the number
of batches in flight are bounded (flat memory whatever the raster size). Cancel is checked
between batches and while waiting (a batch is a fraction of a second); an exception in any
thread is re-raised in the caller with its original type.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import AnalogCancelled
from .feedback import Feedback, check_cancelled
from .model import CUDA, EmbeddingModel
from .preprocess import LayerStats, prepare_batch
from .raster_reader import RasterSource, decimated_shape
from .tiling import PixelWindow

POLL_S = 0.2
"""How often a waiting side looks at the cancel flag / stop event."""

PREP_PIXELS = 16 * 256 * 256
"""Raw pixels (per band) prepared together: 16 tiles of 256 px, 64 of 128 px (see
TileEmbeddingStream._prepared_chunks); each chunk goes to the model as it is ready."""


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
    """Seconds spent per stage, summed over the threads that do it (reader, workers, caller),
    so they overlap and may add up to more than the wall time."""

    read_s: float = 0.0
    preprocess_s: float = 0.0
    inference_s: float = 0.0
    write_s: float = 0.0
    tiles: int = 0
    skipped: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, preprocess_s: float, inference_s: float) -> None:
        """Add one worker's batch times (workers run in parallel: a lock, not a race)."""
        with self._lock:
            self.preprocess_s += preprocess_s
            self.inference_s += inference_s

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
class _RawBatch:
    """What the reader hands a worker: raw windows of one batch, in request order."""

    seq: int
    payloads: tuple[Any, ...]
    pixels: list[np.ndarray]
    valid: list[np.ndarray]
    valid_frac: np.ndarray
    done: int


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
    ``workers`` defaults to the model's (see :func:`threads.plan_workers`). Batches come out in
    request order whatever the number of workers.
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
        prefetch: int = 2,
        workers: int | None = None,
    ) -> None:
        self.source, self.requests, self.model, self.layer = source, requests, model, layer
        self.fb, self.batch_size, self.min_valid = feedback, batch_size, min_valid
        self.mask_shapes, self.keep, self.prefetch = mask_shapes, keep, max(1, prefetch)
        self.workers = max(1, workers if workers is not None else model.workers)
        self.times = StageTimes()

    # -- reader thread ------------------------------------------------------------------------
    def _read_all(self, raw: queue.Queue[Any], results: queue.Queue[Any],
                  tickets: threading.Semaphore, stop: threading.Event) -> None:
        try:
            for item in self._raw_batches(tickets, stop):
                _put(raw, stop, item)
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            _put(results, stop, _Failure(err))
        finally:
            for _ in range(self.workers):
                _put(raw, stop, _END)

    def _raw_batches(self, tickets: threading.Semaphore,
                     stop: threading.Event) -> Iterator[_RawBatch]:
        size = self.model.contract.input_size
        pix: list[np.ndarray] = []
        valid: list[np.ndarray] = []
        payloads: list[Any] = []
        fracs: list[float] = []
        done = seq = 0
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
                if not _acquire(tickets, stop):
                    return
                yield _RawBatch(seq, tuple(payloads), pix, valid, np.asarray(fracs), done)
                seq += 1
                pix, valid, payloads, fracs = [], [], [], []
        if pix and _acquire(tickets, stop):
            yield _RawBatch(seq, tuple(payloads), pix, valid, np.asarray(fracs), done)

    # -- worker threads -----------------------------------------------------------------------
    def _work(self, raw: queue.Queue[Any], results: queue.Queue[Any],
              stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                item = _get(raw, stop)
                if item is None or item is _END:
                    return
                emb = self._embed(item)
                _put(results, stop, (item.seq, EmbeddedBatch(item.payloads, item.valid_frac,
                                                              emb, item.done)))
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            _put(results, stop, _Failure(err))
        finally:
            _put(results, stop, _WORKER_DONE)

    def _embed(self, item: _RawBatch) -> np.ndarray:
        """One raw batch -> its embeddings, one model call per input of :meth:`_model_inputs`
        (preparing it counts as preprocessing, the call as inference)."""
        inputs = self._model_inputs(item)
        embeddings = []
        while True:
            t0 = time.perf_counter()
            x = next(inputs, None)
            t1 = time.perf_counter()
            if x is None:
                break
            embeddings.append(self.model.embed(x))
            self.times.add(t1 - t0, time.perf_counter() - t1)
        return embeddings[0] if len(embeddings) == 1 else np.concatenate(embeddings)

    def _model_inputs(self, item: _RawBatch) -> Iterator[np.ndarray]:
        """On CPU each prepared chunk goes to the model as soon as it is ready, so the batch's
        model input is never gathered into one array (a 4 MB copy per batch of 256 px tiles,
        fresh memory on most calls; onnxruntime runs 8-tile slices anyway). On CUDA the chunks
        are gathered: one run of BATCH_SIZE tiles keeps the GPU busy (a batch that is one
        chunk, 64 tiles of 128 px, goes as it is, without a copy)."""
        chunks = self._prepared_chunks(item)
        if self.model.provider == CUDA:
            parts = list(chunks)
            yield parts[0] if len(parts) == 1 else np.concatenate(parts)
        else:
            yield from chunks

    def _prepared_chunks(self, item: _RawBatch) -> Iterator[np.ndarray]:
        """Raw windows -> model input, PREP_PIXELS at a time: a chunk's float32 temporaries
        (4 MB) stay in cache and a worker's peak memory does not grow with the batch size,
        while each prepare_batch call (about 20 numpy calls, a fixed cost per call) covers
        many small tiles (2-core bench, 128 px tiles: 16 per chunk spent 2.6-3.1 s preparing a
        16384^2 px scene, 64 per chunk 2.1-2.4 s)."""
        contract = self.model.contract
        h, w = item.pixels[0].shape[-2:]  # a raw batch holds at least one window
        chunk = max(1, PREP_PIXELS // (h * w))
        for i in range(0, len(item.pixels), chunk):
            pix, val = item.pixels[i:i + chunk], item.valid[i:i + chunk]
            if len({p.shape for p in pix}) == 1:
                yield prepare_batch(np.stack(pix), contract, self.layer, np.stack(val))
                continue
            # windows decimated to different shapes: prepare one by one, same function
            yield np.concatenate([prepare_batch(p[None], contract, self.layer, v[None])
                                  for p, v in zip(pix, val, strict=True)])

    # -- caller side ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[EmbeddedBatch]:
        in_flight = self.prefetch + 2 * self.workers
        raw: queue.Queue[Any] = queue.Queue(maxsize=self.prefetch)
        results: queue.Queue[Any] = queue.Queue(maxsize=in_flight + self.workers + 1)
        tickets = threading.Semaphore(in_flight)  # batches read but not yet handed on
        stop = threading.Event()
        threads = [threading.Thread(target=self._read_all, args=(raw, results, tickets, stop),
                                    name="analog-tile-reader", daemon=True)]
        threads += [threading.Thread(target=self._work, args=(raw, results, stop),
                                     name=f"analog-tile-worker-{i}", daemon=True)
                    for i in range(self.workers)]
        for t in threads:
            t.start()
        pending: dict[int, EmbeddedBatch] = {}
        want, running = 0, self.workers
        try:
            while running or pending:
                if want in pending:
                    batch = pending.pop(want)
                    want += 1
                    tickets.release()
                    self.times.tiles += len(batch.payloads)
                    yield batch
                    check_cancelled(self.fb, "scoring")
                    continue
                if not running:
                    break
                item = self._next(results)
                if item is _WORKER_DONE:
                    running -= 1
                elif isinstance(item, _Failure):
                    raise item.error
                else:
                    pending[item[0]] = item[1]
        finally:
            stop.set()
            for t in threads:
                t.join()

    def _next(self, results: queue.Queue[Any]) -> Any:
        while True:
            try:
                return results.get(timeout=POLL_S)
            except queue.Empty:
                if self.fb.isCanceled():
                    raise AnalogCancelled(
                        "cancelled by the user while reading tiles; no output was written or "
                        "changed"
                    ) from None


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()
_WORKER_DONE = object()


def _put(q: queue.Queue[Any], stop: threading.Event, item: Any) -> None:
    """Put ``item``, waiting for room but giving up as soon as the caller has stopped."""
    while not stop.is_set():
        try:
            q.put(item, timeout=POLL_S)
            return
        except queue.Full:
            continue


def _get(q: queue.Queue[Any], stop: threading.Event) -> Any:
    """The next item, or None once the caller has stopped."""
    while not stop.is_set():
        try:
            return q.get(timeout=POLL_S)
        except queue.Empty:
            continue
    return None


def _acquire(tickets: threading.Semaphore, stop: threading.Event) -> bool:
    """Wait for a free slot among the batches in flight; False once the caller has stopped."""
    while not stop.is_set():
        if tickets.acquire(timeout=POLL_S):
            return True
    return False
