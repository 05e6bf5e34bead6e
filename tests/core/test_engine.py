"""The tile-embedding stream and the streaming writer, against hand-computed oracles.

The layout model (tests/onnx_models.py) makes every pixel's position matter, so these tests fail
when a tile is transposed, flipped, shifted or mixed up with its neighbour in a batch.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from osgeo import ogr

from analog_plugin.core.embedding_stream import TileEmbeddingStream, TileRequest
from analog_plugin.core.errors import AnalogCancelled, OutputError, RasterReadError
from analog_plugin.core.feedback import NullFeedback, RecordingFeedback
from analog_plugin.core.model import EmbeddingModel
from analog_plugin.core.pipeline import build_library, score_raster
from analog_plugin.core.preprocess import prepare_image
from analog_plugin.core.raster_reader import RasterSource
from analog_plugin.core.tiling import make_grid
from tests.core.conftest import MakeRaster
from tests.onnx_models import expected_layout_embedding, make_layout_model

S = 16
TILE_MODE = {"stretch": "tile", "percentiles": [2, 98], "min_span_fraction": 0.1}


@pytest.fixture
def layout_model(tmp_path: Path) -> Path:
    return make_layout_model(tmp_path / "layout.onnx", S, preprocessing=TILE_MODE)


@pytest.fixture
def texture(make_raster: MakeRaster) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(7)
    a = rng.integers(0, 4000, size=(40, 56)).astype(np.uint16)  # 16-bit, not a multiple of S
    return make_raster(a), a


def oracle(tile: np.ndarray) -> np.ndarray:
    """Per-tile 2-98 % stretch of a (S, S) tile, written out with numpy, then the model."""
    lo, hi = np.percentile(tile.astype(np.float64), [2, 98])
    return expected_layout_embedding(np.clip((tile - lo) / (hi - lo), 0, 1))


def _stream(path: Path, model_path: Path, overlap: float = 0.0, batch: int = 4,
            fb: object = None) -> tuple[dict[int, np.ndarray], TileEmbeddingStream]:
    model = EmbeddingModel(model_path, device="cpu")
    with RasterSource(path) as src:
        grid = make_grid(src.info.width, src.info.height, S, S, overlap)
        stream = TileEmbeddingStream(
            src, (TileRequest(t, t.window) for t in grid), model, src.layer_stats(),
            fb or NullFeedback(), batch_size=batch, min_valid=1.0,  # type: ignore[arg-type]
        )
        out = {t.tile_id: e for b in stream for t, e in zip(b.payloads, b.embeddings,
                                                             strict=True)}
    return out, stream


def test_stream_embeddings_match_hand_computed_layout(texture: tuple[Path, np.ndarray],
                                                      layout_model: Path) -> None:
    path, a = texture
    got, stream = _stream(path, layout_model)
    # 56 x 40 px: 3 x 2 full tiles; the padded edge tiles (valid 0.5 / 0.75) are skipped.
    assert sorted(got) == [0, 1, 2, 4, 5, 6]
    for tile_id, emb in got.items():
        r, c = divmod(tile_id, 4)
        tile = a[r * S:(r + 1) * S, c * S:(c + 1) * S]
        np.testing.assert_allclose(emb, oracle(tile), atol=2e-5)
        # The oracle has the power to see layout errors:
        for wrong in (tile.T, tile[::-1], tile[:, ::-1], np.roll(tile, 1, axis=1)):
            assert np.abs(oracle(wrong) - emb).max() > 1e-3
    assert stream.times.tiles == 6 and stream.times.skipped == 6


def test_stream_equals_sequential_path(texture: tuple[Path, np.ndarray],
                                       layout_model: Path) -> None:
    """Batched and threaded == one tile at a time through read_window + prepare_image."""
    path, _ = texture
    got, _ = _stream(path, layout_model, overlap=50.0, batch=5)
    model = EmbeddingModel(layout_model, device="cpu")
    with RasterSource(path) as src:
        layer = src.layer_stats()
        grid = make_grid(src.info.width, src.info.height, S, S, 50.0)
        for t in grid:
            td = src.read_window(t.window)
            if td.valid_frac < 1.0:
                assert t.tile_id not in got
                continue
            x = prepare_image(td.pixels, model.contract, td.valid, layer)
            np.testing.assert_allclose(got[t.tile_id], model.embed(x[None])[0], atol=1e-6)
    assert len(got) == 24  # (56 - 16) / 8 + 1 = 6 columns x (40 - 16) / 8 + 1 = 4 rows, all whole


@pytest.mark.parametrize(("owner", "method", "at", "error"), [
    (RasterSource, "read_window", 5, RasterReadError("disk went away at call 5")),  # reader
    (EmbeddingModel, "embed", 3, MemoryError("out of memory at call 3")),  # a worker
])
def test_thread_errors_surface_with_their_type(
        texture: tuple[Path, np.ndarray], layout_model: Path, monkeypatch: pytest.MonkeyPatch,
        owner: type, method: str, at: int, error: Exception) -> None:
    path, _ = texture
    calls = {"n": 0}
    real = getattr(owner, method)

    def flaky(self: object, *a: object, **k: object) -> object:
        calls["n"] += 1
        if calls["n"] == at:
            raise error
        return real(self, *a, **k)

    monkeypatch.setattr(owner, method, flaky)
    with pytest.raises(type(error), match=f"at call {at}"):
        _stream(path, layout_model, batch=1)


def test_cancel_stops_the_stream(texture: tuple[Path, np.ndarray], layout_model: Path) -> None:
    path, _ = texture
    fb = RecordingFeedback(cancel_after=1)
    with pytest.raises(AnalogCancelled):
        _stream(path, layout_model, batch=1, fb=fb)


# -- the score job: streaming, atomic and safe output ----------------------------------------
@pytest.fixture
def scored(tmp_path: Path, texture: tuple[Path, np.ndarray],
           layout_model: Path) -> tuple[Path, Path, Path]:
    path, a = texture
    img = tmp_path / "ex" / "cls"
    img.mkdir(parents=True)
    from tests.core.conftest import write_raster

    write_raster(img / "e.tif", a[:S, :S], crs=None)
    lib = tmp_path / "lib.gpkg"
    build_library(model_path=layout_model, output_path=lib, image_folder=img.parent)
    out = tmp_path / "scores.gpkg"
    score_raster(raster_path=path, library_path=lib, model_path=layout_model, output_path=out,
                 tile_size=S, min_valid=1.0, batch_size=2)
    return path, lib, out


def test_scores_match_oracle_and_metadata_records_the_run(
        scored: tuple[Path, Path, Path], texture: tuple[Path, np.ndarray],
        layout_model: Path) -> None:
    _, _, out = scored
    _, a = texture
    exemplar = oracle(a[:S, :S])  # the image file is its own layer: same per-tile stretch
    ds = ogr.Open(str(out))
    lyr = ds.GetLayerByName("scores")
    feats = {f.GetField("tile_id"): f.GetField("score") for f in lyr}
    for tile_id, score in feats.items():
        r, c = divmod(tile_id, 4)
        e = oracle(a[r * S:(r + 1) * S, c * S:(c + 1) * S])
        assert score == pytest.approx((1 + float(e @ exemplar)) / 2, abs=2e-5)
    assert feats[0] == pytest.approx(1.0, abs=1e-6)
    meta = lyr.GetMetadata()
    assert meta["analog_model_version"] == "test-0.1"
    assert len(meta["analog_model_sha256"]) == 64
    run = json.loads(meta["analog_parameters"])
    assert run["TILE_SIZE"] == S and run["MIN_VALID"] == 1.0 and run["BATCH_SIZE"] == 2


def test_cancel_mid_write_keeps_old_output_and_no_temp(scored: tuple[Path, Path, Path],
                                                       layout_model: Path) -> None:
    path, lib, out = scored
    before = out.read_bytes()
    fb = RecordingFeedback(cancel_after=3)  # after validation, between written batches
    with pytest.raises(AnalogCancelled):
        score_raster(raster_path=path, library_path=lib, model_path=layout_model,
                     output_path=out, tile_size=S, min_valid=1.0, batch_size=1, feedback=fb)
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".")) == []


def test_stale_temp_files_and_old_side_files_are_cleaned(scored: tuple[Path, Path, Path],
                                                         layout_model: Path) -> None:
    path, lib, out = scored
    dead = out.with_name(".scores.tmp-999999999-0123456789.gpkg")  # no such pid
    dead.write_bytes(b"half a GeoPackage")
    alive = out.with_name(f".scores.tmp-{os.getppid()}-abcdefabcd.gpkg")  # a live process
    alive.write_bytes(b"someone else's run")
    for suffix in ("-wal", "-shm"):
        Path(str(out) + suffix).write_bytes(b"stale side file of the old target")
    score_raster(raster_path=path, library_path=lib, model_path=layout_model, output_path=out,
                 tile_size=S, min_valid=1.0)
    assert not dead.exists() and alive.exists()
    assert not Path(str(out) + "-wal").exists() and not Path(str(out) + "-shm").exists()
    with sqlite3.connect(out) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("SELECT COUNT(*) FROM scores").fetchone() == (6,)


def test_output_equal_to_an_input_is_refused(scored: tuple[Path, Path, Path],
                                             layout_model: Path) -> None:
    path, lib, _ = scored
    before = lib.read_bytes()
    with pytest.raises(OutputError, match="same file as LIBRARY"):
        score_raster(raster_path=path, library_path=lib, model_path=layout_model,
                     output_path=lib, tile_size=S)
    assert lib.read_bytes() == before
    from osgeo import gdal

    gpkg_raster = path.with_suffix(".gpkg")  # a raster can live in a GeoPackage too
    gdal.Translate(str(gpkg_raster), str(path), format="GPKG")
    before = gpkg_raster.read_bytes()
    with pytest.raises(OutputError, match="same file as INPUT"):
        score_raster(raster_path=gpkg_raster, library_path=lib, model_path=layout_model,
                     output_path=gpkg_raster, tile_size=S)
    assert gpkg_raster.read_bytes() == before


# -- batch-parallel workers -------------------------------------------------------------------
def test_workers_keep_request_order_and_results(texture: tuple[Path, np.ndarray],
                                                layout_model: Path) -> None:
    """Three workers finishing out of order still yield batches in request order, with the
    embeddings a single worker gives."""
    import threading
    import time

    path, _ = texture
    model = EmbeddingModel(layout_model, device="cpu")
    real, first = model.embed, threading.Event()

    def slow_first(batch: np.ndarray) -> np.ndarray:
        if not first.is_set():  # the first batch finishes last: the others overtake it
            first.set()
            time.sleep(0.3)
        return real(batch)

    runs = {}
    for workers in (1, 3):
        if workers == 3:
            model.embed = slow_first  # type: ignore[method-assign]
        with RasterSource(path) as src:
            grid = make_grid(src.info.width, src.info.height, S, S, 50.0)
            stream = TileEmbeddingStream(
                src, (TileRequest(t, t.window) for t in grid), model, src.layer_stats(),
                NullFeedback(), batch_size=1, min_valid=1.0, workers=workers,
            )
            runs[workers] = [(t.tile_id, e) for b in stream for t, e in
                             zip(b.payloads, b.embeddings, strict=True)]
    ids = [i for i, _ in runs[3]]
    assert ids == sorted(ids) and ids == [i for i, _ in runs[1]] and len(ids) == 24
    for (_, a), (_, b) in zip(runs[1], runs[3], strict=True):
        np.testing.assert_array_equal(a, b)


def test_plan_workers() -> None:
    from analog_plugin.core.threads import plan_workers

    assert plan_workers(1) == (1, 1)
    assert plan_workers(2) == (2, 1)
    assert plan_workers(3) == (3, 1)
    assert plan_workers(16) == (4, 4)
    assert plan_workers(10) == (4, 2)
    assert plan_workers(8, "CUDAExecutionProvider") == (4, 1)


def test_chunks_go_to_the_model_one_by_one_on_cpu_and_gathered_on_cuda(
        texture: tuple[Path, np.ndarray], layout_model: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With room for 3 tiles per preparation chunk and batches of 8: on CPU the model gets
    chunks of 3, 3, 2 tiles; on CUDA one run of the whole batch (the GPU wants big runs). Same
    embeddings either way, and every model call's time lands in inference_s."""
    import time

    import analog_plugin.core.embedding_stream as es
    from analog_plugin.core.model import CUDA

    path, _ = texture
    monkeypatch.setattr(es, "PREP_PIXELS", 3 * S * S)
    model = EmbeddingModel(layout_model, device="cpu")
    real = model.embed
    runs: dict[str, list[np.ndarray]] = {}
    sizes: dict[str, list[int]] = {}
    times = {}
    for provider in ("cpu", CUDA):
        model.provider = provider
        sizes[provider] = []

        def spy(batch: np.ndarray, seen: list[int] = sizes[provider]) -> np.ndarray:
            seen.append(batch.shape[0])
            time.sleep(0.02)
            return real(batch)

        model.embed = spy  # type: ignore[method-assign]
        with RasterSource(path) as src:
            grid = make_grid(src.info.width, src.info.height, S, S, 50.0)
            stream = TileEmbeddingStream(
                src, (TileRequest(t, t.window) for t in grid), model, src.layer_stats(),
                NullFeedback(), batch_size=8, min_valid=1.0, workers=1,
            )
            runs[provider] = [e for b in stream for e in b.embeddings]
            times[provider] = stream.times
    assert sizes["cpu"] == [3, 3, 2] * 3 and sizes[CUDA] == [8, 8, 8]
    np.testing.assert_array_equal(np.stack(runs["cpu"]), np.stack(runs[CUDA]))
    assert times["cpu"].inference_s >= 9 * 0.02 and times[CUDA].inference_s >= 3 * 0.02
    assert times["cpu"].preprocess_s > 0 and times[CUDA].preprocess_s > 0
