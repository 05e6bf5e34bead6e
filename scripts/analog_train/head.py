"""The v2 projection head: trunk features -> analogue embedding, trained as a Siamese network.

Siamese as in v1 (same pairs, same contrastive loss, same class-balanced batches): each step draws
``batch_images`` images and two of their cached random views; all views go through the same head;
positives are two views of one image, the same Mars landform, and Earth desert <-> Mars dunes; the
loss is the margin contrastive loss with in-batch hard negatives (``loss.py``, ``pairs.py``). What
is new: the head sees frozen ImageNet features instead of pixels, so it trains in about a minute
and can be cross-validated properly. Inputs are standardised with the training views' statistics
(kept as buffers, baked into the exported graph).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .loss import batch_contrastive_loss
from .pairs import BalancedSampler, pair_masks


@dataclass(frozen=True)
class HeadConfig:
    """Everything that defines a head run (chosen by grouped cross-validation, see the card)."""

    seed: int = 0
    hidden: int = 512
    embedding_dim: int = 128
    batch_images: int = 256  # two views each -> 512 inputs per step
    epochs: int = 10
    steps_per_epoch: int = 200
    lr: float = 1e-3
    weight_decay: float = 1e-4
    margin: float = 1.25
    hard_k: int = 24
    threads: int = 2
    clean_copies: int = 4  # the whole-image feature joins the random views this many times
    # Cosine bands for same-landform and cross-planet pairs of different images (see
    # loss.batch_contrastive_loss). Chosen on the first 4 grouped folds against the v2.0 recipe
    # (Hadsell pull, margin 1): kNN 0.861 -> 0.874, macro-F1 0.803 -> 0.805, dune lift
    # 6.73 -> 5.63, cosine of unrelated tiles 0.31 -> 0.07. Cross band 0.5..1: kNN 0.867, lift
    # 5.26; cross pairs pulled: kNN 0.850, lift 6.97; label band 0.3..0.6: kNN 0.849; 20 epochs:
    # kNN 0.873.
    # Also tried against this recipe (4 folds, kNN 0.885 / macro-F1 0.821): hidden 1024 0.881,
    # embedding 256 0.877, hard_k 48 0.879, weight decay 1e-3 0.880, margin 1.4 0.878; three-seed
    # ensembles and std pooling at the taps no better: the head is at a flat optimum. The
    # trunk's own 1x1 head conv (320 -> 1280, BN, ReLU6, pooled; 123.0 M multiply-adds, 0.49
    # GFLOP with both views) as a fourth feature: kNN 0.874 / F1 0.801 with blocks 8, 11, 16,
    # 0.873 / 0.798 in place of block 16's pool: ImageNet's last layer does not help here.
    # Block 16's pooled mid activations (after the depthwise conv, 1152; what fine-tuning its
    # linear projection could reach, since pooling commutes with it): 0.877 added, 0.880 in
    # place of block 16's pool, 0.878 with block 11's mid too. 16 cached views instead of 8:
    # 0.869 (4 clean copies), 0.875 (8 copies): more augmentation does not help either.
    label_band: tuple[float, float] | None = (0.2, 0.5)
    cross_band: tuple[float, float] | None = (0.6, 1.0)
    # Model 2.3 (Lite2 trunk): the centre baked into the graph is the mean embedding of the
    # training side's Mars tiles, not of every training image. Why: the plugin scores Mars
    # tiles, and the centre exists to put unrelated scored tiles near cosine 0; centred on
    # Mars and Earth together, two Mars tiles of different observations kept a mean cosine of
    # 0.089, centred on Mars alone about -0.02. 8 grouped folds, same heads: kNN 0.886 / 0.886,
    # macro-F1 0.812 / 0.812, mAP@R 0.621 / 0.628, dune lift 5.80 / 6.05, invariance gap
    # 0.868 / 0.947; cost: same-landform verification 0.771 -> 0.735 (balanced accuracy).
    center_on_mars: bool = True


def training_views(views: np.ndarray, clean: np.ndarray, copies: int) -> np.ndarray:
    """``(N, K + copies, F)``: the random views plus the clean whole-image feature ``copies`` times.

    Why: positives then also pair a distorted view with the undistorted tile, which is what the
    library and most scored tiles look like; with the v2.0 loss, the 8 grouped folds gave kNN
    0.850 / macro-F1 0.776 with them against 0.847 / 0.759 without (the card's final-model
    paragraph).
    """
    extra = np.repeat(clean[:, None, :], copies, axis=1)
    return np.concatenate([views, extra], axis=1)


class ProjectionHead(nn.Module):
    """Standardise -> Linear -> BatchNorm -> ReLU -> Linear (not normalised; see ``embed``)."""

    mu: torch.Tensor  # buffers (typed for mypy: register_buffer returns nothing typed)
    sd: torch.Tensor

    def __init__(self, in_dim: int, hidden: int, out_dim: int, mean: np.ndarray,
                 std: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mu", torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1))
        self.register_buffer("sd", torch.as_tensor(std, dtype=torch.float32).reshape(1, -1))
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                 nn.Linear(hidden, out_dim))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.net((f - self.mu) / self.sd)  # type: ignore[no-any-return]


@torch.no_grad()
def embed(head: ProjectionHead, feats: np.ndarray, center: np.ndarray | None = None
          ) -> np.ndarray:
    """Unit embeddings of ``(N, F)`` features; with ``center``, ``normalize(e - center)``."""
    head.eval()
    e = head(torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32)))
    if center is not None:
        e = nn.functional.normalize(e, dim=1) - torch.from_numpy(center).float()
    return nn.functional.normalize(e, dim=1).numpy()  # type: ignore[no-any-return]


def mean_center(head: ProjectionHead, feats: np.ndarray) -> np.ndarray:
    """The centre baked into the graph: mean unit embedding of ``feats`` (v1's reason: a margin
    loss leaves all embeddings in one cone; centring spreads the score range). Which images
    ``feats`` holds is ``HeadConfig.center_on_mars``'s choice (``center_images``)."""
    return embed(head, feats).mean(axis=0).astype(np.float32)  # type: ignore[no-any-return]


def center_images(cfg: HeadConfig, idx: np.ndarray, mars: np.ndarray) -> np.ndarray:
    """The images among ``idx`` whose mean embedding is the centre: the Mars ones when
    ``cfg.center_on_mars`` (and there are any), else all of them."""
    if cfg.center_on_mars:
        on_mars = idx[mars[idx]]
        if len(on_mars):
            return on_mars
    return idx


def train_head(cfg: HeadConfig, views: np.ndarray, labels: list[str], places: list[str],
               run_dir: Path | None = None, resume: bool = False,
               log: Callable[[str], None] = print) -> ProjectionHead:
    """Train on ``views`` (N, K, F) of N training images; checkpoint each epoch to
    ``run_dir/head_ckpt.pt`` (``resume`` continues bit for bit: model, optimiser, sampler, RNG)."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)
    n, k, f = views.shape
    flat = views.reshape(-1, f)
    head = ProjectionHead(f, cfg.hidden, cfg.embedding_dim, flat.mean(0), flat.std(0) + 1e-6)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sampler = BalancedSampler(labels, cfg.seed)
    rng = np.random.default_rng(cfg.seed + 1)
    ckpt = run_dir / "head_ckpt.pt" if run_dir is not None else None
    start = 0
    if resume and ckpt is not None and ckpt.exists():
        st = torch.load(ckpt, weights_only=False)
        head.load_state_dict(st["head"])
        opt.load_state_dict(st["opt"])
        sampler.set_state(st["sampler"])
        rng.bit_generator.state = st["rng"]
        start = st["epoch"]
        log(f"resumed from {ckpt} at epoch {start}")
    vt = torch.from_numpy(np.ascontiguousarray(views, dtype=np.float32))
    total = cfg.epochs * cfg.steps_per_epoch
    t0 = time.time()
    done_here = 0
    for epoch in range(start, cfg.epochs):
        loss_sum = 0.0
        for s in range(cfg.steps_per_epoch):
            step = epoch * cfg.steps_per_epoch + s
            for g in opt.param_groups:
                g["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            idx = sampler.batch(cfg.batch_images)
            pick = rng.integers(0, k, size=(len(idx), 2))
            x = torch.cat([vt[idx, pick[:, 0]], vt[idx, pick[:, 1]]])
            labs = [labels[i] for i in idx] * 2
            same_place = [f"{places[i]}#{i}" for i in idx] * 2
            similar, dissimilar = pair_masks(labs, same_place)
            image = np.tile(np.arange(len(idx)), 2)
            lab_arr = np.array(labs)
            head.train()
            e = nn.functional.normalize(head(x), dim=1)
            loss, _ = batch_contrastive_loss(
                e, torch.from_numpy(similar), torch.from_numpy(dissimilar), cfg.margin,
                cfg.hard_k, torch.from_numpy(image[:, None] == image[None, :]), cfg.label_band,
                torch.from_numpy(lab_arr[:, None] == lab_arr[None, :]), cfg.cross_band)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach())
            done_here += 1
        if ckpt is not None:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"head": head.state_dict(), "opt": opt.state_dict(),
                        "sampler": sampler.state(), "rng": dict(rng.bit_generator.state),
                        "epoch": epoch + 1, "config": asdict(cfg)}, tmp)
            tmp.replace(ckpt)
        rate = done_here / max(time.time() - t0, 1e-9)
        log(f"head epoch {epoch + 1}/{cfg.epochs} loss {loss_sum / cfg.steps_per_epoch:.4f} "
            f"{rate:.1f} steps/s ETA {(total - (epoch + 1) * cfg.steps_per_epoch) / rate:.0f} s")
    head.eval()
    return head
