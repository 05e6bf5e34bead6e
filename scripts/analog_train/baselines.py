"""Baselines the learned embedding must beat, all fed the plugin's preprocessing.

* raw pixels: the 0..1 image area-downsampled to 16x16, mean removed, as a vector. Tells whether
  the network learned more than "overall brightness layout".
* texture: a classical hand-made descriptor, LBP (rotation-invariant uniform codes at radius 1
  and 2) + GLCM statistics (contrast, homogeneity, energy, correlation, entropy at distances 1, 2,
  4, averaged over 4 directions, so rotation-tolerant) + a 16-bin intensity histogram, each feature
  z-scored with statistics of the gallery. Pure numpy.
* random network: the same architecture with its initial random weights (tells how much of the
  result is architecture prior rather than training).
* frozen pretrained features (``FrozenFeatureEmbedding``): a trunk's pooled features with no
  training, standardised and centred on the training side (evaluate.py's frozen baseline, and
  how scripts/compare_trunks.py ranks candidate trunks).
"""

from __future__ import annotations

import numpy as np

from analog_plugin.core.area_resize import resize

from .metrics import l2n

_RIU2_CACHE: dict[int, np.ndarray] = {}


def raw_pixels(images01: np.ndarray, size: int = 16) -> np.ndarray:
    """``(N, H, W)`` 0..1 images -> ``(N, size*size)`` mean-removed downsampled pixels."""
    feats = np.stack([resize(im[None], size)[0].ravel() for im in images01]).astype(np.float64)
    return feats - feats.mean(axis=1, keepdims=True)


def _riu2_table(p: int) -> np.ndarray:
    """Map each p-bit LBP code to its rotation-invariant uniform label (0..p+1)."""
    if p not in _RIU2_CACHE:
        codes = np.arange(2**p)
        bits = (codes[:, None] >> np.arange(p)[None]) & 1
        transitions = np.sum(bits != np.roll(bits, 1, axis=1), axis=1)
        _RIU2_CACHE[p] = np.where(transitions <= 2, bits.sum(1), p + 1)
    return _RIU2_CACHE[p]


def lbp_histogram(img: np.ndarray, radius: int, p: int = 8) -> np.ndarray:
    """Normalised histogram of rotation-invariant uniform LBP codes (bilinear-free: neighbours
    rounded to the pixel grid, adequate for a baseline)."""
    h, w = img.shape
    r = radius
    centre = img[r : h - r, r : w - r]
    code = np.zeros(centre.shape, dtype=np.int64)
    for k in range(p):
        a = 2 * np.pi * k / p
        dy, dx = int(round(-r * np.sin(a))), int(round(r * np.cos(a)))
        nb = img[r + dy : h - r + dy, r + dx : w - r + dx]
        code |= (nb >= centre).astype(np.int64) << k
    labels = _riu2_table(p)[code]
    hist = np.bincount(labels.ravel(), minlength=p + 2).astype(np.float64)
    return hist / hist.sum()


def glcm_features(
    img: np.ndarray, levels: int = 16, distances: tuple[int, ...] = (1, 2, 4)
) -> np.ndarray:
    """GLCM contrast, homogeneity, energy, correlation, entropy per distance (mean of 4
    directions, symmetric, normalised)."""
    q = np.clip((img * levels).astype(np.int64), 0, levels - 1)
    i_idx, j_idx = np.meshgrid(np.arange(levels), np.arange(levels), indexing="ij")
    out: list[float] = []
    for d in distances:
        acc = np.zeros((levels, levels))
        for dy, dx in ((0, d), (d, 0), (d, d), (d, -d)):
            a = q[max(0, -dy) : q.shape[0] - max(0, dy), max(0, -dx) : q.shape[1] - max(0, dx)]
            b = q[max(0, dy) :, max(0, dx) :][: a.shape[0], : a.shape[1]] if dx >= 0 else \
                q[max(0, dy) :, : q.shape[1] + dx][: a.shape[0], : a.shape[1]]
            m = np.bincount((a * levels + b).ravel(), minlength=levels * levels)
            m = m.reshape(levels, levels).astype(np.float64)
            acc += m + m.T
        pm = acc / acc.sum()
        mu_i, mu_j = (pm * i_idx).sum(), (pm * j_idx).sum()
        sd_i = np.sqrt((pm * (i_idx - mu_i) ** 2).sum())
        sd_j = np.sqrt((pm * (j_idx - mu_j) ** 2).sum())
        contrast = (pm * (i_idx - j_idx) ** 2).sum()
        homog = (pm / (1.0 + np.abs(i_idx - j_idx))).sum()
        energy = (pm**2).sum()
        cov = (pm * (i_idx - mu_i) * (j_idx - mu_j)).sum()
        corr = cov / (sd_i * sd_j) if sd_i * sd_j > 0 else 0.0
        nz = pm[pm > 0]
        entropy = -(nz * np.log(nz)).sum()
        out += [contrast, homog, energy, corr, entropy]
    return np.asarray(out)


def texture_raw(images01: np.ndarray) -> np.ndarray:
    """Unscaled LBP + GLCM + histogram features, ``(N, F)``."""
    feats = []
    for im in images01:
        hist = np.histogram(im, bins=16, range=(0.0, 1.0))[0].astype(np.float64) / im.size
        feats.append(np.concatenate([lbp_histogram(im, 1), lbp_histogram(im, 2),
                                     glcm_features(im), hist]))
    return np.stack(feats)


class TextureDescriptor:
    """LBP + GLCM + histogram, z-scored with the statistics of the data it is fitted on."""

    def __init__(self) -> None:
        self.mu: np.ndarray | None = None
        self.sd: np.ndarray | None = None

    def fit(self, images01: np.ndarray) -> TextureDescriptor:
        f = texture_raw(images01)
        self.mu, self.sd = f.mean(0), f.std(0) + 1e-9
        return self

    def __call__(self, images01: np.ndarray) -> np.ndarray:
        if self.mu is None or self.sd is None:
            raise RuntimeError("fit the texture descriptor on the gallery first")
        return (texture_raw(images01) - self.mu) / self.sd


class FrozenFeatureEmbedding:
    """Features -> unit embeddings with statistics of a training side: standardise each feature,
    L2-normalise, subtract the mean normalised training vector, L2-normalise again (the same
    centring the learned head gets, so frozen and trained embeddings compare fairly)."""

    def __init__(self, train_features: np.ndarray) -> None:
        f = np.asarray(train_features, dtype=np.float64)
        self.mu, self.sd = f.mean(0), f.std(0) + 1e-6
        self.centre = l2n((f - self.mu) / self.sd).mean(0)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        z = (np.asarray(features, dtype=np.float64) - self.mu) / self.sd
        return l2n(l2n(z) - self.centre)
