"""ONNX embedding model: contract validation at load time, device choice, batched inference.

Why validate at load time: a model exported with the wrong channel count or without
normalisation would otherwise produce plausible-looking but meaningless scores hours later.
Every contract rule of docs/DESIGN.md is checked here, each with a message naming the rule.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DeviceUnavailableError, ModelContractError, ModelLoadError
from .feedback import Feedback, ensure_feedback
from .model_metadata import parse_metadata
from .preprocess import PixelContract
from .threads import default_threads, plan_workers

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
DEVICES = ("auto", "cpu", "cuda")
NORM_TOLERANCE = 1e-3
"""Allowed deviation of embedding L2 norms from 1 (float32 rounding is ~1e-7)."""
CPU_RUN_PIXELS = 8 * 128 * 128
"""Most input pixels (tiles x S x S) one onnxruntime run gets on CPU; a longer batch is run in
slices of :func:`cpu_run_tiles` = CPU_RUN_PIXELS // (S x S) tiles (8 for the shipped 128 px
model, 14 for a 96 px one, at least 1).

Why: a convnet's early activations grow with the run's batch (32 channels x 64 x 64 floats per
128 px tile in the first layer: 33 MB for 64 tiles, 4 MB for 8). Past the CPU's cache every layer
streams them through memory, so a small run is faster per tile, and onnxruntime's arena (which
keeps the largest activations of any run, per concurrent run) stays small. Measured on the 2-core
bench machine with model 2.3.0, two 1-thread runs side by side: 1910-1931 tiles/s at 8 tiles per
run, 1877-1888 at 16, 1585-1623 at 32, 1403-1428 at 64; the whole 16384^2 px scoring job went
from 1344 tiles/s (32) to 1609-1650 (8-12) with 40 MB less peak memory. The stream's BATCH_SIZE
still decides how many tiles are read, prepared and written together. On CUDA a whole batch goes
in one run: the GPU wants big batches and its memory is its own."""


def cpu_run_tiles(input_size: int) -> int:
    """Tiles per onnxruntime run on CPU for an ``input_size`` px model (see CPU_RUN_PIXELS)."""
    return max(1, CPU_RUN_PIXELS // max(1, input_size * input_size))


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
        # Memory pattern on (onnxruntime's default): with the CPU's fixed 8-tile runs it plans
        # one small block per input shape (2-3 MB of the bench's peak RSS). Off, the 2-core
        # bench's 16384^2 px job ran about 3 % slower at 128 px and 3-7 % at 256 px
        # (interleaved A/B pairs). It was off while runs were 32-64 tiles, when it cost up to
        # 103 MB (model 2.2); README, bench.
        opts.enable_mem_pattern = True
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
        step = x.shape[0] if self.provider == CUDA else cpu_run_tiles(self.input_size)
        parts = [self._session.run([self.output_name], {self.input_name: x[i:i + step]})[0]
                 for i in range(0, x.shape[0], step)]
        out = np.asarray(parts[0] if len(parts) == 1 else np.concatenate(parts), np.float32)
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
