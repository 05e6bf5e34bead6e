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
from torch import nn

from .net import EmbeddingNet

MODEL_TYPE = "analog-embedding"


class CenteredEmbedding(nn.Module):
    """``normalize(net(x) - center)``: the shipped graph.

    Why: a contrastive loss with a margin only pushes dissimilar pairs beyond the margin, so all
    embeddings end up in one cone of the sphere (unrelated tiles still have cosine ~0.8). The
    plugin maps cosine to a score, so that offset wastes its range. Subtracting the mean training
    embedding and re-normalising (a fixed, data-derived constant baked into the graph) spreads the
    cone over the sphere: unrelated tiles get cosine ~0 while neighbours stay neighbours.
    """

    def __init__(self, net: EmbeddingNet, center: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("center", center.reshape(1, -1).float())
        self.in_channels = net.in_channels
        self.embedding_dim = net.embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.net(x) - self.center
        return nn.functional.normalize(e, p=2.0, dim=1, eps=1e-12)


@torch.no_grad()
def mean_embedding(net: nn.Module, x: np.ndarray, batch: int = 256) -> torch.Tensor:
    """Mean of ``net`` over normalised inputs ``x`` (the training images, clean views)."""
    net.eval()
    outs = [net(torch.from_numpy(x[i : i + batch].astype(np.float32)))
            for i in range(0, len(x), batch)]
    return torch.cat(outs).mean(0)


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
    preprocessing: dict[str, object] | None = None,
    tile_px: int | None = None,
) -> dict[str, str]:
    """The metadata_props of the contract, values JSON-encoded. ``preprocessing`` and ``tile_px``
    default to the training pixel contract (data.TRAIN_PIXELS, data.TILE_PX)."""
    from .data import TILE_PX, TRAIN_PIXELS

    pre = dict(preprocessing if preprocessing is not None else TRAIN_PIXELS)
    pre["percentiles"] = list(pre.get("percentiles", (2.0, 98.0)))  # type: ignore[call-overload]
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
        "preprocessing": pre,
        "tile_px": tile_px if tile_px is not None else TILE_PX,
    }
    return {k: json.dumps(v) for k, v in meta.items()}


def export_onnx(model: nn.Module, out: Path, input_size: int, metadata: dict[str, str]) -> None:
    """Write ``out`` (opset 17, dynamic batch, metadata) with the legacy TorchScript exporter,
    which needs no extra packages and gives a plain, small graph."""
    import onnx

    model.eval()
    channels = int(getattr(model, "in_channels", 1))
    dummy = torch.zeros(2, channels, input_size, input_size)
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


def parity(model: nn.Module, path: Path, x: np.ndarray) -> float:
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
