"""Grouped cross-validation of embedding methods, through the product's own preprocessing.

Every method is a ``Method``: ``embed(raws, fold)`` -> unit embeddings of raw images, where the
method may depend on the fold (a head trained without that fold, a texture descriptor fitted on
its training side) or not (a shipped ONNX model, raw pixels). ONNX models are run exactly as the
plugin runs them: ``EmbeddingModel`` (contract validation), ``prepare_image`` with the model's own
contract, ``model.embed``.

Per fold (validation side = one fold of observations and of AID files):
- Mars->Mars: queries are the validation tiles, the gallery the training-side tiles; kNN (k=5)
  accuracy and macro-F1, mAP@R and precision@10 per class (``evaluation.mars_to_mars``);
- Earth->Mars: validation AID Desert images against validation Mars tiles, precision@50 of dune
  tiles and its lift over their base rate (``evaluation.earth_to_mars``);
- invariance: ``n_invariance`` validation tiles, cos(tile, transformed tile) over the transforms of
  ``evaluation.TRANSFORMS`` minus cos(two tiles of different observations);
- verification: cosine of same-landform vs different-landform validation pairs (for the
  ``SAME_LANDFORM`` threshold of analog:comparetiles, chosen on the other folds).
Figures are mean and standard deviation over folds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .evaluation import TRANSFORMS, earth_to_mars, mars_to_mars
from .folds import Fold
from .metrics import cosine_pairs, knn_predict

EmbedFn = Callable[[Sequence[np.ndarray], Fold], np.ndarray]
HEADLINE = ("knn_accuracy", "macro_f1", "map_at_r_macro", "p_at_10_macro", "e2m_precision",
            "e2m_lift", "invariance_gap")


@dataclass
class Method:
    name: str
    embed: EmbedFn
    per_fold: bool = False  # True: embeddings change with the fold (refit per fold)
    cache: dict[str, np.ndarray] = field(default_factory=dict)

    def all_embeddings(self, raws: Sequence[np.ndarray], fold: Fold) -> np.ndarray:
        key = fold.name if self.per_fold else "all"
        if key not in self.cache:
            self.cache[key] = self.embed(raws, fold)
        return self.cache[key]


def onnx_method(name: str, path_for: Callable[[Fold], str], per_fold: bool) -> Method:
    """An ONNX model run as the plugin runs it (``path_for(fold)`` picks the file)."""
    from analog_plugin.core.model import EmbeddingModel
    from analog_plugin.core.preprocess import prepare_image

    models: dict[str, Any] = {}

    def embed(raws: Sequence[np.ndarray], fold: Fold) -> np.ndarray:
        path = path_for(fold)
        if path not in models:
            models[path] = EmbeddingModel(path, device="cpu", probe=False)
        model = models[path]
        out = []
        for i in range(0, len(raws), 256):
            x = np.stack([prepare_image(np.asarray(r, np.float32), model.contract)
                          for r in raws[i : i + 256]])
            out.append(model.embed(x))
        return np.concatenate(out)

    return Method(name, embed, per_fold)


@dataclass
class Corpus:
    """Raw images with ``label`` (mars:/earth:), ``place`` (observation or AID file), ``mars``."""

    raws: list[np.ndarray]
    label: list[str]
    place: list[str]
    mars: np.ndarray

    def validation(self, fold: Fold) -> np.ndarray:
        return np.array([(p in fold.val_observations) if m else (p in fold.val_aid)
                         for p, m in zip(self.place, self.mars, strict=True)])


def _invariance(method: Method, corpus: Corpus, fold: Fold, idx: np.ndarray,
                rng: np.random.Generator) -> dict[str, float]:
    raws = [np.asarray(corpus.raws[i])[0] for i in idx]
    out: dict[str, float] = {}
    sames = []
    for name, fn in TRANSFORMS.items():
        pairs = [fn(r) for r in raws]
        a = method.embed([p[0][None] for p in pairs], fold)
        b = method.embed([p[1][None] for p in pairs], fold)
        out[name] = float(cosine_pairs(a, b).mean())
        sames.append(out[name])
    base = method.embed([r[None] for r in raws], fold)
    i = rng.integers(0, len(idx), 4 * len(idx))
    j = rng.integers(0, len(idx), 4 * len(idx))
    ok = np.array([corpus.place[idx[a]] != corpus.place[idx[b]] for a, b in zip(i, j,
                                                                               strict=True)])
    diff = cosine_pairs(base[i[ok][: len(idx)]], base[j[ok][: len(idx)]])
    out["same_cos"] = float(np.mean(sames))
    out["different_cos"] = float(diff.mean())
    out["gap"] = out["same_cos"] - out["different_cos"]
    return out


def _verification_pairs(emb: np.ndarray, labels: Sequence[str], rng: np.random.Generator,
                        n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Cosines and same-landform flags of random pairs of different images."""
    i = rng.integers(0, len(emb), n)
    j = rng.integers(0, len(emb), n)
    keep = i != j
    i, j = i[keep], j[keep]
    same = np.array([labels[a] == labels[b] for a, b in zip(i, j, strict=True)])
    return np.einsum("nd,nd->n", emb[i], emb[j]), same


def best_threshold(cos: np.ndarray, same: np.ndarray) -> float:
    """Cosine threshold maximising balanced accuracy of "same landform" on these pairs."""
    best_t, best = 0.0, -1.0
    for t in np.quantile(cos, np.linspace(0.02, 0.98, 97)):
        pred = cos >= t
        bal = 0.5 * (pred[same].mean() + (~pred[~same]).mean())
        if bal > best:
            best_t, best = float(t), float(bal)
    return best_t


def evaluate_fold(method: Method, corpus: Corpus, fold: Fold, n_invariance: int,
                  seed: int) -> dict[str, Any]:
    emb = method.all_embeddings(corpus.raws, fold)
    val = corpus.validation(fold)
    label = np.array(corpus.label)
    q = np.flatnonzero(corpus.mars & val)
    g = np.flatnonzero(corpus.mars & ~val)
    m2m = mars_to_mars(emb[q], list(label[q]), emb[g], list(label[g]))
    desert = np.flatnonzero(val & (label == "earth:Desert"))
    e2m = earth_to_mars(emb[desert], emb[q], list(label[q]))
    rng = np.random.default_rng([seed, fold.repeat, fold.index])
    inv_idx = np.sort(rng.choice(q, size=min(n_invariance, len(q)), replace=False))
    inv = _invariance(method, corpus, fold, inv_idx, rng)
    pred = knn_predict(emb[q], emb[g], list(label[g]), 5)
    cos, same = _verification_pairs(emb[q], list(label[q]), rng)
    cos_tr, same_tr = _verification_pairs(emb[g], list(label[g]), rng)
    t = best_threshold(cos_tr, same_tr)  # chosen on the training side, tested on validation
    verdict = cos >= t
    return {
        "fold": fold.name, **{k: m2m[k] for k in ("knn_accuracy", "macro_f1", "map_at_r_macro",
                                                  "p_at_10_macro")},
        "f1_per_class": m2m["f1_per_class"], "e2m_precision": e2m["precision_at_k"],
        "e2m_lift": e2m["lift"], "e2m_base_rate": e2m["base_rate"],
        "invariance_gap": inv["gap"], "invariance": inv,
        "verify_threshold_cos": t,
        "verify_balanced_accuracy": float(0.5 * (verdict[same].mean()
                                                 + (~verdict[~same]).mean())),
        "confusion": {"truth": list(label[q]), "pred": list(pred)},
    }


def summarise(per_fold: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation over folds of the headline metrics."""
    keys = (*HEADLINE, "verify_balanced_accuracy", "verify_threshold_cos")
    out: dict[str, Any] = {}
    for k in keys:
        v = np.array([f[k] for f in per_fold], dtype=np.float64)
        out[k] = {"mean": float(np.nanmean(v)), "sd": float(np.nanstd(v)), "n": int(len(v))}
    classes = sorted({c for f in per_fold for c in f["f1_per_class"]})
    out["f1_per_class"] = {c: float(np.mean([f["f1_per_class"].get(c, 0.0) for f in per_fold]))
                           for c in classes}
    return out


def confusion(per_fold: list[dict[str, Any]], classes: Sequence[str]) -> np.ndarray:
    """Row-normalised confusion matrix (truth x prediction) pooled over the folds."""
    idx = {c: i for i, c in enumerate(classes)}
    m = np.zeros((len(classes), len(classes)))
    for f in per_fold:
        for t, p in zip(f["confusion"]["truth"], f["confusion"]["pred"], strict=True):
            m[idx[t], idx[p]] += 1
    return m / np.maximum(m.sum(axis=1, keepdims=True), 1)
