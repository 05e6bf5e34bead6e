"""Model v2 building blocks: grouped folds, raw-pixel views, the pretrained trunk, the head, the
composed ONNX graph. Oracles are hand-made (fold rules, pixel positions) or independent paths
(torch vs the composed onnxruntime graph, the plugin's own contract validation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from analog_train.data import TileLabel
from analog_train.efficientnet_lite import (
    VARIANTS,
    LiteTrunk,
    load_pretrained,
    package_state,
    pretrained_state,
)
from analog_train.export import contract_metadata
from analog_train.export_v2 import assemble
from analog_train.features import TrunkSpec, trunk_key
from analog_train.folds import (
    PREVIOUS_SPLIT,
    make_folds,
    observation_folds,
    previous_model_split,
)
from analog_train.head import HeadConfig, center_images, embed, mean_center, train_head
from analog_train.views import ViewConfig, _affine_crop, random_view

from analog_plugin.core.model import EmbeddingModel


def _labels() -> list[TileLabel]:
    """12 observations: dark dunes in 4 (like the real set), craters in 6, other everywhere."""
    rows = []
    for o in range(12):
        obs = f"OBS_{o:02d}"
        rows += [TileLabel(f"{obs}_{i}.jpg", "other", obs) for i in range(3 + o % 3)]
        if o < 4:
            rows += [TileLabel(f"{obs}_d{i}.jpg", "dark_dune", obs) for i in range(2 + o)]
        if o % 2 == 0:
            rows.append(TileLabel(f"{obs}_c.jpg", "crater", obs))
    return rows


def test_folds_keep_observations_apart_and_every_class_in_every_fold() -> None:
    labels = _labels()
    aid = {"Desert": [f"d{i}.jpg" for i in range(9)], "River": [f"r{i}.jpg" for i in range(5)]}
    folds = make_folds(labels, aid, k=4, repeats=2)
    assert [f.name for f in folds] == [f"r{r}f{i}" for r in range(2) for i in range(4)]
    for r in range(2):
        rep = [f for f in folds if f.repeat == r]
        seen: list[str] = []
        for f in rep:
            classes = {t.cls for t in labels if t.observation in f.val_observations}
            assert classes == {"other", "dark_dune", "crater"}
            seen += list(f.val_observations)
        assert sorted(seen) == sorted({t.observation for t in labels})  # each exactly once
        aid_seen = [a for f in rep for a in f.val_aid]
        assert sorted(aid_seen) == sorted(f"{c}/{x}" for c, xs in aid.items() for x in xs)
    assert observation_folds(labels, 4, 1) == observation_folds(labels, 4, 1)  # deterministic
    with pytest.raises(ValueError, match="dark_dune"):
        make_folds(labels, aid, k=5, repeats=1)  # 4 observations cannot fill 5 folds


def test_affine_crop_is_exact_for_axis_aligned_views() -> None:
    a = np.arange(40 * 60, dtype=np.float32).reshape(1, 40, 60)
    window = a[0, 20:30, 10:20]
    np.testing.assert_array_equal(_affine_crop(a, 10, 0.0, False, 15, 25)[0], window)
    np.testing.assert_array_equal(_affine_crop(a, 10, 0.0, True, 15, 25)[0], window[:, ::-1])
    np.testing.assert_allclose(_affine_crop(a, 10, np.pi / 2, False, 15, 25)[0],
                               np.rot90(window, 1), atol=1e-3)


def test_random_views_are_seeded_sized_and_mark_nodata_margins() -> None:
    img = np.random.default_rng(0).integers(1, 255, (1, 64, 64)).astype(np.float32)
    cfg = ViewConfig(margin_prob=1.0, clean_prob=0.0)
    a = [random_view(img, np.random.default_rng(5), cfg) for _ in range(2)]
    np.testing.assert_array_equal(a[0][0], a[1][0])
    for seed in range(20):
        x, valid = random_view(img, np.random.default_rng(seed), cfg)
        side = x.shape[-1]
        assert x.shape == (1, side, side) and 32 <= side <= 64
        assert not valid.all() and np.all(x[:, ~valid] == 0)  # margin: zero and invalid
        assert valid.any()


def test_head_training_resumes_bit_for_bit(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16))
    labels = [f"mars:c{i % 3}" for i in range(30)]
    views = np.stack([centres[i % 3] + 0.3 * rng.normal(size=(4, 16)) for i in range(30)])
    places = [f"p{i}" for i in range(30)]
    cfg = HeadConfig(hidden=16, embedding_dim=8, batch_images=12, epochs=2, steps_per_epoch=3)
    full = train_head(cfg, views.astype(np.float32), labels, places, tmp_path / "a",
                      log=lambda s: None)
    class Killed(Exception):
        pass

    def kill_after_first_epoch(msg: str) -> None:
        if msg.startswith("head epoch 1/"):
            raise Killed  # the process dies after the first checkpoint

    with pytest.raises(Killed):
        train_head(cfg, views.astype(np.float32), labels, places, tmp_path / "b",
                   log=kill_after_first_epoch)
    assert torch.load(tmp_path / "b" / "head_ckpt.pt", weights_only=False)["epoch"] == 1
    resumed = train_head(cfg, views.astype(np.float32), labels, places, tmp_path / "b",
                         resume=True, log=lambda s: None)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    e = embed(full, views[:, 0].astype(np.float32), mean_center(full, views[:, 0]))
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)


class _FakeTrunk(torch.nn.Module):
    """A stand-in for the int8 trunk: position-sensitive features (row and column profiles)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=(1, 3)), x.mean(dim=(1, 2))], dim=1)  # (N, 2S)


@pytest.mark.parametrize("views", [1, 2])
def test_composed_graph_equals_torch_and_passes_the_plugin_contract(tmp_path: Path,
                                                                    views: int) -> None:
    s = 8
    trunk = tmp_path / "trunk.onnx"
    torch.onnx.export(_FakeTrunk(), (torch.zeros(2, 1, s, s),), str(trunk), input_names=["x"],
                      output_names=["features"],
                      dynamic_axes={"x": {0: "n"}, "features": {0: "n"}}, opset_version=17,
                      dynamo=False)
    rng = np.random.default_rng(1)
    feats3 = rng.normal(size=(20, 3, 2 * s)).astype(np.float32)
    head = train_head(HeadConfig(hidden=8, embedding_dim=4, batch_images=8, epochs=1,
                                 steps_per_epoch=2), feats3,
                      [f"mars:c{i % 2}" for i in range(20)], [f"p{i}" for i in range(20)],
                      log=lambda s: None)
    center = mean_center(head, feats3[:, 0])
    meta = contract_metadata(input_channels=1, input_size=s, mean=[0.5], std=[0.5],
                             embedding_dim=4, version="test-2", training_data="synthetic",
                             tile_px=12)
    out = tmp_path / "model.onnx"
    assemble(trunk, head, center, s, meta, out, views)
    x = rng.normal(size=(5, 1, s, s)).astype(np.float32)
    turned = np.ascontiguousarray(x[:, :, ::-1, ::-1])
    with torch.no_grad():
        t = torch.from_numpy(x)
        feats = _FakeTrunk()(t)
        if views == 2:
            feats = (feats + _FakeTrunk()(torch.flip(t, dims=(2, 3)))) / 2
    want = embed(head, feats.numpy(), center)
    model = EmbeddingModel(out, device="cpu")  # validates the contract and unit norms
    np.testing.assert_allclose(model.embed(x), want, atol=1e-5)
    assert model.contract.tile_px == 12 and model.embedding_dim == 4
    if views == 2:  # the 180-degree view is inside the graph: a turned tile embeds identically
        np.testing.assert_allclose(model.embed(turned), model.embed(x), atol=1e-5)
    else:  # one view: the row/column profiles see the turn
        assert np.abs(model.embed(turned) - model.embed(x)).max() > 1e-3
    assert not list(tmp_path.glob(".model.parts"))
    with pytest.raises(ValueError, match="views must be 1 or 2"):
        assemble(trunk, head, center, s, meta, tmp_path / "bad.onnx", 3)


@pytest.mark.parametrize("index", sorted(VARIANTS))
def test_variant_table_matches_the_package_weights(index: int) -> None:
    """Every block's widths, kernel and stride in ``VARIANTS`` against the package's own
    state dict (an independent record of the architecture), and a strict load."""
    variant = VARIANTS[index]
    state = package_state(variant)
    specs = variant.block_specs()
    assert len({k.split(".")[1] for k in state if k.startswith("_blocks.")}) == len(specs)
    for b, (c_in, c_out, k, _stride, e) in enumerate(specs):
        dw = state[f"_blocks.{b}._depthwise_conv.weight"]
        assert dw.shape == (c_in * e, 1, k, k), b
        assert state[f"_blocks.{b}._project_conv.weight"].shape[:2] == (c_out, c_in * e), b
    assert sum(s[3] == 2 for s in specs) == 4  # with the stem's, 5 halvings: 64 px -> 2
    trunk = load_pretrained(LiteTrunk(variant)).eval()
    with torch.no_grad():
        out = trunk(torch.zeros(1, 1, 64, 64))
    assert out.shape == (1, variant.widths[-1], 2, 2)  # 64 px / 32


def test_pretrained_trunk_loads_strictly_with_a_gray_stem() -> None:
    variant = VARIANTS[TrunkSpec().variant]
    state = pretrained_state(variant)
    trunk = load_pretrained(LiteTrunk(variant)).eval()
    assert trunk._conv_stem.weight.shape == (32, 1, 3, 3)
    assert trunk.out_channels == variant.widths[-1]
    # Gray stem = the RGB stem fed the same gray image three times.
    rgb_stem = package_state(variant)["_conv_stem.weight"]
    g = torch.rand(1, 1, 16, 16)
    assert torch.equal(state["_conv_stem.1.weight"], rgb_stem.sum(dim=1, keepdim=True))
    # TF "SAME" for a stride-2 3x3 on an even input: one pixel of padding at bottom/right only.
    rgb = torch.nn.functional.conv2d(torch.nn.functional.pad(g.repeat(1, 3, 1, 1), (0, 1, 0, 1)),
                                     rgb_stem, stride=2)
    with torch.no_grad():
        gray = trunk._conv_stem(g)
    torch.testing.assert_close(gray, rgb, atol=1e-5, rtol=1e-5)


def test_trunk_spec_taps_are_stage_ends() -> None:
    """Taps by hand: Lite0's stages end at blocks 1, 3, 5, 8, 11, 15, 16; Lite2's at 1, 4, 7,
    11, 15, 20, 21."""
    assert TrunkSpec(variant=0).taps == (8, 11, 16)
    assert TrunkSpec(variant=2).taps == (11, 15, 21)
    assert TrunkSpec(variant=2, tap_stages=(3, 6)).taps == (7, 20)


def test_previous_split_becomes_a_named_fold_with_its_validation_side() -> None:
    split = {"seed": 0, "hirise": {"train_observations": ["A"], "val_observations": ["B", "C"]},
             "aid": {"train": {"Desert": ["d1.jpg"]},
                     "val": {"Desert": ["d2.jpg"], "River": ["r1.jpg"]}}}
    fold = previous_model_split(split)
    assert fold.name == PREVIOUS_SPLIT == "v1split"
    assert fold.val_observations == {"B", "C"}
    assert fold.val_aid == {"Desert/d2.jpg", "River/r1.jpg"}
    with pytest.raises(ValueError, match="'hirise' and 'aid'"):
        previous_model_split({"hirise": [], "aid": {}})


def test_centre_images_are_the_mars_ones_unless_there_are_none() -> None:
    mars = np.array([True, False, True, False, False])
    idx = np.array([0, 1, 3, 4])
    np.testing.assert_array_equal(center_images(HeadConfig(), idx, mars), [0])
    np.testing.assert_array_equal(center_images(HeadConfig(center_on_mars=False), idx, mars),
                                  idx)
    earth_only = np.array([1, 3])
    np.testing.assert_array_equal(center_images(HeadConfig(), earth_only, mars), earth_only)


def test_trunk_key_follows_what_the_trunk_depends_on() -> None:
    """train_v2.py reuses trunk_int8.onnx only under the same key: a changed variant, input
    size, calibration seed or corpus must rebuild it; the same inputs must not."""
    base = trunk_key(TrunkSpec(), 0, 100)
    assert base == trunk_key(TrunkSpec(), 0, 100)
    changed = {trunk_key(TrunkSpec(variant=0), 0, 100),
               trunk_key(TrunkSpec(input_size=144), 0, 100),
               trunk_key(TrunkSpec(), 1, 100), trunk_key(TrunkSpec(), 0, 101)}
    assert base not in changed and len(changed) == 4
