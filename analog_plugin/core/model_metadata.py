"""The model contract's metadata_props: which keys a model must carry, their types, and how
they decode into a :class:`ModelMetadata` (with the pixel contract of ``preprocess``).

Apart from ``model.py`` so that the rules can be read (and tested) without onnxruntime: a key
with the wrong JSON type or value gets a message naming the key, what was found and what is
expected (docs/DESIGN.md, "Model contract").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .errors import ModelContractError
from .preprocess import DEFAULT_PERCENTILES, MAX_PERCENTILE_STEP, STRETCH_MODES, PixelContract

MODEL_TYPE = "analog-embedding"

REQUIRED_KEYS: dict[str, tuple[type, ...]] = {
    "model_type": (str,),
    "input_channels": (int,),
    "input_size": (int,),
    "mean": (list,),
    "std": (list,),
    "embedding_dim": (int,),
    "gsd_m": (int, float, type(None)),
    "version": (str,),
    "training_data": (str,),
}


OPTIONAL_KEYS = ("preprocessing", "tile_px")
"""Contract keys added in model version 1.1. Models without them load with the behaviour they
were shipped with: ``preprocessing`` = per-layer 2-98 % stretch, ``tile_px`` = ``input_size``."""

LEGACY_PREPROCESSING = {"stretch": "layer", "percentiles": list(DEFAULT_PERCENTILES)}


@dataclass(frozen=True)
class ModelMetadata:
    """The decoded metadata_props of a contract-conforming model."""

    model_type: str
    input_channels: int
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    embedding_dim: int
    gsd_m: float | None
    version: str
    training_data: str
    preprocessing: tuple[tuple[str, Any], ...] = ()
    tile_px: int = 0
    same_landform_cos: float | None = None  # calibrated verification threshold (optional)

    def contract(self) -> PixelContract:
        """The pixel contract every path (scoring, library, training) prepares tiles with."""
        pre = dict(self.preprocessing) or dict(LEGACY_PREPROCESSING)
        return PixelContract(
            input_size=self.input_size,
            channels=self.input_channels,
            mean=self.mean,
            std=self.std,
            stretch=str(pre.get("stretch", "layer")),
            percentiles=tuple(pre.get("percentiles", DEFAULT_PERCENTILES)),  # type: ignore[arg-type]
            min_span_fraction=float(pre.get("min_span_fraction", 0.1)),
            percentile_step=int(pre.get("percentile_step", 1)),
            tile_px=self.tile_px,  # 0 -> input_size (PixelContract's default)
        )


def _parse_preprocessing(raw: str | None, where: str, fix: str) -> tuple[tuple[str, Any], ...]:
    if raw is None:
        return ()
    try:
        pre = json.loads(raw)
    except (json.JSONDecodeError, TypeError) as err:
        raise ModelContractError(
            f"{where}: metadata 'preprocessing' is not JSON ({err}); {fix}"
        ) from err
    if not isinstance(pre, dict):
        raise ModelContractError(
            f"{where}: metadata 'preprocessing' = {raw!r} must be a JSON object like "
            '{"stretch": "tile", "percentiles": [2, 98], "min_span_fraction": 0.1}; ' + fix
        )
    stretch = pre.get("stretch", "layer")
    if stretch not in STRETCH_MODES:
        raise ModelContractError(
            f"{where}: metadata preprocessing.stretch = {stretch!r}; use one of {STRETCH_MODES}"
        )
    pct = pre.get("percentiles", list(DEFAULT_PERCENTILES))
    if not (
        isinstance(pct, list) and len(pct) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pct)
        and 0 <= pct[0] < pct[1] <= 100
    ):
        raise ModelContractError(
            f"{where}: metadata preprocessing.percentiles = {pct!r} must be [low, high] with "
            "0 <= low < high <= 100, e.g. [2, 98]"
        )
    frac = pre.get("min_span_fraction", 0.1)
    if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 <= frac <= 1:
        raise ModelContractError(
            f"{where}: metadata preprocessing.min_span_fraction = {frac!r} must be in [0, 1]"
        )
    step = pre.get("percentile_step", 1)
    if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= MAX_PERCENTILE_STEP:
        raise ModelContractError(
            f"{where}: metadata preprocessing.percentile_step = {step!r} must be an integer "
            f"1..{MAX_PERCENTILE_STEP} (percentiles on every step-th row and column)"
        )
    clean = {"stretch": stretch, "percentiles": [float(v) for v in pct],
             "min_span_fraction": float(frac)}
    if step != 1:  # absent = 1: the same contract reads the same whatever wrote it
        clean["percentile_step"] = step
    return tuple(sorted(clean.items()))


def parse_metadata(props: dict[str, str], where: str = "model") -> ModelMetadata:
    """Decode and type-check the JSON metadata values; ModelContractError naming the key."""
    fix = "re-export the model with scripts/export_onnx.py"
    missing = [k for k in REQUIRED_KEYS if k not in props]
    if missing:
        raise ModelContractError(
            f"{where}: metadata key(s) {missing} missing (required: {list(REQUIRED_KEYS)}); {fix}"
        )
    values: dict[str, Any] = {}
    for key, types in REQUIRED_KEYS.items():
        raw = props[key]
        try:
            v = json.loads(raw)
        except (json.JSONDecodeError, TypeError) as err:
            raise ModelContractError(
                f"{where}: metadata '{key}' = {raw!r} is not JSON ({err}); "
                f"values must be JSON-encoded; {fix}"
            ) from err
        if isinstance(v, bool) or not isinstance(v, types):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ModelContractError(
                f"{where}: metadata '{key}' = {raw!r} must be a JSON {names}, "
                f"got {type(v).__name__}; {fix}"
            )
        values[key] = v
    if values["model_type"] != MODEL_TYPE:
        raise ModelContractError(
            f"{where}: metadata model_type is {values['model_type']!r}, expected {MODEL_TYPE!r}; "
            "this is not an analogue embedding model"
        )
    for key in ("input_channels", "input_size", "embedding_dim"):
        if values[key] <= 0:
            raise ModelContractError(f"{where}: metadata '{key}' = {values[key]} must be > 0")
    c = values["input_channels"]
    for key in ("mean", "std"):
        lst = values[key]
        if len(lst) != c or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in lst
        ):
            raise ModelContractError(
                f"{where}: metadata '{key}' = {lst} must be a list of {c} number(s) "
                f"(one per input channel); {fix}"
            )
    if any(not float(s) > 0 for s in values["std"]):
        raise ModelContractError(f"{where}: metadata 'std' = {values['std']} must be > 0")
    preprocessing = _parse_preprocessing(props.get("preprocessing"), where, fix)
    tile_px = 0
    if "tile_px" in props:
        try:
            tile_px = json.loads(props["tile_px"])
        except (json.JSONDecodeError, TypeError):
            tile_px = 0
        if isinstance(tile_px, bool) or not isinstance(tile_px, int) or tile_px <= 0:
            raise ModelContractError(
                f"{where}: metadata 'tile_px' = {props['tile_px']!r} must be a positive JSON "
                f"integer (source pixels per tile side); {fix}"
            )
    same = None
    if "same_landform_cos" in props:
        try:
            same = float(json.loads(props["same_landform_cos"]))
        except (json.JSONDecodeError, TypeError, ValueError):
            same = None
        if same is None or not -1.0 <= same <= 1.0:
            raise ModelContractError(
                f"{where}: metadata 'same_landform_cos' = {props['same_landform_cos']!r} must "
                f"be a JSON number in -1..1 (the calibrated cosine threshold); {fix}"
            )
    return ModelMetadata(
        same_landform_cos=same,
        model_type=values["model_type"],
        input_channels=c,
        input_size=values["input_size"],
        mean=tuple(float(x) for x in values["mean"]),
        std=tuple(float(x) for x in values["std"]),
        embedding_dim=values["embedding_dim"],
        gsd_m=None if values["gsd_m"] is None else float(values["gsd_m"]),
        version=values["version"],
        training_data=values["training_data"],
        preprocessing=preprocessing,
        tile_px=tile_px,
    )
