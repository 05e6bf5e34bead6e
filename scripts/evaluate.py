#!/usr/bin/env python
"""Evaluate the shipped model, the previous one and baselines by grouped cross-validation.

    python scripts/evaluate.py --data ../shared/data --model models/analog-siamese.onnx \
        --fold-models runs/v2/folds --previous models/archive/analog-siamese-1.1.0.onnx

Folds: repeated grouped 4-fold (HiRISE by observation, AID per class; every class in every
validation fold; ``analog_train.folds``). Methods, all fed through the plugin's preprocessing:
- v2 (this model): for fold f the head trained without fold f (``--fold-models``/<fold>.onnx,
  written by ``train_v2.py --cv``), so its figures are honest held-out figures;
- v1: the previous shipped model (fixed weights; it was trained on 70 % of these tiles, so its
  cross-validated figures are optimistic);
- baselines: raw pixels 32x32, LBP+GLCM texture (fitted per fold), a random-weight CNN (v1's
  architecture, centred per fold) and the frozen ImageNet EfficientNet-Lite trunk with no
  training (standardised and centred per fold).
Writes ``<out>/cv_metrics.json``, ``<out>/cv_metrics.md``, the per-class confusion matrix and
retrieval figures under ``--figures``, and (``--card``) rewrites the model card from the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "scripts"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import numpy as np  # noqa: E402
from analog_train.baselines import (  # noqa: E402
    FrozenFeatureEmbedding,
    TextureDescriptor,
    raw_pixels,
)
from analog_train.card import write_card  # noqa: E402
from analog_train.cv_eval import (  # noqa: E402
    Corpus,
    Method,
    confusion,
    evaluate_fold,
    onnx_method,
    summarise,
)
from analog_train.data import (  # noqa: E402
    AID_DIR,
    HIRISE_DIR,
    TRAIN_PIXELS,
    list_aid,
    read_image,
    read_labels,
)
from analog_train.figures import confusion_figure  # noqa: E402
from analog_train.folds import (  # noqa: E402
    PREVIOUS_SPLIT,
    Fold,
    fold_table,
    make_folds,
    previous_model_split,
)
from analog_train.metrics import l2n  # noqa: E402

from analog_plugin.core.preprocess import prepare_image, unit_contract  # noqa: E402

MARS_ORDER = ("mars:other", "mars:edge", "mars:crater", "mars:dark_dune", "mars:bright_dune",
              "mars:slope_streak")


def eta(start: float, done: int, total: int) -> str:
    """"elapsed, ETA" of ``done`` of ``total`` similar steps begun at ``start`` (a full run is
    about a quarter of an hour, so it says how long is left)."""
    spent = time.time() - start
    left = spent / max(done, 1) * (total - done)
    return f"{spent:.0f} s, ETA {left / 60:.1f} min"


def load_corpus(data: Path) -> tuple[Corpus, list, dict]:
    labels = read_labels(data / HIRISE_DIR / "labels.csv")
    aid = list_aid(data)
    raws, lab, place, mars = [], [], [], []
    for r in labels:
        raws.append(read_image(data / HIRISE_DIR / "tiles" / r.file))
        lab.append(f"mars:{r.cls}")
        place.append(r.observation)
        mars.append(True)
    for cls, files in sorted(aid.items()):
        for f in files:
            raws.append(read_image(data / AID_DIR / "images" / cls / f))
            lab.append(f"earth:{cls}")
            place.append(f"{cls}/{f}")
            mars.append(False)
    return Corpus(raws, lab, place, np.array(mars)), labels, aid


def unit01(raws: Sequence[np.ndarray], size: int = 96) -> np.ndarray:
    """0..1 images through the plugin's per-tile contract (what the baselines get)."""
    c = unit_contract(size, 1, **TRAIN_PIXELS)  # type: ignore[arg-type]
    return np.stack([prepare_image(np.asarray(r, np.float32), c)[0] for r in raws])


def baseline_methods(corpus: Corpus, trunk: Path | None) -> list[Method]:
    """Training-free (or fitted-per-fold) baselines; each sees the training side only."""
    def train_side(fold: Fold) -> list[np.ndarray]:
        val = corpus.validation(fold)
        return [r for r, v, m in zip(corpus.raws, val, corpus.mars, strict=True) if m and not v]

    def raw32(raws: Sequence[np.ndarray], fold: Fold) -> np.ndarray:
        return l2n(raw_pixels(unit01(raws), 32))

    textures: dict[str, TextureDescriptor] = {}

    def texture(raws: Sequence[np.ndarray], fold: Fold) -> np.ndarray:
        if fold.name not in textures:
            textures[fold.name] = TextureDescriptor().fit(unit01(train_side(fold)[::4]))
        return l2n(textures[fold.name](unit01(raws)))

    import torch
    from analog_train.net import EmbeddingNet

    torch.manual_seed(0)
    rnd = EmbeddingNet(1, embedding_dim=64).eval()
    centres: dict[str, np.ndarray] = {}

    def rnd_raw(raws: Sequence[np.ndarray]) -> np.ndarray:
        x = torch.from_numpy((unit01(raws)[:, None] - 0.5) / 0.25).float()
        with torch.no_grad():
            return np.concatenate([rnd(x[i : i + 256]).numpy() for i in range(0, len(x), 256)])

    def random_cnn(raws: Sequence[np.ndarray], fold: Fold) -> np.ndarray:
        if fold.name not in centres:
            centres[fold.name] = rnd_raw(train_side(fold)).mean(0)
        return l2n(rnd_raw(raws) - centres[fold.name])

    methods = [Method("raw pixels 32x32", raw32), Method("LBP+GLCM texture", texture, True),
               Method("random-weight CNN", random_cnn, True)]
    if trunk is not None and trunk.exists():
        from analog_train.features import TrunkRunner, TrunkSpec

        spec = TrunkSpec()
        runner = TrunkRunner(trunk, views=spec.views)
        fitted: dict[str, FrozenFeatureEmbedding] = {}

        def feats(raws: Sequence[np.ndarray]) -> np.ndarray:
            c = spec.contract()
            return runner.features(np.stack([prepare_image(np.asarray(r, np.float32), c)
                                             for r in raws]))

        def frozen(raws: Sequence[np.ndarray], fold: Fold) -> np.ndarray:
            if fold.name not in fitted:
                fitted[fold.name] = FrozenFeatureEmbedding(feats(train_side(fold)))
            return fitted[fold.name](feats(raws))

        methods.append(Method(f"ImageNet Lite{spec.variant}, frozen (no training)", frozen, True))
    return methods


ROWS = [("kNN (k=5) accuracy", "knn_accuracy"), ("kNN macro-F1", "macro_f1"),
        ("mAP@R (macro)", "map_at_r_macro"), ("precision@10 (macro)", "p_at_10_macro"),
        ("Earth→Mars dune precision@50", "e2m_precision"),
        ("Earth→Mars dune lift (x base rate)", "e2m_lift"),
        ("invariance gap", "invariance_gap"),
        ("same-landform verification, balanced accuracy", "verify_balanced_accuracy")]
"""The card's table rows: (label, metric key)."""


def markdown(summary: dict[str, dict], folds: int) -> str:
    names = list(summary)
    out = [f"| grouped CV, {folds} folds (mean ± sd) | " + " | ".join(names) + " |",
           "|---|" + "---|" * len(names)]
    for label, key in ROWS:
        cells = [f"{summary[n][key]['mean']:.3f} ± {summary[n][key]['sd']:.3f}" for n in names]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def head_to_head_markdown(rows: dict[str, dict]) -> str:
    """One fold (v1's own split): a value per method, no spread."""
    names = list(rows)
    out = ["| v1's own validation split (39 observations it never saw) | " + " | ".join(names)
           + " |", "|---|" + "---|" * len(names)]
    for label, key in ROWS:
        out.append(f"| {label} | " + " | ".join(f"{rows[n][key]:.3f}" for n in names) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "analog-siamese.onnx")
    ap.add_argument("--fold-models", type=Path, default=ROOT / "runs" / "v2" / "folds")
    ap.add_argument("--previous", type=Path,
                    default=ROOT / "models" / "archive" / "analog-siamese-1.1.0.onnx")
    ap.add_argument("--previous-split", type=Path,
                    default=ROOT / "models" / "archive" / "analog-siamese-1.1.0.split.json",
                    help="the previous model's own train/validation split: with the v2 head "
                         "trained on its training side (<fold-models>/v1split.onnx, written by "
                         "train_v2.py --cv), both are compared on its validation side")
    ap.add_argument("--trunk", type=Path, default=ROOT / "runs" / "v2" / "trunk_int8.onnx")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--n-invariance", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "eval")
    ap.add_argument("--figures", type=Path, default=ROOT / "models" / "figures")
    ap.add_argument("--card", type=Path, default=None, help="rewrite this model card")
    args = ap.parse_args(argv)
    t0 = time.time()
    corpus, labels, aid = load_corpus(args.data)
    folds = make_folds(labels, aid, args.folds, args.repeats)
    print(f"{len(corpus.raws)} images, {len(folds)} folds, loaded in {time.time() - t0:.0f} s",
          flush=True)
    fold_dir = args.fold_models
    if not all((fold_dir / f"{f.name}.onnx").exists() for f in folds):
        raise SystemExit(f"fold models missing in {fold_dir}: run scripts/train_v2.py --cv")
    methods = [onnx_method("v2 (this model)", lambda f: str(fold_dir / f"{f.name}.onnx"), True)]
    if args.previous.exists():
        methods.append(onnx_method("v1 (1.1.0)", lambda f: str(args.previous), False))
    methods += baseline_methods(corpus, args.trunk)
    per_fold: dict[str, list[dict]] = {m.name: [] for m in methods}
    t_folds, n_runs = time.time(), len(folds) * len(methods) + len(methods)  # + head-to-head
    for i, fold in enumerate(folds):
        for j, m in enumerate(methods):
            per_fold[m.name].append(evaluate_fold(m, corpus, fold, args.n_invariance, args.seed))
            r = per_fold[m.name][-1]
            print(f"{fold.name} {m.name}: kNN {r['knn_accuracy']:.3f} F1 {r['macro_f1']:.3f} "
                  f"lift {r['e2m_lift']:.2f} inv {r['invariance_gap']:.3f} "
                  f"({eta(t_folds, i * len(methods) + j + 1, n_runs)})", flush=True)
        for m in methods:  # per-fold embeddings are not needed again
            m.cache.pop(fold.name, None)
    summary = {name: summarise(rows) for name, rows in per_fold.items()}
    head_to_head: dict[str, dict] = {}
    if args.previous_split.is_file() and (fold_dir / f"{PREVIOUS_SPLIT}.onnx").exists():
        split = previous_model_split(json.loads(args.previous_split.read_text()))
        for j, m in enumerate(methods):
            r = evaluate_fold(m, corpus, split, args.n_invariance, args.seed)
            head_to_head[m.name] = {k: v for k, v in r.items() if k != "confusion"}
            print(f"{split.name} {m.name}: kNN {r['knn_accuracy']:.3f} "
                  f"mAP@R {r['map_at_r_macro']:.3f} lift {r['e2m_lift']:.2f} "
                  f"({eta(t_folds, len(folds) * len(methods) + j + 1, n_runs)})", flush=True)
            m.cache.pop(split.name, None)
    args.out.mkdir(parents=True, exist_ok=True)
    table = markdown(summary, len(folds))
    doc = {"folds": fold_table(folds, labels), "summary": summary,
           "per_fold": {n: [{k: v for k, v in r.items() if k != "confusion"} for r in rows]
                        for n, rows in per_fold.items()},
           "head_to_head": head_to_head, "seconds": time.time() - t0}
    table_all = table
    if head_to_head:
        table_v1 = head_to_head_markdown(head_to_head)
        doc["head_to_head_table"] = table_v1
        table_all += "\n\n" + table_v1
    (args.out / "cv_metrics.json").write_text(json.dumps(doc, indent=1))
    (args.out / "cv_metrics.md").write_text(table_all + "\n")
    print(table_all)
    classes = [c for c in MARS_ORDER if c in set(corpus.label)]
    for name, stem in (("v2 (this model)", "confusion_v2"), ("v1 (1.1.0)", "confusion_v1")):
        if name in per_fold:
            confusion_figure(confusion(per_fold[name], classes),
                             [c.split(":")[1] for c in classes], args.figures / f"{stem}.png",
                             f"{name.split(' ')[0]}, grouped CV: truth (rows) x kNN prediction")
    if args.card is not None:
        thr = summary["v2 (this model)"]["verify_threshold_cos"]["mean"]
        stamp_threshold(args.model, thr)
        print(f"same_landform_cos = {thr:.4f} stamped into {args.model}")
        write_card(args.card, args.model, doc, table)
        print(f"card written: {args.card}")
    print(f"done in {time.time() - t0:.0f} s; metrics in {args.out}")
    return 0


def stamp_threshold(model: Path, cos: float) -> None:
    """Write the calibrated SAME_LANDFORM threshold into the model's metadata (atomically):
    the mean of the per-fold thresholds, each chosen on the training side of its fold."""
    import onnx

    m = onnx.load(str(model))
    props = {p.key: p.value for p in m.metadata_props}
    props["same_landform_cos"] = json.dumps(round(float(cos), 6))
    del m.metadata_props[:]
    for k, v in props.items():
        m.metadata_props.add(key=k, value=v)
    tmp = model.with_suffix(".onnx.tmp")
    onnx.save(m, str(tmp))
    tmp.replace(model)


if __name__ == "__main__":
    raise SystemExit(main())
