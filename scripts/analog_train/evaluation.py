"""The evaluation protocol: Mars-to-Mars retrieval/kNN, Earth-to-Mars dune retrieval, invariance.

Every method (learned network or baseline) is a function ``(N, S, S) 0..1 images -> (N, D)``
features; the images come from ``analog_plugin.core.preprocess.prepare_image`` so the learned
model sees exactly what the plugin feeds it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .metrics import (
    accuracy,
    cosine_pairs,
    f1_per_class,
    knn_predict,
    macro_f1,
    map_at_r,
    per_class_mean,
    precision_at_k,
)

Embedder = Callable[[np.ndarray], np.ndarray]
DUNE_LABELS = frozenset({"mars:dark_dune", "mars:bright_dune"})


def mars_to_mars(
    query: np.ndarray, query_labels: Sequence[str], gallery: np.ndarray,
    gallery_labels: Sequence[str], k: int = 5,
) -> dict:
    """kNN (k=5) accuracy / macro-F1, per-class mAP@R and precision@10 (train tiles as
    gallery)."""
    pred = knn_predict(query, gallery, gallery_labels, k)
    m = map_at_r(query, query_labels, gallery, gallery_labels)
    p10 = precision_at_k(query, gallery, gallery_labels, list(query_labels), 10)
    map_c = per_class_mean(m, query_labels)
    p10_c = per_class_mean(p10, query_labels)
    return {
        "knn_accuracy": accuracy(query_labels, pred),
        "macro_f1": macro_f1(query_labels, pred),
        "f1_per_class": f1_per_class(query_labels, pred),
        "map_at_r_per_class": map_c,
        "map_at_r_macro": float(np.mean(list(map_c.values()))),
        "p_at_10_per_class": p10_c,
        "p_at_10_macro": float(np.mean(list(p10_c.values()))),
    }


def earth_to_mars(
    query: np.ndarray, gallery: np.ndarray, gallery_labels: Sequence[str], k: int = 50
) -> dict:
    """Earth desert queries against Mars tiles: precision@k of dune tiles and its lift over the
    base rate of dunes in the gallery (lift 1 = no better than picking tiles at random)."""
    rel = [set(DUNE_LABELS)] * len(query)
    p = precision_at_k(query, gallery, gallery_labels, rel, k)
    base = float(np.mean([g in DUNE_LABELS for g in gallery_labels]))
    prec = float(p.mean())
    return {"precision_at_k": prec, "k": k, "base_rate": base,
            "lift": prec / base if base > 0 else float("nan"), "n_queries": len(query)}


# ----------------------------------------------------------------------------------------------
# Invariance: transformations of the raw tile, then the plugin preprocessing.


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    r = int(3 * sigma + 0.5)
    x = np.arange(-r, r + 1)
    k = np.exp(-(x**2) / (2 * sigma**2))
    k /= k.sum()
    p = np.pad(img.astype(np.float64), r, mode="reflect")
    p = np.apply_along_axis(lambda v: np.convolve(v, k, mode="valid"), 0, p)
    p = np.apply_along_axis(lambda v: np.convolve(v, k, mode="valid"), 1, p)
    return p


def _rotate(img: np.ndarray, degrees: float) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img.astype(np.uint8)).rotate(degrees, Image.BILINEAR))


def _centre(img: np.ndarray, frac: float = 0.68) -> np.ndarray:
    h, w = img.shape
    ch, cw = int(h * frac), int(w * frac)
    return img[(h - ch) // 2 : (h - ch) // 2 + ch, (w - cw) // 2 : (w - cw) // 2 + cw]


def _gamma(img: np.ndarray, g: float) -> np.ndarray:
    return 255.0 * (img.astype(np.float64) / 255.0) ** g


TRANSFORMS: dict[str, Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    # each returns (reference, transformed) raw 2-D images; rot45 compares centre crops so that
    # no rotated-in border enters either image
    "rot90": lambda im: (im, np.rot90(im, 1)),
    "rot180": lambda im: (im, np.rot90(im, 2)),
    "rot45": lambda im: (_centre(im), _centre(_rotate(im, 45))),
    "flip": lambda im: (im, im[:, ::-1]),
    "relit_gamma0.6": lambda im: (im, _gamma(im, 0.6)),
    "relit_gamma1.6": lambda im: (im, _gamma(im, 1.6)),
    "blur_sigma2": lambda im: (im, _blur(im, 2.0)),
}


def prepare01(raw: np.ndarray, size: int) -> np.ndarray:
    """The plugin preprocessing with mean 0 / std 1: ``(size, size)`` 0..1 (data.prepare01)."""
    from .data import prepare01 as shared

    return shared(raw, size)


@dataclass
class InvarianceSet:
    """Preprocessed (reference, transformed) image pairs per transform, plus unrelated pairs."""

    pairs: dict[str, tuple[np.ndarray, np.ndarray]]
    different: tuple[np.ndarray, np.ndarray]
    different_class: tuple[np.ndarray, np.ndarray] | None = None


def build_invariance_set(
    raws: Sequence[np.ndarray],
    groups: Sequence[str],
    size: int,
    seed: int = 0,
    classes: Sequence[str] | None = None,
) -> InvarianceSet:
    """Apply every transform to each raw tile; 'different' pairs are tiles from different
    observations (random, seeded); with ``classes``, also pairs of different observations *and*
    different classes (a class-aware model is meant to keep same-class tiles close)."""
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, fn in TRANSFORMS.items():
        a, b = [], []
        for raw in raws:
            ref, tr = fn(np.asarray(raw)[0] if np.asarray(raw).ndim == 3 else np.asarray(raw))
            a.append(prepare01(np.ascontiguousarray(ref), size))
            b.append(prepare01(np.ascontiguousarray(tr), size))
        pairs[name] = (np.stack(a), np.stack(b))
    rng = np.random.default_rng(seed)
    n = len(raws)
    i = rng.integers(0, n, size=4 * n)
    j = rng.integers(0, n, size=4 * n)
    keep = np.array([groups[a] != groups[b] for a, b in zip(i, j, strict=True)])
    i, j = i[keep][:n], j[keep][:n]
    base = pairs["rot90"][0]
    diff_cls = None
    if classes is not None:
        i2 = rng.integers(0, n, size=8 * n)
        j2 = rng.integers(0, n, size=8 * n)
        ok = np.array([groups[a] != groups[b] and classes[a] != classes[b]
                       for a, b in zip(i2, j2, strict=True)])
        diff_cls = (base[i2[ok][:n]], base[j2[ok][:n]])
    return InvarianceSet(pairs, (base[i], base[j]), diff_cls)


def invariance(embed: Embedder, inv: InvarianceSet) -> dict:
    """Mean cosine of a tile with its transformed self, vs of two different tiles; the gap and
    the fraction of tiles whose transformed self is closer than an unrelated tile."""
    diff = cosine_pairs(embed(inv.different[0]), embed(inv.different[1]))
    out: dict = {"different_tiles_cos": float(diff.mean())}
    if inv.different_class is not None:
        dc = cosine_pairs(embed(inv.different_class[0]), embed(inv.different_class[1]))
        out["different_class_cos"] = float(dc.mean())
    same_all = []
    for name, (a, b) in inv.pairs.items():
        same = cosine_pairs(embed(a), embed(b))
        same_all.append(same.mean())
        m = min(len(same), len(diff))
        out[name] = {"same_cos": float(same.mean()),
                     "beats_different": float(np.mean(same[:m] > diff[:m]))}
    out["mean_same_cos"] = float(np.mean(same_all))
    out["gap"] = out["mean_same_cos"] - out["different_tiles_cos"]
    if "different_class_cos" in out:
        out["gap_different_class"] = out["mean_same_cos"] - out["different_class_cos"]
    return out
