"""Assemble the shipped v2 graph: test-time views -> the int8 trunk (the very file the head was
trained on) -> mean over the views -> projection head -> centring -> L2 normalisation.

Why compose ONNX graphs instead of exporting one PyTorch module: the head was trained on the
features of the *quantized* trunk; re-exporting and re-quantizing the whole graph would calibrate
new scales and shift those features. ``onnx.compose`` splices the trunk file in unchanged between
a tiny "views" graph (models with two test-time views) and the exported head.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .head import ProjectionHead


class TurnedView(nn.Module):
    """``(N, 1, S, S)`` -> ``(2N, 1, S, S)``: the tile, then the tile turned by 180 degrees
    (the second test-time view of models with ``views`` = 2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, torch.flip(x, dims=(2, 3))], dim=0)


class HeadGraph(nn.Module):
    """``(V N, F)`` trunk features of every view -> ``(N, D)`` centred unit embeddings."""

    center: torch.Tensor

    def __init__(self, head: ProjectionHead, center: np.ndarray, views: int) -> None:
        super().__init__()
        self.head = head.eval()
        self.views = views
        self.register_buffer("center", torch.from_numpy(center).float().reshape(1, -1))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        if self.views == 1:
            f = feats
        else:
            n = feats.shape[0] // 2
            f = (feats[:n] + feats[n:]) / 2
        e = nn.functional.normalize(self.head(f), dim=1) - self.center
        return nn.functional.normalize(e, dim=1)


def _export(module: nn.Module, dummy: torch.Tensor, path: Path, inp: str, out: str) -> None:
    torch.onnx.export(module.eval(), (dummy,), str(path), input_names=[inp], output_names=[out],
                      dynamic_axes={inp: {0: "n"}, out: {0: "n"}}, opset_version=17,
                      do_constant_folding=True, dynamo=False)


def assemble(trunk_int8: Path, head: ProjectionHead, center: np.ndarray, input_size: int,
             metadata: dict[str, str], out: Path, views: int = 1) -> None:
    """Write ``out``: input ``image`` [N, 1, S, S] -> output ``embedding`` [N, D], the trunk run
    on ``views`` test-time views (``TurnedView``)."""
    import onnx
    from onnx import compose

    if views not in (1, 2):
        raise ValueError(f"test-time views must be 1 or 2, got {views}")
    work = out.parent / f".{out.stem}.parts"
    work.mkdir(parents=True, exist_ok=True)
    s = input_size
    n_feat = int(head.mu.shape[1])
    _export(HeadGraph(head, center, views), torch.zeros(2 * views, n_feat), work / "head.onnx",
            "features", "embedding")
    trunk = compose.add_prefix(onnx.load(str(trunk_int8)), "trunk/")
    tail = compose.add_prefix(onnx.load(str(work / "head.onnx")), "head/")
    parts = [trunk, tail]
    if views == 2:
        _export(TurnedView(), torch.zeros(2, 1, s, s), work / "views.onnx", "image", "views")
        parts.insert(0, onnx.load(str(work / "views.onnx")))
    ir = min(m.ir_version for m in parts)
    for m in parts:
        m.ir_version = ir
    model = compose.merge_models(trunk, tail, io_map=[("trunk/features", "head/features")])
    if views == 2:
        model = compose.merge_models(parts[0], model, io_map=[("views", "trunk/x")])
    else:  # the trunk's own input is the model's
        _rename(model.graph, "trunk/x", "image")
    # Public names of the contract's one input and one output.
    _rename(model.graph, "head/embedding", "embedding")
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.doc_string = ("Mars Analogue Finder embedding network v2: int8 EfficientNet-Lite "
                        "trunk (ImageNet, frozen) + Siamese-trained projection head")
    onnx.checker.check_model(model)
    tmp = out.with_suffix(".tmp.onnx")
    onnx.save(model, str(tmp))
    tmp.replace(out)
    for p in work.iterdir():
        p.unlink()
    work.rmdir()


def _rename(graph: object, old: str, new: str) -> None:
    """Rename value ``old`` to ``new`` wherever the graph's inputs, outputs and nodes use it."""
    values = [*graph.input, *graph.output, *graph.value_info]  # type: ignore[attr-defined]
    for value in values:
        if value.name == old:
            value.name = new
    for node in graph.node:  # type: ignore[attr-defined]
        node.input[:] = [new if v == old else v for v in node.input]
        node.output[:] = [new if v == old else v for v in node.output]
