"""The v2 trunk (frozen ImageNet EfficientNet-Lite, int8) and cached features of training views.

Why a frozen trunk and cached features: on this project's 2-core CPU, back-propagating through
EfficientNet-Lite0 runs at ~28 images/s (depthwise convolutions), so fine-tuning it with grouped
cross-validation would take a day. Frozen, its ImageNet features already separate HiRISE landforms
(kNN 0.85 over 8 grouped folds); what it lacks is the cross-planet analogy and the invariances,
which a small projection head learns in minutes from the trunk's features of many random views.

Why Lite2 at 128 px with one view (model 2.3): with no training at all, over the 8 grouped folds
(float trunks, pools after stages 4, 5 and 7, standardised and centred per fold), kNN accuracy /
macro-F1 were Lite0 128 px with the 180-degree view (2.2's trunk, 233 M multiply-adds) 0.835 /
0.730; Lite0 176 px, one view (209 M) 0.845 / 0.750; Lite1 128 px (155 M) 0.856 / 0.764; Lite2
128 px (178 M) 0.862 / 0.769; Lite2 with the turned view too (357 M, over the 0.5 GFLOP budget)
0.863 / 0.777; Lite2 at 112 / 144 px 0.847 / 0.855. A deeper, wider ImageNet network at the
resolution the landmarks keep their texture buys more than a second view of a smaller one.

Why int8: the quantized trunk (onnxruntime static QDQ, per-channel weights, 7-bit range so that
CPUs without VNNI do not saturate) runs 1.8x faster than float32 at the same kNN. The head is
trained on exactly the features the shipped int8 trunk computes (this module runs that same ONNX
file), so nothing shifts at export.

Test-time views: ``TrunkSpec.views`` = 2 averages the trunk over the tile and the tile turned by
180 degrees (exact invariance to that turn; 2.2 did); 1 runs the tile alone; other rotations are
learned from the training views either way.
Features: global average pools at the end of stages 4, 5 and 7, because mid-level texture
statistics carry landform type as much as the last stage (Lite2: 88 + 120 + 352 = 560 values).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from analog_plugin.core.preprocess import LayerStats, PixelContract, image_stats, prepare_image

from .data import TRAIN_PIXELS
from .efficientnet_lite import (
    PRETRAINED_MEAN,
    PRETRAINED_STD,
    VARIANTS,
    LiteTrunk,
    LiteVariant,
    load_pretrained,
)
from .views import ViewConfig, prepare_views, random_view


@dataclass(frozen=True)
class TrunkSpec:
    """What the trunk is, what it sees and what it gives."""

    variant: int = 2  # EfficientNet-Lite2 (2.3); Lite0 in 2.0-2.2 (module docstring)
    input_size: int = 128  # 96 px in 2.0-2.1; 128 px: +0.016 kNN in grouped CV (the card)
    tap_stages: tuple[int, ...] = (4, 5, 7)  # stages at whose end features are pooled
    views: int = 1  # test-time views: 1 = the tile, 2 = the tile and its 180-degree turn
    tile_px: int = 160  # the declared tile (geometric centre of the 2x view-size jitter)
    calibration_images: int = 384

    @property
    def lite(self) -> LiteVariant:
        return VARIANTS[self.variant]

    @property
    def taps(self) -> tuple[int, ...]:
        """1-based blocks after which features are pooled."""
        return tuple(self.lite.stage_end(s) for s in self.tap_stages)

    def contract(self) -> PixelContract:
        return PixelContract(self.input_size, 1, (PRETRAINED_MEAN,), (PRETRAINED_STD,),
                             tile_px=self.tile_px, **TRAIN_PIXELS)  # type: ignore[arg-type]


class TapTrunk(nn.Module):
    """``(N, 1, S, S)`` -> ``(N, F)``: concatenated global average pools after ``taps``."""

    def __init__(self, variant: LiteVariant, taps: Sequence[int]) -> None:
        super().__init__()
        self.taps = tuple(taps)
        self.trunk = load_pretrained(LiteTrunk(variant, max(self.taps)))
        blocks: Any = self.trunk._blocks
        self.out_dim = 0
        for t in self.taps:
            self.out_dim += int(blocks[t - 1]._bn2.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.trunk
        h = nn.functional.relu6(t._bn0(t._conv_stem(x)))
        pooled = []
        for i, block in enumerate(t._blocks):
            h = block(h)
            if i + 1 in self.taps:
                pooled.append(h.mean(dim=(2, 3)))
        return torch.cat(pooled, dim=1)


def trunk_macs(spec: TrunkSpec) -> int:
    """Multiply-adds of one trunk pass at ``spec.input_size`` (every convolution, counted from
    its output size, kernel and groups; pooling and activations are negligible). The card's
    per-tile cost is this times the test-time views, x2 for FLOPs."""
    model = TapTrunk(spec.lite, spec.taps).eval()
    total = 0

    def count(mod: nn.Module, _inp: object, out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(mod, nn.Conv2d)
        k = mod.kernel_size[0] * mod.kernel_size[1]
        total += out.numel() * (mod.in_channels // mod.groups) * k

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(torch.zeros(1, 1, spec.input_size, spec.input_size))
    for h in hooks:
        h.remove()
    return total


def build_trunk(spec: TrunkSpec, calib: np.ndarray, out_dir: Path) -> Path:
    """Export the float trunk and quantize it with ``calib`` (prepared inputs) -> int8 ONNX path.
    Deterministic: the same calibration inputs give the same file."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out_dir.mkdir(parents=True, exist_ok=True)
    f32, pre, q = (out_dir / n for n in ("trunk_f32.onnx", "trunk_pre.onnx", "trunk_int8.onnx"))
    model = TapTrunk(spec.lite, spec.taps).eval()
    s = spec.input_size
    torch.onnx.export(model, (torch.zeros(2, 1, s, s),), str(f32), input_names=["x"],
                      output_names=["features"], dynamic_axes={"x": {0: "n"}, "features": {0: "n"}},
                      opset_version=17, do_constant_folding=True, dynamo=False)
    quant_pre_process(str(f32), str(pre))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.i = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.i >= len(calib):
                return None
            batch = calib[self.i : self.i + 32].astype(np.float32)
            self.i += 32
            return {"x": batch}

    quantize_static(str(pre), str(q), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    reduce_range=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    pre.unlink(missing_ok=True)
    return q


class TrunkRunner:
    """The int8 trunk in onnxruntime, over ``views`` test-time views (1: the tile; 2: the mean of
    the tile and its 180 degree turn), exactly as the exported graph runs it."""

    def __init__(self, path: Path, threads: int = 2, views: int = 1) -> None:
        import onnxruntime as ort

        if views not in (1, 2):
            raise ValueError(f"test-time views must be 1 or 2, got {views}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.views = views
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def features(self, x: np.ndarray, batch: int = 256) -> np.ndarray:
        out = []
        for i in range(0, len(x), batch):
            b = np.ascontiguousarray(x[i : i + batch], dtype=np.float32)
            if self.views == 1:
                out.append(self.session.run(None, {"x": b})[0])
                continue
            turned = np.ascontiguousarray(b[:, :, ::-1, ::-1])
            both = self.session.run(None, {"x": np.concatenate([b, turned])})[0]
            out.append((both[: len(b)] + both[len(b) :]) / 2)
        return np.concatenate(out).astype(np.float32)


@dataclass(frozen=True)
class FeatureSet:
    """Trunk features of every image: ``clean`` (N, F) whole image; ``views`` (N, K, F)."""

    clean: np.ndarray
    views: np.ndarray


def trunk_key(spec: TrunkSpec, seed: int, n_images: int) -> str:
    """What the quantized trunk depends on (spec, calibration seed and corpus size), hashed.

    Why: ``train_v2.py`` reuses ``trunk_int8.onnx`` from an earlier run; without this key a
    changed ``TrunkSpec`` (variant, size, taps) or a run killed mid-quantization would silently
    reuse a stale or partial trunk, and the features cached under the new spec would come from it.
    """
    return _digest([asdict(spec), asdict(ViewConfig()), seed, n_images])


def _digest(parts: list[Any], length: int = 16) -> str:
    """Short sha1 of ``parts`` as JSON: the cache keys of the trunk and of the features."""
    return hashlib.sha1(json.dumps(parts, default=str).encode()).hexdigest()[:length]


def calibration_inputs(raws: Sequence[np.ndarray], spec: TrunkSpec, seed: int) -> np.ndarray:
    """Prepared whole images and random views of a seeded sample (what the trunk will see)."""
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(raws), size=min(spec.calibration_images, len(raws)),
                              replace=False))
    contract, cfg = spec.contract(), ViewConfig()
    out = []
    for i in pick:
        raw = np.asarray(raws[i], dtype=np.float32)
        layer = image_stats(raw, None, contract)
        out.append(prepare_image(raw, contract, None, layer))
        out.append(prepare_views([random_view(raw, rng, cfg)], contract, layer)[0])
    return np.stack(out)


def compute_features(raws: Sequence[np.ndarray], runner: TrunkRunner, spec: TrunkSpec,
                     n_views: int, seed: int, cache: Path | None,
                     log: Callable[[str], None] = print, chunk: int = 256) -> FeatureSet:
    """Features of every raw image (clean) and of ``n_views`` random views each, in chunks cached
    under ``cache`` (a rerun resumes; image i's views come from its own seeded RNG, so chunking
    does not change them)."""
    contract, cfg = spec.contract(), ViewConfig()
    key = _digest([asdict(spec), asdict(contract), asdict(cfg), n_views, seed, len(raws)], 12)
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    t0 = time.time()
    for start in range(0, len(raws), chunk):
        path = cache / f"features_{key}_{start:06d}.npz" if cache else None
        if path is not None and path.exists():
            with np.load(path) as z:
                parts.append((z["clean"], z["views"]))
            continue
        xs, counts = [], []
        for i in range(start, min(start + chunk, len(raws))):
            raw = np.asarray(raws[i], dtype=np.float32)
            rng = np.random.default_rng([seed, i])
            layer: LayerStats = image_stats(raw, None, contract)
            xs.append(prepare_image(raw, contract, None, layer)[None])
            xs.append(prepare_views([random_view(raw, rng, cfg) for _ in range(n_views)],
                                    contract, layer))
            counts.append(1 + n_views)
        f = runner.features(np.concatenate(xs)).reshape(len(counts), 1 + n_views, -1)
        clean, views = f[:, 0], f[:, 1:]
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.stem + ".tmp.npz")
            np.savez(tmp, clean=clean, views=views)
            tmp.replace(path)
        parts.append((clean, views))
        done = min(start + chunk, len(raws))
        rate = (done - start) / max(time.time() - t0, 1e-9)
        log(f"features: {done}/{len(raws)} images ({1 + n_views} views each), "
            f"ETA {(len(raws) - done) / max(rate, 1e-9) / 60:.1f} min")
        t0 = time.time()
    return FeatureSet(np.concatenate([p[0] for p in parts]),
                      np.concatenate([p[1] for p in parts]))
