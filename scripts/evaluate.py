#!/usr/bin/env python
"""Evaluate the exported embedding model against baselines on the validation split.

    python scripts/evaluate.py --data ../shared/data --model models/analog-siamese.onnx

Images go through the plugin's ``prepare_image`` (per-image 2-98 % stretch, luma, area resize,
(x-mean)/std with the model's metadata). Methods: the learned ONNX model, raw downsampled pixels,
an LBP + GLCM texture descriptor, and the same network with random weights. Writes a markdown
table, a JSON file with every number, and PNG figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "scripts"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import numpy as np  # noqa: E402
from analog_train.baselines import TextureDescriptor, raw_pixels  # noqa: E402
from analog_train.data import HIRISE_DIR, load_split, read_image, read_labels  # noqa: E402
from analog_train.evaluation import (  # noqa: E402
    DUNE_LABELS,
    build_invariance_set,
    earth_to_mars,
    invariance,
    mars_to_mars,
    prepare01,
)
from analog_train.export import onnx_embed, read_metadata  # noqa: E402
from analog_train.figures import embedding_map, retrieval_grid  # noqa: E402
from analog_train.metrics import ranking  # noqa: E402
from analog_train.report import markdown_table  # noqa: E402

from analog_plugin.core.preprocess import normalise  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "analog-siamese.onnx")
    ap.add_argument("--split", type=Path, default=ROOT / "models" / "analog-siamese.split.json")
    ap.add_argument("--figures", type=Path, default=ROOT / "models" / "figures")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "eval")
    ap.add_argument("--n-invariance", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.time()

    meta = read_metadata(args.model)
    size = int(meta["input_size"])  # type: ignore[call-overload]
    mean, std = list(meta["mean"]), list(meta["std"])  # type: ignore[call-overload]
    split = load_split(args.split)
    val_obs = set(split.val_observations)
    labels = read_labels(args.data / HIRISE_DIR / "labels.csv")
    mars_raw = [read_image(args.data / HIRISE_DIR / "tiles" / r.file) for r in labels]
    mars01 = np.stack([prepare01(r, size) for r in mars_raw])
    is_val = np.array([r.observation in val_obs for r in labels])
    mlab = np.array([f"mars:{r.cls}" for r in labels])
    mobs = np.array([r.observation for r in labels])
    aid_files = [(c, f) for c, fs in sorted(split.aid_val.items()) for f in fs]
    aid01 = np.stack([prepare01(read_image(args.data / "aid-natural" / "images" / c / f), size)
                      for c, f in aid_files])
    alab = np.array([f"earth:{c}" for c, _ in aid_files])
    print(f"{len(mars01)} Mars tiles ({is_val.sum()} val), {len(aid01)} AID val images "
          f"prepared in {time.time() - t0:.0f} s", flush=True)

    def learned(x01: np.ndarray) -> np.ndarray:
        return onnx_embed(args.model, normalise(x01[:, None].astype(np.float32), mean, std))

    import torch
    from analog_train.net import EmbeddingNet

    torch.manual_seed(args.seed)
    rnd_net = EmbeddingNet(1, embedding_dim=int(meta["embedding_dim"])).eval()  # type: ignore[call-overload]

    def random_raw(x01: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(normalise(x01[:, None].astype(np.float32), mean, std))
            return np.concatenate([rnd_net(x[i : i + 256]).numpy() for i in range(0, len(x), 256)])

    # Same treatment as the shipped graph: subtract the mean training embedding (fair comparison;
    # raw pixels are mean-removed and the texture features z-scored for the same reason).
    rnd_center = random_raw(mars01[~is_val]).mean(0)

    def random_net(x01: np.ndarray) -> np.ndarray:
        return random_raw(x01) - rnd_center

    texture = TextureDescriptor().fit(mars01[~is_val])
    methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "learned (Siamese)": learned, "raw pixels 16x16": raw_pixels,
        "LBP+GLCM texture": texture, "random-weight CNN": random_net,
    }

    rng = np.random.default_rng(args.seed)
    val_idx = np.flatnonzero(is_val)
    inv_idx = np.sort(rng.choice(val_idx, size=min(args.n_invariance, len(val_idx)), replace=False))
    inv = build_invariance_set([mars_raw[i] for i in inv_idx], list(mobs[inv_idx]), size,
                               args.seed, classes=list(mlab[inv_idx]))
    desert = alab == "earth:Desert"

    results: dict[str, dict] = {}
    embeds: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, fn in methods.items():
        t1 = time.time()
        em, ea = fn(mars01), fn(aid01)
        embeds[name] = (em, ea)
        results[name] = {
            "mars_to_mars": mars_to_mars(em[is_val], list(mlab[is_val]), em[~is_val],
                                         list(mlab[~is_val])),
            "earth_to_mars": earth_to_mars(ea[desert], em[is_val], list(mlab[is_val])),
            "earth_to_mars_all_tiles": earth_to_mars(ea[desert], em, list(mlab)),
            "invariance": invariance(fn, inv),
        }
        r = results[name]
        print(f"{name}: kNN acc {r['mars_to_mars']['knn_accuracy']:.3f} "
              f"F1 {r['mars_to_mars']['macro_f1']:.3f} "
              f"E2M lift {r['earth_to_mars']['lift']:.2f} "
              f"inv gap {r['invariance']['gap']:.3f} ({time.time() - t1:.0f} s)", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    info = {"model": str(args.model), "metadata": meta, "n_val_tiles": int(is_val.sum()),
            "n_train_tiles": int((~is_val).sum()), "n_desert_queries": int(desert.sum()),
            "val_observations": len(val_obs), "seconds": time.time() - t0}
    (args.out / "metrics.json").write_text(json.dumps({"info": info, "results": results},
                                                      indent=1))
    table = markdown_table(results)
    (args.out / "metrics.md").write_text(table)
    print(table)

    # Figures (learned model).
    em, ea = embeds["learned (Siamese)"]
    rows = []
    for qi in np.flatnonzero(desert)[:: max(1, int(desert.sum()) // 4)][:4]:
        order = ranking(ea[qi : qi + 1], em[is_val])[0][:7]
        rows.append((aid01[qi], str(alab[qi]),
                     [(mars01[val_idx[j]], str(mlab[val_idx[j]]), mlab[val_idx[j]] in DUNE_LABELS)
                      for j in order]))
    tr_idx = np.flatnonzero(~is_val)
    for cls in ("mars:dark_dune", "mars:bright_dune", "mars:crater", "mars:slope_streak",
                "mars:edge", "mars:other"):
        cand = [i for i in val_idx if mlab[i] == cls]
        if not cand:
            continue
        qi = cand[len(cand) // 2]
        order = ranking(em[qi : qi + 1], em[tr_idx])[0][:7]
        rows.append((mars01[qi], cls, [(mars01[tr_idx[j]], str(mlab[tr_idx[j]]),
                                        mlab[tr_idx[j]] == cls) for j in order]))
    retrieval_grid(rows, args.figures / "retrieval_grid.png")
    keep_aid = np.isin(alab, ["earth:Desert", "earth:BareLand", "earth:Mountain"])
    embedding_map(np.concatenate([em[is_val], ea[keep_aid]]),
                  list(mlab[is_val]) + list(alab[keep_aid]),
                  args.figures / "embedding_pca.png",
                  "PCA of learned embeddings: Mars val tiles (o), AID val (^)")
    er, ear = embeds["random-weight CNN"]
    embedding_map(np.concatenate([er[is_val], ear[keep_aid]]),
                  list(mlab[is_val]) + list(alab[keep_aid]),
                  args.figures / "embedding_pca_random.png",
                  "PCA of random-weight CNN embeddings (baseline)")
    print(f"figures in {args.figures}; metrics in {args.out}; {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
