#!/usr/bin/env python
"""Train the analogue-similarity Siamese network on real Earth (AID) and Mars (HiRISE) imagery.

    python scripts/train.py --data ../shared/data --run runs/siamese --epochs 16

Splits HiRISE by observation and AID per class (``--split`` JSON, written if absent), preloads all
images once through the plugin's preprocessing (cached as .npy in ``runs/cache``), trains with a
seed, checkpoints every epoch (``--resume`` continues) and prints progress with an ETA.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
V1_SPLIT = ROOT / "models" / "archive" / "analog-siamese-1.1.0.split.json"
for p in (ROOT, ROOT / "scripts"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from analog_train.data import load_images, load_split, write_split_json  # noqa: E402
from analog_train.metrics import accuracy, knn_predict, macro_f1  # noqa: E402
from analog_train.trainer import TrainConfig, train  # noqa: E402


def embed(model: torch.nn.Module, images01: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Embeddings of clean (unaugmented) 0..1 images, in batches."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images01), 256):
            x = (torch.from_numpy(images01[i : i + 256]).float()[:, None] - mean) / std
            out.append(model(x).numpy())
    return np.concatenate(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "siamese")
    ap.add_argument("--split", type=Path, default=V1_SPLIT)
    ap.add_argument("--cache", type=Path, default=ROOT / "runs" / "cache")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val-fraction", type=float, default=0.25)
    ap.add_argument("--epochs", type=int, default=14)
    ap.add_argument("--steps-per-epoch", type=int, default=100)
    ap.add_argument("--batch-images", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--margin", type=float, default=1.0)
    ap.add_argument("--hard-k", type=int, default=24, help="hard negatives per anchor")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--monitor-every", type=int, default=2, help="val kNN every N epochs (0: off)")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)

    if args.split.exists():
        split = load_split(args.split)
        print(f"split: {args.split}")
    else:
        split = write_split_json(args.data, args.split, args.val_fraction, args.seed)
        print(f"split written to {args.split}")
    cfg = TrainConfig(
        seed=args.seed, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
        batch_images=args.batch_images, lr=args.lr, margin=args.margin, hard_k=args.hard_k,
        threads=args.threads,
    )
    torch.set_num_threads(cfg.threads)
    t0 = time.time()
    # Training views are cut from 128 px images (room for zoom / rotation) and resampled to 96.
    big = load_images(args.data, split, 128, args.cache)
    small = load_images(args.data, split, cfg.input_size, args.cache)
    print(f"images loaded in {time.time() - t0:.0f} s: {len(big.label)}")
    tr = np.array([s == "train" for s in big.split])
    train_set = big.subset(tr)
    mars_tr = np.array([s == "train" and lab.startswith("mars:")
                        for s, lab in zip(small.split, small.label, strict=True)])
    mars_va = np.array([s == "val" and lab.startswith("mars:")
                        for s, lab in zip(small.split, small.label, strict=True)])
    mean, std = cfg.augment.mean, cfg.augment.std
    epoch_counter = {"n": 0}

    def monitor(model: torch.nn.Module) -> dict | None:
        epoch_counter["n"] += 1
        if args.monitor_every <= 0 or epoch_counter["n"] % args.monitor_every:
            return None
        g = embed(model, small.images[mars_tr], mean, std)
        q = embed(model, small.images[mars_va], mean, std)
        glab = [small.label[i] for i in np.flatnonzero(mars_tr)]
        qlab = [small.label[i] for i in np.flatnonzero(mars_va)]
        pred = knn_predict(q, g, glab, 5)
        return {"val_knn_acc": round(accuracy(qlab, pred), 4),
                "val_macro_f1": round(macro_f1(qlab, pred), 4)}

    args.run.mkdir(parents=True, exist_ok=True)
    # "Same place" = the same source image (its two views). Not the same observation: one
    # observation holds tiles of several classes (dune field, its edge, craters).
    model = train(cfg, train_set.images, train_set.label, train_set.source, args.run,
                  resume=args.resume, monitor=monitor,
                  log=lambda s: print(s, flush=True))
    final = args.run / "model.pt"
    torch.save({"model": model.state_dict(), "config": json.loads(json.dumps(
        torch.load(args.run / "ckpt.pt", weights_only=False)["config"]))}, final)
    print(f"done in {(time.time() - t0) / 60:.1f} min -> {final}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
