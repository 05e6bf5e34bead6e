from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from analog_train.augment import AugmentConfig, augment
from analog_train.data import prepare01, read_image, read_labels
from analog_train.export import contract_metadata, export_onnx, onnx_embed, parity, read_metadata
from analog_train.net import EmbeddingNet, count_macs
from analog_train.trainer import TrainConfig, build_model, seed_everything, train, train_step

from analog_plugin.core.preprocess import PixelContract, prepare_image

SIZE = 32
WIDTHS = (8, 8, 16, 16)


def _tiny(fixture_dir: Path) -> tuple[np.ndarray, list[str], list[str]]:
    labels = read_labels(fixture_dir / "hirise" / "labels.csv")
    imgs = [prepare01(read_image(fixture_dir / "hirise" / r.file), 40) for r in labels]
    labs = [f"mars:{r.cls}" for r in labels]
    places = [r.file for r in labels]
    for f in sorted((fixture_dir / "aid").glob("*.jpg")):
        imgs.append(prepare01(read_image(f), 40))
        labs.append("earth:" + f.name.split("_")[0])
        places.append(f.name)
    return np.stack(imgs).astype(np.float32), labs, places


def _cfg(**kw: object) -> TrainConfig:
    base = dict(input_size=SIZE, widths=WIDTHS, embedding_dim=16, batch_images=6,
                steps_per_epoch=2, epochs=1, warmup_steps=1,
                augment=AugmentConfig(out_size=SIZE))
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_augment_shapes_and_range() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(5, 40, 40)
    v = augment(x, AugmentConfig(out_size=SIZE), gen)
    assert v.shape == (5, 1, SIZE, SIZE)
    assert torch.isfinite(v).all()
    assert float(v.min()) >= (0 - 0.5) / 0.25 - 1e-5 and float(v.max()) <= (1 - 0.5) / 0.25 + 1e-5


def test_one_training_step_changes_weights_and_is_deterministic(fixture_dir: Path) -> None:
    images, labels, places = _tiny(fixture_dir)
    losses = []
    for _ in range(2):
        cfg = _cfg()
        gen = seed_everything(cfg.seed, 1)
        model = build_model(cfg)
        before = [p.detach().clone() for p in model.parameters()]
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        idx = np.arange(6)
        loss, stats = train_step(model, opt, torch.from_numpy(images[idx]),
                                 [labels[i] for i in idx], [places[i] for i in idx], cfg, gen)
        assert np.isfinite(loss) and loss > 0
        assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
        losses.append(loss)
    assert losses[0] == losses[1]


def test_checkpoint_and_resume(tmp_path: Path, fixture_dir: Path) -> None:
    images, labels, places = _tiny(fixture_dir)
    train(_cfg(epochs=1), images, labels, places, tmp_path, log=lambda s: None)
    ck = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    assert ck["epoch"] == 1 and len(ck["history"]) == 1
    model = train(_cfg(epochs=2), images, labels, places, tmp_path, resume=True,
                  log=lambda s: None)
    ck2 = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    assert ck2["epoch"] == 2 and len(ck2["history"]) == 2
    # Resumed run == uninterrupted run.
    straight = train(_cfg(epochs=2), images, labels, places, tmp_path / "b", log=lambda s: None)
    for a, b in zip(model.state_dict().values(), straight.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float())


def test_net_output_is_unit_length_and_light() -> None:
    net = EmbeddingNet().eval()
    with torch.no_grad():
        e = net(torch.randn(3, 1, 96, 96))
    assert e.shape == (3, 64)
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    assert 2 * count_macs(net, 96) < 0.5e9
    assert sum(p.numel() for p in net.parameters()) * 4 < 20e6


def test_export_contract_and_parity_on_real_tiles(tmp_path: Path, fixture_dir: Path) -> None:
    torch.manual_seed(0)
    net = EmbeddingNet(1, WIDTHS, 16)
    # Non-trivial BatchNorm statistics so the parity check exercises them.
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(8, 1, SIZE, SIZE))
    net.eval()
    meta = contract_metadata(input_channels=1, input_size=SIZE, mean=[0.5], std=[0.25],
                             embedding_dim=16, version="test", training_data="fixture")
    out = tmp_path / "m.onnx"
    export_onnx(net, out, SIZE, meta)
    got = read_metadata(out)
    assert got["model_type"] == "analog-embedding" and got["gsd_m"] is None
    assert got["input_size"] == SIZE and got["mean"] == [0.5] and got["embedding_dim"] == 16
    assert set(got) == {"model_type", "input_channels", "input_size", "mean", "std",
                        "embedding_dim", "gsd_m", "version", "training_data",
                        "preprocessing", "tile_px"}
    assert got["preprocessing"] == {"stretch": "tile", "percentiles": [2.0, 98.0],
                                    "min_span_fraction": 0.1, "percentile_step": 2}
    assert got["tile_px"] == 204  # 0.9 x the 227 px training tiles
    import onnx

    raw = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(raw["std"]) == [0.25]
    files = sorted(fixture_dir.glob("*/*.jpg"))
    contract = PixelContract(SIZE, 1, (0.5,), (0.25,), stretch="tile")
    x = np.stack([prepare_image(read_image(f), contract) for f in files])
    assert parity(net, out, x) < 1e-4
    for n in (1, 3):  # dynamic batch axis
        e = onnx_embed(out, x[:n])
        assert e.shape == (n, 16)
        assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)


def test_shipped_model_contract() -> None:
    path = Path(__file__).resolve().parents[2] / "models" / "analog-siamese.onnx"
    if not path.exists():
        pytest.skip("models/analog-siamese.onnx not built")
    meta = read_metadata(path)
    assert meta["model_type"] == "analog-embedding" and meta["input_channels"] == 1
    assert path.stat().st_size < 20e6
