#!/usr/bin/env python
"""Export a trained checkpoint to ``models/analog-siamese.onnx`` and check parity on real tiles.

    python scripts/export_onnx.py --checkpoint runs/siamese/model.pt --data ../shared/data

Parity: the PyTorch and onnxruntime embeddings of real HiRISE and AID images, preprocessed with the
plugin's ``prepare_image``, must agree to < 1e-4 (max abs). Without ``--data`` the tiny real tiles
under ``tests/data/training`` are used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
V1_SPLIT = ROOT / "models" / "archive" / "analog-siamese-1.1.0.split.json"
for p in (ROOT, ROOT / "scripts"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from analog_train.data import (  # noqa: E402
    TRAIN_PIXELS,
    load_images,
    load_split,
    read_image,  # noqa: E402
)
from analog_train.export import (  # noqa: E402
    CenteredEmbedding,
    contract_metadata,
    export_onnx,
    mean_embedding,
    parity,
)
from analog_train.net import EmbeddingNet  # noqa: E402
from analog_train.trainer import config_from_dict  # noqa: E402

from analog_plugin.core.preprocess import PixelContract, prepare_image  # noqa: E402

TRAINING_DATA = (
    "HiRISE landmark tiles v1 (Wagstaff et al. 2018, doi:10.5281/zenodo.1048301; "
    "NASA/JPL/UArizona), training observations only; AID natural-scene subset (Xia et al. 2017, "
    "Google Earth imagery), training files only; split in archive/analog-siamese-1.1.0.split.json"
)


def parity_images(data: Path | None, n: int = 32) -> list[Path]:
    """Real images for the parity check: HiRISE tiles and AID images, or the test fixtures."""
    if data is not None and (data / "hirise-v1").exists():
        tiles = sorted((data / "hirise-v1" / "tiles").glob("*.jpg"))[:: 97][: n // 2]
        aid = sorted((data / "aid-natural" / "images").glob("*/*.jpg"))[:: 151][: n // 2]
        return tiles + aid
    return sorted((ROOT / "tests" / "data" / "training").glob("**/*.jpg"))[:n]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "runs" / "siamese" / "model.pt")
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "analog-siamese.onnx")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--split", type=Path, default=V1_SPLIT)
    ap.add_argument("--cache", type=Path, default=ROOT / "runs" / "cache")
    ap.add_argument("--no-center", action="store_true",
                    help="do not bake the mean training embedding subtraction into the graph")
    args = ap.parse_args(argv)

    st = torch.load(args.checkpoint, weights_only=False, map_location="cpu")
    cfg = config_from_dict(st["config"])
    model = EmbeddingNet(1, tuple(cfg.widths), cfg.embedding_dim)
    model.load_state_dict(st["model"])
    model.eval()
    mean, std = [cfg.augment.mean], [cfg.augment.std]
    meta = contract_metadata(
        input_channels=1, input_size=cfg.input_size, mean=mean, std=std,
        embedding_dim=cfg.embedding_dim, version=args.version, training_data=TRAINING_DATA,
    )
    shipped: torch.nn.Module = model
    if not args.no_center:
        if args.data is None:
            raise SystemExit("centring needs the training images: pass --data (or --no-center)")
        imgs = load_images(args.data, load_split(args.split), cfg.input_size, args.cache)
        train01 = imgs.images[np.array([s == "train" for s in imgs.split])]
        center = mean_embedding(model, (train01[:, None] - mean[0]) / std[0])
        shipped = CenteredEmbedding(model, center).eval()
        print(f"centre: mean embedding of {len(train01)} training images, norm "
              f"{float(center.norm()):.3f}")
    export_onnx(shipped, args.out, cfg.input_size, meta)
    files = parity_images(args.data)
    if not files:
        raise SystemExit("no real images found for the parity check; pass --data")
    contract = PixelContract(cfg.input_size, 1, tuple(mean), tuple(std), **TRAIN_PIXELS)  # type: ignore[arg-type]
    x = np.stack([prepare_image(read_image(f), contract) for f in files])
    diff = parity(shipped, args.out, x)
    size_mb = args.out.stat().st_size / 1e6
    print(f"wrote {args.out} ({size_mb:.2f} MB); parity on {len(files)} real images: "
          f"max abs diff {diff:.2e}")
    if diff >= 1e-4:
        raise SystemExit(f"parity check failed: max abs difference {diff:.2e} >= 1e-4")
    if size_mb > 20:
        raise SystemExit(f"model is {size_mb:.1f} MB, over the 20 MB budget")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
