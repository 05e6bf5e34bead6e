#!/usr/bin/env python
"""Rewrite tests/data/golden_embedding.json for the bundled model (run after ``make model``).

The golden test (tests/core/test_contract.py) embeds tests/data/golden_tile.png with the bundled
model through the plugin's own path (file decode -> contract preprocessing -> ONNX) and compares
with the numbers stored here: any silent drift of that chain fails it. A retrained model changes
the numbers on purpose, hence this script; the tile itself stays.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analog_plugin.core.image_files import read_image_file  # noqa: E402
from analog_plugin.core.model import EmbeddingModel  # noqa: E402
from analog_plugin.core.paths import bundled_model_path  # noqa: E402
from analog_plugin.core.preprocess import prepare_image  # noqa: E402

GOLDEN = ROOT / "tests" / "data" / "golden_embedding.json"


def main() -> int:
    old = json.loads(GOLDEN.read_text())
    model = EmbeddingModel(bundled_model_path(), device="cpu")
    pixels, valid = read_image_file(ROOT / old["tile"])
    emb = model.embed(prepare_image(pixels, model.contract, valid)[None])[0]
    new = {**old, "model_sha256": model.sha256, "model_version": model.metadata.version,
           "embedding": [round(float(v), 7) for v in emb]}
    GOLDEN.write_text(json.dumps(new, indent=1) + "\n")
    print(f"{GOLDEN.relative_to(ROOT)}: model {model.metadata.version} {model.sha256[:12]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
