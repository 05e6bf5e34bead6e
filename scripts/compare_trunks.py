#!/usr/bin/env python
"""Choose the v2 trunk: frozen ImageNet EfficientNet-Lite variants with no training at all.

    python scripts/compare_trunks.py --data ../shared/data [--configs 0:128:2 2:128:1 ...]

Why a script of its own: the trunk is frozen, so its ImageNet features bound what the head can
reach, and comparing trunks through the whole training pipeline costs an hour each. Here every
configuration (variant : input px : test-time views) embeds every image once in float32 (the
shipped trunk is int8; the ranking is what matters), pools after the ``TrunkSpec`` stages, and
is scored by kNN (k=5) over the same 8 grouped folds, embedded as ``evaluate.py``'s frozen
baseline is (``baselines.FrozenFeatureEmbedding``: standardised with the training side's Mars
statistics, centred, unit length). It prints a markdown
table with each configuration's multiply-adds per tile against the 0.5 GFLOP budget
(250 M multiply-adds). Features are cached under ``--cache``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "scripts"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from analog_train.baselines import FrozenFeatureEmbedding  # noqa: E402
from analog_train.features import TapTrunk, TrunkSpec, trunk_macs  # noqa: E402
from analog_train.folds import make_folds  # noqa: E402
from analog_train.metrics import accuracy, knn_predict, macro_f1  # noqa: E402
from evaluate import load_corpus  # noqa: E402

from analog_plugin.core.preprocess import prepare_image  # noqa: E402

DEFAULT_CONFIGS = ("0:128:2", "0:176:1", "1:128:1", "2:112:1", "2:128:1", "2:144:1", "2:128:2")


def frozen_features(raws: list[np.ndarray], spec: TrunkSpec, cache: Path) -> np.ndarray:
    """Pooled float32 trunk features of every image, averaged over ``spec.views`` views."""
    name = f"frozen_L{spec.variant}_{spec.input_size}_{spec.views}.npy"
    if (cache / name).exists():
        return np.load(cache / name)  # type: ignore[no-any-return]
    net = TapTrunk(spec.lite, spec.taps).eval()
    contract = spec.contract()
    out = []
    for i in range(0, len(raws), 128):
        x = torch.from_numpy(np.stack([prepare_image(np.asarray(r, np.float32), contract)
                                       for r in raws[i : i + 128]]))
        with torch.no_grad():
            f = net(x)
            if spec.views == 2:
                f = (f + net(torch.flip(x, dims=(2, 3)))) / 2
        out.append(f.numpy())
    feats = np.concatenate(out)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(cache / name, feats)
    return feats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS),
                    help="variant:input_px:views, e.g. 2:128:1")
    ap.add_argument("--cache", type=Path, default=ROOT / "runs" / "trunks")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    corpus, labels, aid = load_corpus(args.data)
    folds = make_folds(labels, aid, 4, 2)
    lab = np.array(corpus.label)
    rows = ["| trunk | input px | views | M multiply-adds / tile | kNN (mean ± sd) | macro-F1 |",
            "|---|---|---|---|---|---|"]
    for config in args.configs:
        variant, size, views = (int(v) for v in config.split(":"))
        spec = replace(TrunkSpec(), variant=variant, input_size=size, views=views)
        t0 = time.time()
        feats = frozen_features(corpus.raws, spec, args.cache)
        knn, f1 = [], []
        for fold in folds:
            val = corpus.validation(fold)
            tr = ~val & corpus.mars
            emb = FrozenFeatureEmbedding(feats[tr])(feats)
            q, g = np.flatnonzero(corpus.mars & val), np.flatnonzero(tr)
            pred = knn_predict(emb[q], emb[g], list(lab[g]), 5)
            knn.append(accuracy(list(lab[q]), pred))
            f1.append(macro_f1(list(lab[q]), pred))
        macs = trunk_macs(spec) * views / 1e6
        rows.append(f"| EfficientNet-Lite{variant} | {size} | {views} | {macs:.0f} | "
                    f"{np.mean(knn):.3f} ± {np.std(knn):.3f} | {np.mean(f1):.3f} |")
        print(rows[-1], f"({time.time() - t0:.0f} s)", flush=True)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
