"""ONNX export with the model contract of docs/DESIGN.md, and a PyTorch/ONNX parity check.

The graph ends with the L2 normalisation (it is part of ``EmbeddingNet.forward``), so the plugin
gets unit vectors and cosine similarity is a dot product. The batch axis is dynamic so the plugin
can choose its batch size. Metadata values are JSON-encoded strings.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .net import EmbeddingNet

MODEL_TYPE = "analog-embedding"


def contract_metadata(
    *,
    input_channels: int,
    input_size: int,
    mean: list[float],
    std: list[float],
    embedding_dim: int,
    version: str,
    training_data: str,
    gsd_m: float | None = None,
) -> dict[str, str]:
    """The metadata_props of the contract, values JSON-encoded."""
    meta = {
        "model_type": MODEL_TYPE,
        "input_channels": input_channels,
        "input_size": input_size,
        "mean": mean,
        "std": std,
        "embedding_dim": embedding_dim,
        "gsd_m": gsd_m,
        "version": version,
        "training_data": training_data,
    }
    return {k: json.dumps(v) for k, v in meta.items()}


def export_onnx(model: EmbeddingNet, out: Path, input_size: int, metadata: dict[str, str]) -> None:
    """Write ``out`` (opset 17, dynamic batch, metadata) with the legacy TorchScript exporter,
    which needs no extra packages and gives a plain, small graph."""
    import onnx

    model.eval()
    dummy = torch.zeros(2, model.in_channels, input_size, input_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.onnx")
    torch.onnx.export(
        model,
        (dummy,),
        str(tmp),
        input_names=["image"],
        output_names=["embedding"],
        dynamic_axes={"image": {0: "batch"}, "embedding": {0: "batch"}},
        opset_version=17,
        do_constant_folding=True,
        dynamo=False,
    )
    proto = onnx.load(str(tmp))
    del proto.metadata_props[:]
    for k, v in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.doc_string = "Mars Analogue Finder embedding network (Siamese, contrastive loss)"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))
    tmp.unlink(missing_ok=True)


def onnx_embed(path: Path, x: np.ndarray, batch: int = 128) -> np.ndarray:
    """Run the ONNX model with onnxruntime on CPU."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    outs = [sess.run(None, {name: x[i : i + batch].astype(np.float32)})[0]
            for i in range(0, len(x), batch)]
    return np.concatenate(outs)


def parity(model: EmbeddingNet, path: Path, x: np.ndarray) -> float:
    """Max absolute difference between PyTorch and onnxruntime outputs on ``x``."""
    model.eval()
    with torch.no_grad():
        ref = model(torch.from_numpy(x.astype(np.float32))).numpy()
    got = onnx_embed(path, x)
    return float(np.abs(ref - got).max())


def read_metadata(path: Path) -> dict[str, object]:
    """Decoded metadata_props of an ONNX file."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: json.loads(p.value) for p in proto.metadata_props}
