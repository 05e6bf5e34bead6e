"""ONNX embedding model: contract validation at load time, device choice, batched inference.

Why validate at load time: a model exported with the wrong channel count or without
normalisation would otherwise produce plausible-looking but meaningless scores hours later.
Every contract rule of docs/DESIGN.md is checked here, each with a message naming the rule.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DeviceUnavailableError, ModelContractError, ModelLoadError
from .feedback import Feedback, ensure_feedback
from .preprocess import DEFAULT_PERCENTILES, STRETCH_MODES, PixelContract
from .threads import default_threads, plan_workers

MODEL_TYPE = "analog-embedding"
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
DEVICES = ("auto", "cpu", "cuda")
NORM_TOLERANCE = 1e-3
"""Allowed deviation of embedding L2 norms from 1 (float32 rounding is ~1e-7)."""

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
    clean = {"stretch": stretch, "percentiles": [float(v) for v in pct],
             "min_span_fraction": float(frac)}
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


def select_providers(device: str, available: Sequence[str]) -> list[str]:
    """Execution providers for DEVICE (auto/cpu/cuda) given onnxruntime's available list.

    ``cuda`` without CUDAExecutionProvider is an error, never a silent CPU fallback: a user who
    asked for the GPU on a 10-hour job must know at once that it will not be used.
    """
    d = (device or "auto").strip().lower()
    if d not in DEVICES:
        raise DeviceUnavailableError(f"DEVICE {device!r} unknown; choose one of {DEVICES}")
    if d == "cpu":
        return [CPU]
    if CUDA in available:
        return [CUDA, CPU]
    if d == "cuda":
        raise DeviceUnavailableError(
            f"DEVICE=cuda requested but onnxruntime has no {CUDA} (available providers: "
            f"{list(available)}); install onnxruntime-gpu with a matching CUDA/cuDNN, "
            "or choose DEVICE cpu or auto"
        )
    return [CPU]


def _load_failure(path: Path, err: Exception, ort_version: str) -> str:
    """One actionable sentence for a model onnxruntime refused to load. An opset newer than the
    runtime gets its own message (ORT's own is several lines of C++ signatures)."""
    text = str(err)
    opset = re.search(r"Opset (\d+) is under development", text)
    if opset:
        upto = re.search(r"support for domain ai\.onnx is till opset (\d+)", text)
        limit = f" (it runs opsets up to {upto.group(1)})" if upto else ""
        return (f"cannot load ONNX model '{path}': it needs ONNX opset {opset.group(1)}, which "
                f"onnxruntime {ort_version} cannot run{limit}; re-export the model with an older "
                "opset (torch.onnx.export(..., opset_version=17)) or upgrade onnxruntime")
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return (f"cannot load ONNX model '{path}': {first}; the file is corrupt or not an ONNX "
            "model, re-export or re-download it")


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _dim(d: Any) -> int | None:
    """A static dimension as int, or None when symbolic/unknown."""
    return d if isinstance(d, int) and d > 0 else None


class EmbeddingModel:
    """A validated ONNX embedding model on the chosen device.

    ``EmbeddingModel(path, device="auto", feedback=None, threads=None, probe=True)``; raises
    ModelLoadError, ModelContractError or DeviceUnavailableError. ``probe`` runs one input
    through the model to check its output is L2-normalised.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        device: str = "auto",
        feedback: Feedback | None = None,
        threads: int | None = None,
        probe: bool = True,
    ) -> None:
        import onnxruntime as ort

        fb = ensure_feedback(feedback)
        self.path = Path(os.fspath(path))
        if not self.path.is_file():
            raise ModelLoadError(
                f"model file '{self.path}' not found; give the path of an exported .onnx model "
                "(or reinstall the plugin to restore the bundled one)"
            )
        providers = select_providers(device, ort.get_available_providers())
        opts = ort.SessionOptions()
        self._threads = threads if threads and threads > 0 else default_threads()
        # onnxruntime's run() is thread-safe: the stream's workers share this one session.
        self.workers, intra = plan_workers(self._threads, providers[0])
        opts.intra_op_num_threads = intra
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # errors only: ORT's warnings would flood the QGIS log
        try:
            self._session = ort.InferenceSession(str(self.path), opts, providers=providers)
        except Exception as err:  # ORT raises its own exception types (Fail, InvalidProtobuf..)
            raise ModelLoadError(_load_failure(self.path, err, ort.__version__)) from err
        used = self._session.get_providers()
        self.provider: str = used[0] if used else CPU
        if providers[0] == CUDA and self.provider != CUDA:
            msg = (
                f"{CUDA} is installed but failed to initialise (wrong CUDA/cuDNN version?); "
            )
            if device.strip().lower() == "cuda":
                raise DeviceUnavailableError(msg + "fix the CUDA setup or choose DEVICE cpu")
            fb.pushWarning(msg + "running on CPU")
        where = f"model '{self.path.name}'"
        meta_map = dict(self._session.get_modelmeta().custom_metadata_map)
        self.metadata = parse_metadata(meta_map, where)
        self._check_signature(where)
        self._contract = self.metadata.contract()
        self._sha256: str | None = None
        fb.pushInfo(
            f"Model {self.path.name} (version {self.metadata.version}, input "
            f"{self.channels}x{self.input_size}x{self.input_size}, embedding "
            f"{self.embedding_dim}) on {self.provider} (device={device}, "
            f"{self._threads} thread(s): {self.workers} worker(s) x {intra}); "
            f"pixels: {self._contract.describe()}"
        )
        if probe:
            rng = np.random.default_rng(0)
            x = rng.random((1, self.channels, self.input_size, self.input_size), np.float32)
            m = np.asarray(self.metadata.mean, np.float32)[None, :, None, None]
            s = np.asarray(self.metadata.std, np.float32)[None, :, None, None]
            self.embed((x - m) / s)

    def _check_signature(self, where: str) -> None:
        inputs = self._session.get_inputs()
        outputs = self._session.get_outputs()
        md = self.metadata
        if len(inputs) != 1:
            raise ModelContractError(
                f"{where}: has {len(inputs)} inputs {[i.name for i in inputs]}; the contract "
                "requires exactly one input [N, C, S, S]"
            )
        if len(outputs) != 1:
            raise ModelContractError(
                f"{where}: has {len(outputs)} outputs {[o.name for o in outputs]}; the contract "
                "requires exactly one output [N, D]"
            )
        inp, out = inputs[0], outputs[0]
        if inp.type != "tensor(float)":
            raise ModelContractError(
                f"{where}: input '{inp.name}' is {inp.type}; the contract requires float32"
            )
        if len(inp.shape) != 4:
            raise ModelContractError(
                f"{where}: input '{inp.name}' has rank {len(inp.shape)} (shape {inp.shape}); "
                "the contract requires rank 4 [N, C, S, S]"
            )
        _, c, h, w = inp.shape
        if _dim(c) != md.input_channels:
            raise ModelContractError(
                f"{where}: input '{inp.name}' has {c} channel(s) but metadata input_channels is "
                f"{md.input_channels}"
            )
        for name, d in (("height", h), ("width", w)):
            if _dim(d) is not None and d != md.input_size:
                raise ModelContractError(
                    f"{where}: input {name} is {d} but metadata input_size is {md.input_size}"
                )
        if out.type != "tensor(float)":
            raise ModelContractError(
                f"{where}: output '{out.name}' is {out.type}; the contract requires float32"
            )
        if len(out.shape) != 2:
            raise ModelContractError(
                f"{where}: output '{out.name}' has rank {len(out.shape)} (shape {out.shape}); "
                "the contract requires rank 2 [N, D]"
            )
        d_out = _dim(out.shape[1])
        if d_out is not None and d_out != md.embedding_dim:
            raise ModelContractError(
                f"{where}: output dimension is {d_out} but metadata embedding_dim is "
                f"{md.embedding_dim}"
            )
        self.input_name: str = inp.name
        self.output_name: str = out.name

    # -- properties ---------------------------------------------------------------------------
    @property
    def sha256(self) -> str:
        """sha256 (hex) of the ONNX file: the model identity stored in libraries."""
        if self._sha256 is None:
            self._sha256 = file_sha256(self.path)
        return self._sha256

    @property
    def contract(self) -> PixelContract:
        return self._contract

    @property
    def threads(self) -> int:
        return self._threads

    @property
    def input_size(self) -> int:
        return self.metadata.input_size

    @property
    def channels(self) -> int:
        return self.metadata.input_channels

    @property
    def embedding_dim(self) -> int:
        return self.metadata.embedding_dim

    @property
    def mean(self) -> tuple[float, ...]:
        return self.metadata.mean

    @property
    def std(self) -> tuple[float, ...]:
        return self.metadata.std

    # -- inference ----------------------------------------------------------------------------
    def embed(self, batch: np.ndarray) -> np.ndarray:
        """``[N, C, S, S]`` normalised float32 -> ``[N, D]`` L2-normalised float32 embeddings."""
        x = np.ascontiguousarray(batch, dtype=np.float32)
        expected = (self.channels, self.input_size, self.input_size)
        if x.ndim != 4 or x.shape[1:] != expected:
            dims = ", ".join(map(str, expected))
            raise ValueError(f"batch shape {x.shape} does not match [N, {dims}]")
        if x.shape[0] == 0:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        out = self._session.run([self.output_name], {self.input_name: x})[0]
        out = np.asarray(out, dtype=np.float32)
        where = f"model '{self.path.name}'"
        if out.shape != (x.shape[0], self.embedding_dim):
            raise ModelContractError(
                f"{where}: output shape {out.shape}, expected ({x.shape[0]}, {self.embedding_dim})"
            )
        norms = np.linalg.norm(out.astype(np.float64), axis=1)
        if not np.all(np.isfinite(norms)) or np.any(np.abs(norms - 1.0) > NORM_TOLERANCE):
            bad = norms[~(np.abs(norms - 1.0) <= NORM_TOLERANCE)]
            example = float(bad[0]) if bad.size else math.nan
            raise ModelContractError(
                f"{where}: output embeddings are not L2-normalised (norms such as "
                f"{example:.4g}); the contract requires unit-length "
                "outputs: add an L2 normalisation at the end of the exported graph"
            )
        return out
