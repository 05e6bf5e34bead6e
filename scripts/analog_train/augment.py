"""Appearance changes for the two views of a positive pair, done on whole batches in torch.

Why these: the metric must not care about how a place was imaged. Mars tiles come at any azimuth
(so any rotation and flips), under different sun angles and stretches (brightness, contrast,
gamma), at different pixel scales and focus (scale jitter, blur) and with sensor noise. Everything
is batched with ``affine_grid`` / ``grid_sample`` so augmentation costs far less than the network
on a 2-core CPU, and it draws from an explicit ``torch.Generator`` so runs are reproducible.

Input images are the cached 0..1 luma images (already stretched like the plugin does); output is
normalised with the model's mean/std, i.e. exactly what the network sees at inference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random appearance changes (see module docstring for why)."""

    out_size: int = 96
    # View side as a fraction of the image side (scale jitter). Not lower: a small crop of an
    # `edge` or `crater` tile may miss the very thing its label is about (label noise).
    min_zoom: float = 0.8
    max_zoom: float = 1.0
    rotate: bool = True  # any angle
    flip: bool = True
    brightness: float = 0.12  # additive, uniform in [-b, b]
    contrast: float = 0.3  # multiplicative around the mean, uniform in [1-c, 1+c]
    gamma: float = 0.35  # exponent in [1/(1+g), 1+g]
    blur_prob: float = 0.3
    blur_sigma: float = 1.5
    noise_prob: float = 0.4
    noise_std: float = 0.05
    clean_prob: float = 0.15  # fraction of views left exactly as the plugin would see them
    mean: float = 0.5
    std: float = 0.25


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def geometric(images: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Random rotation / flip / zoom / shift of ``(N, 1, H, W)`` 0..1 images to ``out_size``.

    Outside the source the image is mirrored (``reflection`` padding) so rotated corners are
    filled with plausible texture instead of black, which would mimic the ``edge`` class.
    """
    n = images.shape[0]
    zoom = _uniform(n, cfg.min_zoom, cfg.max_zoom, gen)
    angle = _uniform(n, 0.0, 2 * math.pi, gen) if cfg.rotate else torch.zeros(n)
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(n)
    # Shift so that the view stays (mostly) inside the image.
    room = (1.0 - zoom).clamp(min=0.0)
    tx = (torch.rand(n, generator=gen) * 2 - 1) * room
    ty = (torch.rand(n, generator=gen) * 2 - 1) * room
    clean = torch.rand(n, generator=gen) < cfg.clean_prob
    zoom = torch.where(clean, torch.ones(n), zoom)
    angle = torch.where(clean, torch.zeros(n), angle)
    flip = torch.where(clean, torch.ones(n), flip)
    tx = torch.where(clean, torch.zeros(n), tx)
    ty = torch.where(clean, torch.zeros(n), ty)
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1
    )
    grid = F.affine_grid(theta, [n, 1, cfg.out_size, cfg.out_size], align_corners=False)
    # Views are cut from 128 px images, so sampling to 96 px shrinks by at most 1.33x: bilinear
    # aliasing stays mild (the plugin's area resize is matched by the clean views and the blur).
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False)


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian blur (separable, radius 3) with sigma per image (0 = identity)."""
    radius = 3
    pos = torch.arange(-radius, radius + 1, dtype=x.dtype)
    s = sigma.clamp(min=1e-3)[:, None]
    k = torch.exp(-(pos[None] ** 2) / (2 * s**2))
    k = k / k.sum(1, keepdim=True)  # (N, 7)
    n = x.shape[0]
    xp = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    # Grouped convolution: one kernel per image.
    xr = xp.reshape(1, n, xp.shape[2], xp.shape[3])
    y = F.conv2d(xr, k[:, None, None, :], groups=n)
    y = F.conv2d(y, k[:, None, :, None], groups=n)
    return y.reshape(n, 1, x.shape[2], x.shape[3])


def photometric(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, gamma, blur and noise on ``(N, 1, S, S)`` 0..1 images."""
    n = x.shape[0]
    g_hi = 1.0 + cfg.gamma
    gamma = torch.exp(_uniform(n, -math.log(g_hi), math.log(g_hi), gen))[:, None, None, None]
    x = x.clamp(0.0, 1.0) ** gamma
    c = _uniform(n, 1 - cfg.contrast, 1 + cfg.contrast, gen)[:, None, None, None]
    b = _uniform(n, -cfg.brightness, cfg.brightness, gen)[:, None, None, None]
    m = x.mean(dim=(2, 3), keepdim=True)
    x = (x - m) * c + m + b
    blur_on = torch.rand(n, generator=gen) < cfg.blur_prob
    sigma = torch.where(blur_on, _uniform(n, 0.4, cfg.blur_sigma, gen), torch.zeros(n))
    if bool(blur_on.any()):
        x = torch.where(blur_on[:, None, None, None], _gaussian_blur(x, sigma), x)
    noise_on = (torch.rand(n, generator=gen) < cfg.noise_prob)[:, None, None, None]
    std = _uniform(n, 0.0, cfg.noise_std, gen)[:, None, None, None]
    noise = torch.randn(x.shape, generator=gen) * std
    x = torch.where(noise_on, x + noise, x)
    return x.clamp(0.0, 1.0)


def augment(images01: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """One random view per image: ``(N, H, W)`` or ``(N, 1, H, W)`` 0..1 -> normalised
    ``(N, 1, out_size, out_size)`` float32 ready for the network."""
    if images01.ndim == 3:
        images01 = images01[:, None]
    x = geometric(images01.float(), cfg, gen)
    x = photometric(x, cfg, gen)
    return (x - cfg.mean) / cfg.std
