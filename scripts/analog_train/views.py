"""Random views of a raw image, made the way a real scene would present a place, then prepared by
the plugin's own pixel contract (``analog_plugin.core.preprocess.prepare_batch``).

Why on raw pixels and not on already-stretched images: the product stretches every tile by its own
percentiles, fills nodata with the tile's mean and area-resizes it; a change of light, a black image
border or a JPEG artefact acts *before* that, and part of it is undone by it. Training on what the
contract makes of a changed raw tile is training on what the product will feed the network.

What a view varies (each with a reason):
- geometry: any rotation angle and a mirror (landforms have no up), the view's side drawn
  log-uniformly in [``min_side``, ``max_side``] x the image side (a 2x scale jitter around the
  declared tile size), and its centre anywhere it fits; outside the image, reflection;
- light: gain and offset (stretch-invariant, but not once clipped), gamma (sun angle, a
  different stretch of the product);
- focus and sensor: Gaussian blur, Gaussian noise, JPEG compression at low quality;
- nodata margins: a band along one side set to 0 and marked invalid, as in HiRISE products with
  black borders; the contract then fills it with the tile's mean.
Everything draws from a ``numpy.random.Generator`` so the views of a run are reproducible.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from analog_plugin.core.preprocess import LayerStats, PixelContract, prepare_batch


@dataclass(frozen=True)
class ViewConfig:
    """Ranges of the random changes (see the module docstring for why each exists)."""

    min_side: float = 0.5  # view side as a fraction of the image side: 2x scale range
    max_side: float = 1.0
    gain: float = 0.3  # x in [1 - g, 1 + g]
    offset: float = 0.15  # + u * range, u in [-o, o]
    gamma: float = 0.6  # exponent in [1 / (1 + g), 1 + g]
    blur_prob: float = 0.3
    blur_sigma: tuple[float, float] = (0.4, 2.0)  # source pixels
    noise_prob: float = 0.3
    noise_std: float = 0.04  # x range
    jpeg_prob: float = 0.3
    jpeg_quality: tuple[int, int] = (15, 85)
    margin_prob: float = 0.15
    margin_width: tuple[float, float] = (0.05, 0.35)  # fraction of the view side
    clean_prob: float = 0.1  # views with geometry only (no photometric change)


def _affine_crop(image: np.ndarray, side: int, angle: float, flip: bool, cx: float, cy: float
                 ) -> np.ndarray:
    """``(B, H, W)`` -> ``(B, side, side)``: a square of ``side`` source pixels centred at
    (cx, cy), rotated by ``angle`` (radians), bilinear, reflection outside."""
    b, h, w = image.shape
    cos, sin = math.cos(angle), math.sin(angle)
    sx = side / w
    sy = side / h
    # affine_grid maps output coords in [-1, 1] to input coords in [-1, 1]
    f = -1.0 if flip else 1.0
    # Output offset (u, v) in [-1, 1] -> source offset (s/2)(R (f u, v)), in [-1, 1] units.
    theta = torch.tensor([[cos * sx * f, -sin * sx, 2 * cx / w - 1],
                          [sin * sy * f, cos * sy, 2 * cy / h - 1]], dtype=torch.float32)[None]
    src = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
    grid = F.affine_grid(theta, [1, b, side, side], align_corners=False)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="reflection",
                        align_corners=False)
    return out[0].numpy()


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    r = max(1, int(math.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k = torch.from_numpy((k / k.sum()).astype(np.float32))
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[:, None]
    t = F.pad(t, (r, r, r, r), mode="reflect")
    t = F.conv2d(t, k.view(1, 1, 1, -1))
    t = F.conv2d(t, k.view(1, 1, -1, 1))
    return t[:, 0].numpy()


def _jpeg(x: np.ndarray, lo: float, hi: float, quality: int) -> np.ndarray:
    """JPEG round trip of each band at ``quality`` (values mapped to 8 bits over lo..hi)."""
    from PIL import Image

    span = max(hi - lo, 1e-6)
    out = np.empty_like(x)
    for i, band in enumerate(x):
        u8 = np.clip(np.rint((band - lo) / span * 255.0), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(u8).save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        with Image.open(buf) as im:
            out[i] = np.asarray(im, dtype=np.float32) / 255.0 * span + lo
    return out


def random_view(image: np.ndarray, rng: np.random.Generator, cfg: ViewConfig
                ) -> tuple[np.ndarray, np.ndarray]:
    """One random view of a raw ``(B, H, W)`` image: ``(pixels (B, s, s), valid (s, s))``."""
    b, h, w = image.shape
    base = min(h, w)
    side = int(round(base * math.exp(rng.uniform(math.log(cfg.min_side),
                                                 math.log(cfg.max_side)))))
    side = max(8, side)
    angle = rng.uniform(0, 2 * math.pi)
    flip = bool(rng.random() < 0.5)
    # The rotated square's half-extent along x/y; keep it inside when it fits, else centre.
    half = side / 2 * (abs(math.cos(angle)) + abs(math.sin(angle)))
    cx = rng.uniform(half, w - half) if w > 2 * half else w / 2
    cy = rng.uniform(half, h - half) if h > 2 * half else h / 2
    x = _affine_crop(image, side, angle, flip, cx, cy)
    valid = np.ones((side, side), dtype=bool)
    if rng.random() >= cfg.clean_prob:
        lo, hi = float(image.min()), float(image.max())
        span = max(hi - lo, 1.0)
        x = x * rng.uniform(1 - cfg.gain, 1 + cfg.gain) + rng.uniform(-cfg.offset,
                                                                      cfg.offset) * span
        g = math.exp(rng.uniform(-math.log(1 + cfg.gamma), math.log(1 + cfg.gamma)))
        u = np.clip((x - lo) / span, 0.0, 1.0)
        x = (u ** g) * span + lo
        if rng.random() < cfg.blur_prob:
            x = _blur(x, rng.uniform(*cfg.blur_sigma))
        if rng.random() < cfg.noise_prob:
            x = x + rng.normal(0.0, cfg.noise_std * span, x.shape).astype(np.float32)
        if rng.random() < cfg.jpeg_prob:
            x = _jpeg(x, lo, hi, int(rng.integers(*cfg.jpeg_quality)))
        if rng.random() < cfg.margin_prob:
            width = max(1, int(round(side * rng.uniform(*cfg.margin_width))))
            band = [np.s_[:, :width], np.s_[:, -width:], np.s_[:width, :], np.s_[-width:, :]][
                int(rng.integers(4))]
            valid[band] = False
            x[(slice(None), *band)] = 0.0
    return x.astype(np.float32), valid


def prepare_views(views: list[tuple[np.ndarray, np.ndarray]], contract: PixelContract,
                  layer: LayerStats) -> np.ndarray:
    """Views (any sides) -> ``(N, C, S, S)`` model input through the plugin's contract."""
    out = [prepare_batch(v[None], contract, layer, None if ok.all() else ok[None])
           for v, ok in views]
    return np.concatenate(out)
