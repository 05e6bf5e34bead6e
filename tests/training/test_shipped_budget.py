"""The shipped model keeps the v2 budget: <= 0.5 GFLOP per tile (every test-time view inside the
graph included) and <= 20 MB, and it is a 2.x model.

The multiply-adds are counted from the ONNX graph itself (shape inference, every Conv and Gemm),
independently of ``analog_train.features.trunk_macs``, which counts the PyTorch trunk the card's
figure comes from: the two must agree, so the card cannot drift from the file that ships.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import shape_inference

MODEL = Path(__file__).resolve().parents[2] / "models" / "analog-siamese.onnx"
CARD = MODEL.with_suffix(".md")


def graph_macs(path: Path) -> int:
    """Multiply-adds of one tile (batch 1) through every Conv and Gemm node of an ONNX graph.

    Conv: output elements x (input channels / groups) x kernel area; Gemm: weight elements.
    Weights of a quantized (QDQ) graph are found through their DequantizeLinear node."""
    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    inferred = shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*inferred.graph.value_info, *inferred.graph.output]}
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}

    def weight_shape(name: str) -> list[int]:
        return inits[name] if name in inits else weight_shape(producer[name].input[0])

    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            out = shapes[node.output[0]]
            assert all(d > 0 for d in out), f"unknown output shape of {node.name}: {out}"
            total += int(np.prod(out)) * int(np.prod(weight_shape(node.input[1])[1:]))
        elif node.op_type == "Gemm":
            total += int(np.prod(weight_shape(node.input[1])))
    return total


def test_graph_macs_by_hand(tmp_path: Path) -> None:
    """A 3x3 conv 1->4 channels on 8x8 (pad 1): 64 * 4 * 9 = 2304; then Gemm 256->10: 2560."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.zeros((4, 1, 3, 3), np.float32), "w")
    g = numpy_helper.from_array(np.zeros((256, 10), np.float32), "g")
    shape = numpy_helper.from_array(np.array([-1, 256], np.int64), "shape")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Reshape", ["c", "shape"], ["r"]),
             helper.make_node("Gemm", ["r", "g"], ["y"])]
    graph = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 10])], [w, g, shape])
    path = tmp_path / "t.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    assert graph_macs(path) == 2304 + 2560


def test_shipped_model_within_budget() -> None:
    macs = graph_macs(MODEL)
    assert 2 * macs <= 0.5e9, f"{2 * macs / 1e9:.3f} GFLOP per tile > 0.5"
    assert MODEL.stat().st_size <= 20e6
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(MODEL)).metadata_props}
    assert str(meta["version"]).startswith("2.")


def test_card_cost_matches_graph() -> None:
    """The card's "M multiply-adds" figure (the trunk, counted in PyTorch) is within 1 % of the
    ONNX graph's count (trunk + head; the head's two Gemms add < 0.4 M)."""
    text = CARD.read_text()
    marker = "M multiply-adds = "
    assert marker in text, "card lost its cost line"
    card_m = float(text.split(marker)[0].split()[-1])
    assert abs(graph_macs(MODEL) / 1e6 - card_m) / card_m < 0.01
