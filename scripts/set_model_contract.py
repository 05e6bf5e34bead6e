#!/usr/bin/env python3
"""Declare the pixel contract (``preprocessing``, ``tile_px``) in an exported model's metadata.

Why: model 1.0.0 was exported before the contract had these keys, so the plugin prepared its tiles
with a per-layer stretch and 96 px tiles while it had been trained on per-tile stretched views of
~204 px. The weights are right; only the declaration was missing. This rewrites the metadata of
the ONNX file (weights untouched, byte-for-byte deterministic) with the training contract of
``scripts/analog_train/data.py`` and a new minor version. ``export_onnx.py`` writes the same keys
for every newly trained model.

    python scripts/set_model_contract.py models/analog-siamese.onnx --version 1.1.0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO))

import onnx  # noqa: E402
from analog_train.data import TILE_PX, TRAIN_PIXELS  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--version", required=True, help="new model version, e.g. 1.1.0")
    ap.add_argument("--tile-px", type=int, default=TILE_PX)
    args = ap.parse_args()
    proto = onnx.load(str(args.model))
    meta = {p.key: p.value for p in proto.metadata_props}
    pre = {**TRAIN_PIXELS, "percentiles": list(TRAIN_PIXELS["percentiles"])}  # type: ignore[call-overload]
    meta["preprocessing"] = json.dumps(pre)
    meta["tile_px"] = json.dumps(args.tile_px)
    meta["version"] = json.dumps(args.version)
    del proto.metadata_props[:]
    for key in sorted(meta):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, meta[key]
    onnx.save(proto, str(args.model))
    print(f"{args.model}: version {args.version}, preprocessing {meta['preprocessing']}, "
          f"tile_px {args.tile_px}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
