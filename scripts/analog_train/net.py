"""The embedding network (one branch of the Siamese pair; both branches share these weights).

A small residual CNN: 1-channel 96x96 input -> stem (stride 2) -> 4 stages of one residual block
each (widths 32/64/128/256 at 48/24/12/6 px) -> global average pool -> linear to 64 dims -> L2
normalisation. Why so small: scoring runs on CPU inside QGIS over thousands of tiles, and training
must converge in under an hour on 2 cores; about 0.17 GMAC (0.34 GFLOP) per tile and ~1.2 M
parameters (~5 MB float32) fit both budgets with room to spare. Residual blocks with BatchNorm
train stably at the high learning rates a short schedule needs. Global pooling makes the
descriptor a texture/shape statistic, which is what landform similarity is about.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResBlock(nn.Module):
    """Two 3x3 convolutions with a (projected when needed) identity shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.short: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.short = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.short(x))


class EmbeddingNet(nn.Module):
    """``(N, C, S, S)`` normalised images -> ``(N, D)`` unit-length embeddings."""

    def __init__(
        self,
        in_channels: int = 1,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        embedding_dim: int = 64,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 2, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        blocks = []
        c = widths[0]
        for i, w in enumerate(widths):
            blocks.append(ResBlock(c, w, 1 if i == 0 else 2))
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c, embedding_dim)
        self.embedding_dim = embedding_dim
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.stem(x))
        h = h.mean(dim=(2, 3))
        e = self.head(h)
        return F.normalize(e, p=2.0, dim=1, eps=1e-12)


def count_macs(model: nn.Module, input_size: int, in_channels: int = 1) -> int:
    """Multiply-accumulates of one forward pass on one image (conv + linear layers)."""
    macs = 0

    def conv_hook(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal macs
        assert isinstance(mod, nn.Conv2d)
        k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
        macs += int(out.numel() // out.shape[0]) * k

    def lin_hook(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal macs
        assert isinstance(mod, nn.Linear)
        macs += mod.in_features * mod.out_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(lin_hook))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, in_channels, input_size, input_size))
    model.train(was_training)
    for h in hooks:
        h.remove()
    return macs
