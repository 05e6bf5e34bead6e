"""Tiny ONNX embedding models with analytically known outputs, for tests (core and QGIS glue).

The real similarity network is far too slow and opaque to assert exact scores, so tests use these
stand-ins that honour the full model contract of ``docs/DESIGN.md``:

``make_mean_model``  input ``[N, C, S, S]`` -> spatial mean per channel ``m`` (``[N, C]``) ->
                     affine map ``e = m @ W + b`` (``[N, D]``) -> L2 normalisation.
                     With the defaults (``W[:, 0] = 1/C``, ``b = [0, const]``) the embedding is
                     ``normalize([mean(x), const])`` where ``mean(x)`` is the mean over every
                     channel and pixel of the *normalised* model input. With the default
                     ``mean=[0]``/``std=[1]`` metadata that is just the mean of the 0..1 tile, so
                     ``expected_mean_embedding(m, const)`` gives the exact expected vector.

``make_broken_model(path, kind)`` breaks exactly one part of the contract; ``BROKEN_KINDS`` lists
the kinds and ``BROKEN_KIND_HINTS`` a word the error message must contain.

Usage::

    from tests.onnx_models import make_mean_model, expected_mean_embedding
    model = make_mean_model(tmp_path / "m.onnx", input_size=32, channels=1)
    e = expected_mean_embedding(0.25, const=1.0)   # -> normalize([0.25, 1.0])
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8

BROKEN_KINDS = (
    "corrupt",  # not an ONNX file at all -> ModelLoadError
    "wrong_model_type",  # model_type != "analog-embedding"
    "missing_key",  # no "embedding_dim" key
    "bad_json",  # input_size value is not JSON
    "wrong_json_type",  # input_size is a JSON string "32"
    "channels_mismatch",  # metadata says 3 channels, input has 1
    "size_mismatch",  # metadata says 64, input is 32x32
    "wrong_rank",  # input rank 3
    "wrong_dtype",  # input float64
    "two_inputs",  # two graph inputs
    "dim_mismatch",  # metadata embedding_dim 8, output D 2
    "output_rank",  # output rank 3
    "not_normalised",  # output not L2-normalised (detected on a probe run)
    "bad_mean_length",  # mean list length != input_channels
)

BROKEN_KIND_HINTS: dict[str, str] = {
    "corrupt": "onnx",
    "wrong_model_type": "model_type",
    "missing_key": "embedding_dim",
    "bad_json": "input_size",
    "wrong_json_type": "input_size",
    "channels_mismatch": "channel",
    "size_mismatch": "input_size",
    "wrong_rank": "rank",
    "wrong_dtype": "float32",
    "two_inputs": "input",
    "dim_mismatch": "embedding_dim",
    "output_rank": "rank",
    "not_normalised": "normalis",
    "bad_mean_length": "mean",
}
"""A (lower-case) word the error message for each broken kind must contain."""


def default_metadata(
    input_size: int = 32, channels: int = 1, embedding_dim: int = 2
) -> dict[str, Any]:
    """The full contract metadata (Python values; JSON-encoded when stored)."""
    return {
        "model_type": "analog-embedding",
        "input_channels": channels,
        "input_size": input_size,
        "mean": [0.0] * channels,
        "std": [1.0] * channels,
        "embedding_dim": embedding_dim,
        "gsd_m": None,
        "version": "test-0.1",
        "training_data": "synthetic (tests/onnx_models.py)",
    }


def expected_mean_embedding(mean_value: float, const: float = 1.0) -> np.ndarray:
    """Embedding of ``make_mean_model`` (default W/b) for an input whose mean is ``mean_value``."""
    v = np.array([mean_value, const], dtype=np.float64)
    return v / np.linalg.norm(v)


def _build(
    *,
    input_size: int | str,
    channels: int,
    weights: np.ndarray,
    bias: np.ndarray,
    input_dtype: int = TensorProto.FLOAT,
    input_rank: int = 4,
    normalise: bool = True,
    output_rank: int = 2,
    extra_input: bool = False,
) -> onnx.ModelProto:
    d = int(weights.shape[1])
    if input_rank == 4:
        in_shape: list[int | str] = ["N", channels, input_size, input_size]
        axes = [2, 3]
    else:
        in_shape = ["N", input_size, input_size]
        axes = [1, 2]
    nodes = []
    x_name = "image"
    if input_dtype != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", ["image"], ["image_f"], to=TensorProto.FLOAT))
        x_name = "image_f"
    nodes.append(helper.make_node("ReduceMean", [x_name], ["m"], axes=axes, keepdims=0))
    if input_rank != 4:
        nodes.append(helper.make_node("Unsqueeze", ["m", "ax1"], ["m2"]))
        m_name = "m2"
    else:
        m_name = "m"
    nodes.append(helper.make_node("Gemm", [m_name, "W", "b"], ["lin"]))
    out_name = "embedding"
    if normalise:
        nodes.append(helper.make_node("LpNormalization", ["lin"], ["emb2"], axis=1, p=2))
    else:
        nodes.append(helper.make_node("Identity", ["lin"], ["emb2"]))
    out_shape: list[int | str] = ["N", d]
    if output_rank == 3:
        nodes.append(helper.make_node("Unsqueeze", ["emb2", "ax1"], [out_name]))
        out_shape = ["N", 1, d]
    else:
        nodes.append(helper.make_node("Identity", ["emb2"], [out_name]))
    inits = [
        numpy_helper.from_array(weights.astype(np.float32), "W"),
        numpy_helper.from_array(bias.astype(np.float32), "b"),
    ]
    if input_rank != 4 or output_rank == 3:
        inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "ax1"))
    inputs = [helper.make_tensor_value_info("image", input_dtype, in_shape)]
    if extra_input:
        inputs.append(helper.make_tensor_value_info("unused", TensorProto.FLOAT, ["N", 1]))
    graph = helper.make_graph(
        nodes,
        "analog_test_mean_model",
        inputs,
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model


def _set_metadata(model: onnx.ModelProto, meta: dict[str, Any], raw: dict[str, str]) -> None:
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = raw[key] if key in raw else json.dumps(value)


def _save(model: onnx.ModelProto, meta: dict[str, Any], path: str | Path) -> Path:
    """Set the metadata, check the model against the ONNX spec and write it."""
    _set_metadata(model, meta, {})
    onnx.checker.check_model(model)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out


def _default_weights(channels: int, const: float) -> tuple[np.ndarray, np.ndarray]:
    w = np.zeros((channels, 2), dtype=np.float32)
    w[:, 0] = 1.0 / channels
    b = np.array([0.0, const], dtype=np.float32)
    return w, b


def make_mean_model(
    path: str | Path,
    input_size: int = 32,
    channels: int = 1,
    *,
    const: float = 1.0,
    weights: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    dynamic_size: bool = False,
    **meta_overrides: Any,
) -> Path:
    """Write a contract-conforming analytic model to ``path`` and return the path.

    ``const`` changes the embedding (and therefore the file's sha256) so two models with different
    ``const`` give a library/model mismatch. ``weights`` (``[C, D]``) and ``bias`` (``[D]``)
    replace the default affine map for custom embeddings; ``embedding_dim`` follows ``D``.
    ``dynamic_size`` declares the spatial dims symbolic (allowed by the contract).
    ``meta_overrides`` replace metadata values (e.g. ``mean=[0.5], std=[0.25]``,
    ``version="x"``); a value of ``None`` for a key removes nothing: use ``make_broken_model``.
    """
    if weights is None or bias is None:
        weights, bias = _default_weights(channels, const)
    meta = default_metadata(input_size, channels, int(weights.shape[1]))
    meta.update(meta_overrides)
    model = _build(
        input_size="S" if dynamic_size else input_size,
        channels=channels,
        weights=np.asarray(weights),
        bias=np.asarray(bias),
    )
    return _save(model, meta, path)


def make_broken_model(path: str | Path, kind: str, input_size: int = 32) -> Path:
    """Write a model that breaks the contract in the way named by ``kind`` (see BROKEN_KINDS)."""
    if kind not in BROKEN_KINDS:
        raise ValueError(f"unknown broken model kind {kind!r}; choose from {BROKEN_KINDS}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind == "corrupt":
        out.write_bytes(b"this is not an onnx protobuf \x00\xff\x13" * 10)
        return out
    channels = 1
    w, b = _default_weights(channels, 1.0)
    meta = default_metadata(input_size, channels, 2)
    raw: dict[str, str] = {}
    build: dict[str, Any] = {}
    if kind == "wrong_model_type":
        meta["model_type"] = "classifier"
    elif kind == "missing_key":
        del meta["embedding_dim"]
    elif kind == "bad_json":
        raw["input_size"] = "thirty-two"
    elif kind == "wrong_json_type":
        meta["input_size"] = str(input_size)
    elif kind == "channels_mismatch":
        meta["input_channels"] = 3
        meta["mean"] = [0.0] * 3
        meta["std"] = [1.0] * 3
    elif kind == "size_mismatch":
        meta["input_size"] = input_size * 2
    elif kind == "wrong_rank":
        build["input_rank"] = 3
    elif kind == "wrong_dtype":
        build["input_dtype"] = TensorProto.DOUBLE
    elif kind == "two_inputs":
        build["extra_input"] = True
    elif kind == "dim_mismatch":
        meta["embedding_dim"] = 8
    elif kind == "output_rank":
        build["output_rank"] = 3
    elif kind == "not_normalised":
        build["normalise"] = False
        b = np.array([0.0, 3.0], dtype=np.float32)
    elif kind == "bad_mean_length":
        meta["mean"] = [0.0, 0.0]
    model = _build(input_size=input_size, channels=channels, weights=w, bias=b, **build)
    _set_metadata(model, meta, raw)
    onnx.save(model, str(out))
    return out


__all__ = [
    "BROKEN_KINDS",
    "BROKEN_KIND_HINTS",
    "default_metadata",
    "expected_mean_embedding",
    "make_broken_model",
    "make_mean_model",
]


def layout_weights(input_size: int) -> np.ndarray:
    """``[S*S, 3]`` weights of ``make_layout_model``: a column ramp, a row ramp and a pixel
    checker, all zero-mean, plus a small constant so the norm never vanishes. A transposed tile
    swaps the first two, a flipped one negates one, a shifted one changes all three: every
    layout error changes the embedding."""
    s = input_size
    r, c = np.mgrid[0:s, 0:s].astype(np.float64)
    centre = (s - 1) / 2
    w = np.stack([(c - centre) / s, (r - centre) / s + 0.3 * (c - centre) / s,
                  ((r + 2 * c) % 3 - 1) / 2 + 0.02], axis=-1)
    return w.reshape(s * s, 3)


def expected_layout_embedding(tile01: np.ndarray) -> np.ndarray:
    """Embedding of ``make_layout_model`` (mean 0 / std 1 metadata) for a ``(S, S)`` 0..1 tile."""
    v = tile01.reshape(-1).astype(np.float64) @ layout_weights(tile01.shape[0])
    return v / np.linalg.norm(v)


def make_layout_model(path: str | Path, input_size: int = 16, **meta_overrides: Any) -> Path:
    """A 1-channel model sensitive to pixel layout: ``normalize(flatten(x) @ layout_weights)``.

    Unlike the mean model (blind to transposes, flips and shifts), any pixel that reaches the
    network in the wrong place changes its output, so pipeline tests built on it fail when the
    reader, the resize or the batching lay pixels out wrongly.
    """
    s = input_size
    meta = default_metadata(s, 1, 3)
    meta.update(meta_overrides)
    nodes = [
        helper.make_node("Reshape", ["image", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "W"], ["lin"]),
        helper.make_node("LpNormalization", ["lin"], ["embedding"], axis=1, p=2),
    ]
    inits = [
        numpy_helper.from_array(np.array([-1, s * s], dtype=np.int64), "shape"),
        numpy_helper.from_array(layout_weights(s).astype(np.float32), "W"),
    ]
    graph = helper.make_graph(
        nodes, "analog_test_layout_model",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, s, s])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 3])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return _save(model, meta, path)
