"""The training loop: Siamese pairs from in-batch views, contrastive loss, checkpoints, resume.

Siamese in practice: every image of a batch is turned into two augmented views, all views go
through the *same* network (shared weights), and the contrastive loss is computed on the pairs
(view, view) marked similar or dissimilar by :mod:`pairs`. Doing all pairs of a batch at once is
the cheap way to get many pairs, and lets the loss mine hard negatives among them.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .augment import AugmentConfig, augment
from .loss import batch_contrastive_loss
from .net import EmbeddingNet
from .pairs import BalancedSampler, pair_masks


@dataclass
class TrainConfig:
    """Everything that defines a run (saved in the checkpoint)."""

    seed: int = 0
    input_size: int = 96
    embedding_dim: int = 64
    widths: tuple[int, ...] = (32, 64, 128, 256)
    batch_images: int = 64  # two views each -> 128 network inputs per step
    steps_per_epoch: int = 100
    epochs: int = 14
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    margin: float = 1.0
    hard_k: int = 24
    threads: int = 2
    augment: AugmentConfig = field(default_factory=AugmentConfig)


def seed_everything(seed: int, threads: int) -> torch.Generator:
    """Seed python/numpy/torch, force deterministic kernels, and return the augmentation RNG."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator()
    gen.manual_seed(seed + 1)
    return gen


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warm-up then cosine decay to 2 % of the peak (short schedules like a fast decay)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def build_model(cfg: TrainConfig) -> EmbeddingNet:
    return EmbeddingNet(1, tuple(cfg.widths), cfg.embedding_dim)


def train_step(
    model: EmbeddingNet,
    opt: torch.optim.Optimizer,
    images01: torch.Tensor,
    labels: list[str],
    places: list[str],
    cfg: TrainConfig,
    gen: torch.Generator,
) -> tuple[float, dict[str, float]]:
    """One optimisation step on a batch of 0..1 images ``(B, H, W)``: two views per image."""
    model.train()
    v1 = augment(images01, cfg.augment, gen)
    v2 = augment(images01, cfg.augment, gen)
    x = torch.cat([v1, v2], 0)
    lab2 = labels + labels
    place2 = places + places
    similar, dissimilar = pair_masks(lab2, place2)
    emb = model(x)
    loss, stats = batch_contrastive_loss(
        emb, torch.from_numpy(similar), torch.from_numpy(dissimilar), cfg.margin, cfg.hard_k
    )
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach()), stats


def save_checkpoint(path: Path, state: dict) -> None:
    """Write atomically (temp file + rename) so a kill during save never corrupts the last one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def config_to_dict(cfg: TrainConfig) -> dict:
    d = asdict(cfg)
    d["widths"] = list(cfg.widths)
    return d


def config_from_dict(d: dict) -> TrainConfig:
    d = dict(d)
    d["augment"] = AugmentConfig(**d["augment"])
    d["widths"] = tuple(d["widths"])
    return TrainConfig(**d)


def train(
    cfg: TrainConfig,
    images01: np.ndarray,
    labels: list[str],
    places: list[str],
    run_dir: Path,
    resume: bool = False,
    monitor: Callable[[EmbeddingNet], dict | None] | None = None,
    log: Callable[[str], None] = print,
) -> EmbeddingNet:
    """Train for ``cfg.epochs`` epochs of ``cfg.steps_per_epoch`` steps, checkpointing each epoch
    to ``run_dir/ckpt.pt``. With ``resume`` the run continues from that checkpoint bit-for-bit
    (model, optimiser, sampler and augmentation RNG states are all saved). ``monitor(model)`` is
    called after each epoch and may return a dict of numbers to log (e.g. validation kNN)."""
    gen = seed_everything(cfg.seed, cfg.threads)
    model = build_model(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sampler = BalancedSampler(labels, cfg.seed)
    ckpt_path = run_dir / "ckpt.pt"
    start_epoch = 0
    history: list[dict] = []
    if resume and ckpt_path.exists():
        st = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        sampler.set_state(st["sampler"])
        gen.set_state(st["gen"])
        start_epoch = st["epoch"]
        history = st["history"]
        log(f"resumed from {ckpt_path} at epoch {start_epoch}")
    images_t = torch.from_numpy(np.ascontiguousarray(images01, dtype=np.float32))
    total = cfg.epochs * cfg.steps_per_epoch
    t0 = time.time()
    done_here = 0
    for epoch in range(start_epoch, cfg.epochs):
        sums: dict[str, float] = {"loss": 0.0, "d_pos": 0.0, "d_hardneg": 0.0, "active_neg": 0.0}
        for s in range(cfg.steps_per_epoch):
            step = epoch * cfg.steps_per_epoch + s
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total, cfg)
            idx = sampler.batch(cfg.batch_images)
            loss, stats = train_step(
                model, opt, images_t[idx], [labels[i] for i in idx], [places[i] for i in idx],
                cfg, gen,
            )
            sums["loss"] += loss
            for k, v in stats.items():
                sums[k] += v
            done_here += 1
            if (s + 1) % 25 == 0 or s + 1 == cfg.steps_per_epoch:
                rate = done_here / (time.time() - t0)
                eta = (total - step - 1) / max(rate, 1e-9)
                log(
                    f"epoch {epoch + 1}/{cfg.epochs} step {s + 1}/{cfg.steps_per_epoch} "
                    f"loss {sums['loss'] / (s + 1):.4f} d_pos {sums['d_pos'] / (s + 1):.3f} "
                    f"d_hardneg {sums['d_hardneg'] / (s + 1):.3f} "
                    f"lr {opt.param_groups[0]['lr']:.2e} {rate:.2f} it/s "
                    f"ETA {eta / 60:.1f} min"
                )
        rec = {k: v / cfg.steps_per_epoch for k, v in sums.items()}
        rec["epoch"] = epoch + 1
        rec["elapsed_s"] = time.time() - t0
        if monitor is not None:
            extra = monitor(model)
            if extra:
                rec.update(extra)
                log(f"epoch {epoch + 1} monitor: {json.dumps(extra)}")
        history.append(rec)
        save_checkpoint(
            ckpt_path,
            {
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "sampler": sampler.state(),
                "gen": gen.get_state(),
                "epoch": epoch + 1,
                "history": history,
                "config": config_to_dict(cfg),
            },
        )
    model.eval()
    return model
