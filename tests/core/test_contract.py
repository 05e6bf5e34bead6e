"""The pixel contract: one preparation for every path, the shipped model's declaration, a golden
embedding, legacy models, thread defaults, and the demo's dune precision on the shipped model."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from analog_plugin.core import threads
from analog_plugin.core.area_resize import area_weights
from analog_plugin.core.errors import ModelContractError
from analog_plugin.core.image_files import read_image_file
from analog_plugin.core.model import EmbeddingModel
from analog_plugin.core.model_metadata import parse_metadata
from analog_plugin.core.paths import bundled_model_path
from analog_plugin.core.preprocess import PixelContract, prepare_image, unit_contract
from analog_plugin.core.raster_reader import RasterSource
from analog_plugin.core.tiling import PixelWindow
from tests.core.conftest import DATA, MakeRaster
from tests.onnx_models import default_metadata

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from analog_train.data import TRAIN_PIXELS, prepare01  # noqa: E402
from analog_train.features import TrunkSpec  # noqa: E402


def test_area_weights_by_hand() -> None:
    w = area_weights(3, 2)  # output cell 0 covers [0, 1.5): pixel 0 whole + half of pixel 1
    np.testing.assert_allclose(w, [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]], atol=1e-7)
    np.testing.assert_allclose(area_weights(4, 2), [[.5, .5, 0, 0], [0, 0, .5, .5]])
    np.testing.assert_allclose(area_weights(2, 4).sum(axis=1), 1.0, atol=1e-7)


def test_whole_number_shrink_is_the_block_mean_by_hand() -> None:
    """256 -> 128 and 6 -> 2 px take the strided-add path; the oracle is the block mean written
    out (4 x 4 -> 2 x 2 by hand, then a float64 reshape-mean), and a 5 -> 2 resize, which has
    no whole factor, still gives the area weights' numbers."""
    from analog_plugin.core.area_resize import resize_batch

    tile = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    np.testing.assert_allclose(resize_batch(tile, 2)[0, 0], [[2.5, 4.5], [10.5, 12.5]])
    rng = np.random.default_rng(3)
    for side, size in ((256, 128), (6, 2), (384, 128)):
        x = rng.integers(0, 4096, (3, 2, side, side)).astype(np.float32)
        k = side // size
        want = x.astype(np.float64).reshape(3, 2, size, k, size, k).mean(axis=(3, 5))
        got = resize_batch(x, size)
        assert got.dtype == np.float32 and got.shape == (3, 2, size, size)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-3)
    odd = rng.random((1, 1, 5, 5), dtype=np.float32)
    w = area_weights(5, 2).astype(np.float64)
    np.testing.assert_allclose(resize_batch(odd, 2)[0, 0], w @ odd[0, 0] @ w.T, atol=1e-6)
    # rectangular windows: one axis a whole factor (block mean), the other not (area weights)
    for rows, cols in ((8, 5), (5, 8)):
        x = rng.random((rows, cols)).astype(np.float32)
        wr, wc = (area_weights(n, 2).astype(np.float64) for n in (rows, cols))
        np.testing.assert_allclose(resize_batch(x[None, None], 2)[0, 0], wr @ x @ wc.T,
                                   atol=1e-6)
    np.testing.assert_allclose(area_weights(8, 2)[0], [.25] * 4 + [0] * 4)  # the block mean


def test_tile_stretch_by_hand_and_span_floor() -> None:
    c = unit_contract(4, stretch="tile", min_span_fraction=0.5)
    tile = np.array([[0, 10, 20, 30]] * 4, np.float32)
    lo, hi = np.percentile(tile, [2, 98])
    from analog_plugin.core.preprocess import LayerStats

    wide = LayerStats((0.0,), (20.0,))  # floor 10 < span 29.4: no effect
    x = prepare_image(tile, c, layer=wide)[0]
    np.testing.assert_allclose(x, np.clip((tile - lo) / (hi - lo), 0, 1), atol=1e-6)
    flat = np.full((4, 4), 100.0, np.float32)
    flat[0, 0] = 101.0  # a nearly flat tile: span 1 floored to 0.5 x 200 = 100, centred
    x = prepare_image(flat, c, layer=LayerStats((0.0,), (200.0,)))[0]
    assert np.abs(x - 0.5).max() < 0.01  # stays grey instead of becoming black/white noise


def test_prepare_batch_never_writes_into_the_callers_pixels() -> None:
    """prepare_batch stretches and normalises in place: only arrays it made itself. float32
    tiles already at the model size (the one input numpy would not copy), with and without
    masks, 1 and 3 bands, every stretch mode: the input is unchanged, and the result equals
    the by-hand stretch of an untouched copy ((x - lo) / (hi - lo), clipped, then (v - .5) / .5).
    """
    from analog_plugin.core.preprocess import LayerStats, prepare_batch

    rng = np.random.default_rng(5)
    for bands, channels in ((1, 1), (3, 1), (1, 3)):
        px = (rng.random((3, bands, 8, 8)) * 200).astype(np.float32)
        layer = LayerStats((0.0,) * bands, (200.0,) * bands)
        valid = rng.random((3, 8, 8)) > 0.2
        for stretch in ("tile", "layer"):
            c = PixelContract(8, channels, (0.5,) * channels, (0.5,) * channels,
                              stretch=stretch, min_span_fraction=0.0)
            for v in (None, valid):
                before = px.copy()
                out = prepare_batch(px, c, layer, v)
                np.testing.assert_array_equal(px, before)
                assert not np.may_share_memory(out, px)
    # the by-hand oracle on a 1-band layer-mode batch: (x / 200 - 0.5) / 0.5
    c = PixelContract(8, 1, (0.5,), (0.5,), stretch="layer")
    x = prepare_batch(px[:, :1], c, LayerStats((0.0,), (200.0,)))
    np.testing.assert_allclose(x, (np.clip(px[:, :1] / 200.0, 0, 1) - 0.5) / 0.5, atol=1e-6)


def test_percentile_step_samples_every_other_row_and_column_by_hand() -> None:
    """Step 2 on a 4 x 4 tile: the percentiles come from pixels (0,0), (0,2), (2,0), (2,2) only
    (values 10, 20, 30, 40); the 12 others (0 and 1000) would widen the stretch if counted."""
    from analog_plugin.core.preprocess import LayerStats

    tile = np.zeros((4, 4), np.float32)
    tile[1::2, :] = 1000.0
    tile[0, 0], tile[0, 2], tile[2, 0], tile[2, 2] = 10.0, 20.0, 30.0, 40.0
    # linear percentiles of [10, 20, 30, 40]: rank 0.02 * 3 = 0.06 -> 10.6; 0.98 * 3 = 2.94 -> 39.4
    lo, hi = 10.6, 39.4
    layer = LayerStats((0.0,), (1000.0,))
    c2 = unit_contract(4, stretch="tile", min_span_fraction=0.0, percentile_step=2)
    x = prepare_image(tile, c2, layer=layer)[0]
    np.testing.assert_allclose(x, np.clip((tile - lo) / (hi - lo), 0, 1), atol=1e-6)
    assert x[0, 0] == 0.0 and x[2, 2] == 1.0 and x[1, 1] == 1.0
    c1 = unit_contract(4, stretch="tile", min_span_fraction=0.0)  # every pixel: 0 .. 1000
    assert prepare_image(tile, c1, layer=layer)[0][2, 2] < 0.1
    # invalid pixels stay out of the sample too: (2, 2) masked -> [10, 20, 30] -> 10.4 .. 29.6
    valid = np.ones((4, 4), bool)
    valid[2, 2] = False
    x = prepare_image(tile, c2, valid, layer)[0]
    np.testing.assert_allclose(x[0, 2], (20.0 - 10.4) / (29.6 - 10.4), atol=1e-6)


def test_percentile_step_in_metadata() -> None:
    props = {k: json.dumps(v) for k, v in default_metadata(32).items()}
    props["preprocessing"] = json.dumps({"stretch": "tile", "percentile_step": 2})
    meta = parse_metadata(props)
    assert meta.contract().percentile_step == 2
    assert "sampled every 2 px" in meta.contract().describe()
    props["preprocessing"] = json.dumps({"stretch": "tile"})
    assert parse_metadata(props).contract().percentile_step == 1  # absent: every pixel
    assert dict(parse_metadata(props).preprocessing).get("percentile_step") is None


def test_raster_tile_image_file_and_training_get_the_same_numbers(
        tmp_path: Path, make_raster: MakeRaster) -> None:
    """A HiRISE tile cut from a georeferenced raster, saved as an image file, or decoded by the
    training loader becomes the same model input (one function, one contract)."""
    tile = np.asarray(Image.open(DATA / "golden_tile.png"))  # 204 x 204 real HiRISE uint8
    contract = unit_contract(96, 1, **TRAIN_PIXELS)  # type: ignore[arg-type]
    canvas = np.zeros((300, 300), np.uint8) + 7
    canvas[50:254, 60:264] = tile
    with RasterSource(make_raster(canvas)) as src:
        td = src.read_window(PixelWindow(60, 50, 204, 204))
        from_raster = prepare_image(td.pixels, contract, td.valid, src.layer_stats())
    png = tmp_path / "t.png"
    Image.fromarray(tile).save(png)
    pixels, valid = read_image_file(png)
    from_file = prepare_image(pixels, contract, valid)
    from_training = prepare01(tile[None].astype(np.uint8), 96)
    np.testing.assert_allclose(from_raster, from_file, atol=1e-6)
    np.testing.assert_allclose(from_file[0], from_training, atol=1e-6)
    assert from_file.shape == (1, 96, 96) and 0 <= from_file.min() and from_file.max() <= 1


def test_shipped_model_declares_the_training_contract() -> None:
    m = EmbeddingModel(bundled_model_path(), device="cpu")
    c = m.contract
    assert (c.stretch, c.percentiles, c.min_span_fraction) == ("tile", (2.0, 98.0), 0.1)
    assert c.percentile_step == TRAIN_PIXELS["percentile_step"] == 2
    # v2 (scripts/train_v2.py): the trunk's declared tile and input, ImageNet-style normalisation
    v2 = TrunkSpec()
    assert (c.tile_px, c.input_size) == (v2.tile_px, v2.input_size) == (160, 128)
    assert (c.mean, c.std) == ((0.5,), (0.5,))
    assert m.metadata.version.startswith("2.")
    assert m.embedding_dim == 128 and m.channels == 1
    # the calibrated comparetiles threshold (scripts/evaluate.py --card stamps it)
    assert m.metadata.same_landform_cos is not None and 0 < m.metadata.same_landform_cos < 1


def test_golden_embedding_of_the_shipped_model() -> None:
    """Guards the whole chain (file decode, stretch, resize, normalisation, ONNX) against silent
    drift. After retraining, regenerate tests/data/golden_embedding.json (see its 'source')."""
    golden = json.loads((DATA / "golden_embedding.json").read_text())
    m = EmbeddingModel(bundled_model_path(), device="cpu")
    if m.sha256 != golden["model_sha256"]:
        pytest.fail("the bundled model changed: regenerate tests/data/golden_embedding.json")
    pixels, valid = read_image_file(DATA / "golden_tile.png")
    e = m.embed(prepare_image(pixels, m.contract, valid)[None])[0]
    np.testing.assert_allclose(e, np.asarray(golden["embedding"]), atol=1e-5)


def test_models_without_contract_keys_keep_their_old_behaviour() -> None:
    props = {k: json.dumps(v) for k, v in default_metadata(32).items()}
    c = parse_metadata(props).contract()
    assert (c.stretch, c.tile_px) == ("layer", 32)
    props["preprocessing"] = json.dumps({"stretch": "tile"})
    props["tile_px"] = "200"
    c = parse_metadata(props).contract()
    assert (c.stretch, c.tile_px, c.min_span_fraction) == ("tile", 200, 0.1)


@pytest.mark.parametrize(("key", "value", "word"), [
    ("preprocessing", '{"stretch": "global"}', "stretch"),
    ("preprocessing", '{"percentiles": [98, 2]}', "percentiles"),
    ("preprocessing", '"tile"', "JSON object"),
    ("preprocessing", '{"min_span_fraction": 3}', "min_span_fraction"),
    ("preprocessing", '{"percentile_step": 0}', "percentile_step"),
    ("preprocessing", '{"percentile_step": 2.5}', "percentile_step"),
    ("preprocessing", '{"percentile_step": 99}', "percentile_step"),
    ("tile_px", '"200"', "tile_px"),
    ("tile_px", "0", "tile_px"),
])
def test_bad_contract_keys_are_named(key: str, value: str, word: str) -> None:
    props = {k: json.dumps(v) for k, v in default_metadata(32).items()}
    props[key] = value
    with pytest.raises(ModelContractError, match=word):
        parse_metadata(props)


def test_pixel_contract_rejects_unknown_stretch() -> None:
    with pytest.raises(ValueError, match="stretch"):
        PixelContract(32, 1, (0.0,), (1.0,), stretch="global")


def test_threads_follow_affinity_cgroup_and_env(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # 1.5 cores' worth of time
    assert threads.cgroup_cpu_limit(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_cpu_limit(tmp_path) is None
    monkeypatch.setattr(threads, "affinity_cpus", lambda: 6)
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: 1.5)
    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    assert threads.default_threads() == 2
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: None)
    assert threads.default_threads() == 6
    monkeypatch.setenv(threads.THREADS_ENV, "3")
    assert threads.default_threads() == 3


def test_demo_dune_precision_in_top_13_with_the_shipped_model(tmp_path: Path) -> None:
    """The bundled demo (48 real HiRISE cells, 13 of them dunes) against the 8 Earth dune-field
    exemplars: at least 0.7 of the 13 best tiles are dunes (the model was trained for this)."""
    from analog_plugin.core.pipeline import build_library, score_raster

    lib = tmp_path / "lib.gpkg"
    build_library(output_path=lib, image_folder=REPO / "demo" / "earth_exemplars", device="cpu")
    out = tmp_path / "scores.gpkg"
    score_raster(raster_path=REPO / "demo" / "mars_scene.tif", library_path=lib,
                 output_path=out, tile_size=227, tile_units="metres", min_valid=0.3,
                 device="cpu")
    with open(REPO / "demo" / "mars_scene_truth.csv", newline="") as fh:
        truth = {(int(r["row"]), int(r["col"])): r["class"] for r in csv.DictReader(fh)}
    from osgeo import ogr

    ds = ogr.Open(str(out))
    rows = sorted(((f.GetField("score"), f.GetField("row"), f.GetField("col"))
                   for f in ds.GetLayerByName("scores")), reverse=True)
    ds = None
    assert len(rows) == 48
    top = [truth[(r, c)] for _, r, c in rows[:13]]
    precision = sum(t in ("dark_dune", "bright_dune") for t in top) / 13
    assert precision >= 0.7, top
