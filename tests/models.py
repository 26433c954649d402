"""Small models built in code for the tests (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _save(graph: onnx.GraphProto, path: Path, opset: int = 17) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def mlp(path: Path, batch: str | int = "batch", width: int = 64) -> Path:
    """x[batch,16] -> MatMul -> Relu -> MatMul -> y[batch,4]."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array((rng.standard_normal((16, width)) / 4).astype(np.float32), "w1")
    w2 = numpy_helper.from_array((rng.standard_normal((width, 4)) / 8).astype(np.float32), "w2")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "w2"], ["y"]),
        ],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])],
        [w1, w2],
    )
    return _save(graph, path)


def dynamic(path: Path) -> Path:
    """Two inputs with symbolic dims beyond the batch: tokens[batch, seq] int64, x[N, ?, 8]."""
    rng = np.random.default_rng(1)
    table = numpy_helper.from_array(rng.standard_normal((10, 8)).astype(np.float32), "table")
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "tokens"], ["emb"]),
            helper.make_node("ReduceSum", ["emb"], ["s"], keepdims=0),
            helper.make_node("ReduceSum", ["x"], ["t"], keepdims=0),
            helper.make_node("Add", ["s", "t"], ["y"]),
        ],
        "dyn",
        [
            helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", None, 8]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
        [table],
    )
    return _save(graph, path)
