"""Assemble the shipped v2 graph: test-time view -> the int8 trunk (the very file the head was
trained on) -> mean over the views -> projection head -> centring -> L2 normalisation.

Why compose ONNX graphs instead of exporting one PyTorch module: the head was trained on the
features of the *quantized* trunk; re-exporting and re-quantizing the whole graph would calibrate
new scales and shift those features. ``onnx.compose`` splices the trunk file in unchanged between
a tiny "views" graph and the exported head.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .head import ProjectionHead


class TwoViews(nn.Module):
    """``(N, 1, S, S)`` -> ``(2N, 1, S, S)``: the tile, then the tile turned by 180 degrees."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, torch.flip(x, dims=(2, 3))], dim=0)


class HeadGraph(nn.Module):
    """``(2N, F)`` trunk features of both views -> ``(N, D)`` centred unit embeddings."""

    center: torch.Tensor

    def __init__(self, head: ProjectionHead, center: np.ndarray) -> None:
        super().__init__()
        self.head = head.eval()
        self.register_buffer("center", torch.from_numpy(center).float().reshape(1, -1))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        n = feats.shape[0] // 2
        f = (feats[:n] + feats[n:]) / 2
        e = nn.functional.normalize(self.head(f), dim=1) - self.center
        return nn.functional.normalize(e, dim=1)


def _export(module: nn.Module, dummy: torch.Tensor, path: Path, inp: str, out: str) -> None:
    torch.onnx.export(module.eval(), (dummy,), str(path), input_names=[inp], output_names=[out],
                      dynamic_axes={inp: {0: "n"}, out: {0: "n"}}, opset_version=17,
                      do_constant_folding=True, dynamo=False)


def assemble(trunk_int8: Path, head: ProjectionHead, center: np.ndarray, input_size: int,
             metadata: dict[str, str], out: Path) -> None:
    """Write ``out``: input ``image`` [N, 1, S, S] -> output ``embedding`` [N, D]."""
    import onnx
    from onnx import compose

    work = out.parent / f".{out.stem}.parts"
    work.mkdir(parents=True, exist_ok=True)
    s = input_size
    _export(TwoViews(), torch.zeros(2, 1, s, s), work / "views.onnx", "image", "views")
    n_feat = int(head.mu.shape[1])
    _export(HeadGraph(head, center), torch.zeros(4, n_feat), work / "head.onnx", "features",
            "embedding")
    views = onnx.load(str(work / "views.onnx"))
    trunk = onnx.load(str(trunk_int8))
    tail = onnx.load(str(work / "head.onnx"))
    ir = min(m.ir_version for m in (views, trunk, tail))
    for m in (views, trunk, tail):
        m.ir_version = ir
    trunk = compose.add_prefix(trunk, "trunk/")
    tail = compose.add_prefix(tail, "head/")
    model = compose.merge_models(views, trunk, io_map=[("views", "trunk/x")])
    model = compose.merge_models(model, tail, io_map=[("trunk/features", "head/features")])
    # Public names of the contract's one input and one output.
    graph = model.graph
    graph.output[0].name = "embedding"
    for node in graph.node:
        node.output[:] = ["embedding" if o == "head/embedding" else o for o in node.output]
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.doc_string = ("Mars Analogue Finder embedding network v2: int8 EfficientNet-Lite0 "
                        "trunk (ImageNet, frozen) + Siamese-trained projection head")
    onnx.checker.check_model(model)
    tmp = out.with_suffix(".tmp.onnx")
    onnx.save(model, str(tmp))
    tmp.replace(out)
    for p in work.iterdir():
        p.unlink()
    work.rmdir()
