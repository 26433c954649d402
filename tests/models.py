"""Small models built in code for the tests (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from autotune.config import CPU, SessionConfig


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


def voice(path: Path) -> Path:
    """Like a voice activity detector: audio[batch, samples], a 0-d sample rate ``sr`` (int64)
    and a recurrent state[2, batch, 128]; y = sum(audio) + sum(state) + sr / 16000."""
    scale = numpy_helper.from_array(np.array(1 / 16000, np.float32), "scale")
    graph = helper.make_graph(
        [
            helper.make_node("ReduceSum", ["input"], ["a"], keepdims=0),
            helper.make_node("ReduceSum", ["state"], ["b"], keepdims=0),
            helper.make_node("Cast", ["sr"], ["srf"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["srf", "scale"], ["c"]),
            helper.make_node("Add", ["a", "b"], ["ab"]),
            helper.make_node("Add", ["ab", "c"], ["y"]),
        ],
        "voice",
        [
            helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", "samples"]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "batch", 128]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
        [scale],
    )
    return _save(graph, path)


def sample_rate(path: Path) -> Path:
    """x[1, 16] reshaped to [sr // 4000, -1]: runs with sr = 8000 or 16000, fails with the
    synthetic sr = 1 (a zero-sized first dimension cannot hold 16 values)."""
    consts = [
        numpy_helper.from_array(np.array(4000, np.int64), "c4000"),
        numpy_helper.from_array(np.array([-1], np.int64), "minus1"),
        numpy_helper.from_array(np.array([0], np.int64), "axis0"),
    ]
    graph = helper.make_graph(
        [
            helper.make_node("Div", ["sr", "c4000"], ["k"]),
            helper.make_node("Unsqueeze", ["k", "axis0"], ["k1"]),
            helper.make_node("Concat", ["k1", "minus1"], ["shape"], axis=0),
            helper.make_node("Reshape", ["x", "shape"], ["y"], allowzero=1),
        ],
        "sample_rate",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16]),
            helper.make_tensor_value_info("sr", TensorProto.INT64, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", "cols"])],
        consts,
    )
    return _save(graph, path)


def unsorted(path: Path) -> Path:
    """y = Relu(Neg(x)) with the nodes stored in reverse order: onnx.checker refuses it ("must
    be topologically sorted"), onnxruntime sorts it and runs it."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["h"], ["y"]), helper.make_node("Neg", ["x"], ["h"])],
        "unsorted",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))  # not checked: the checker refuses it
    return path


def unnamed_dims(path: Path) -> Path:
    """Like an OCR recognizer exported with ``?`` for unnamed dimensions: image["?", 3, 8, "?"]
    (batch and width), plus a named dimension: mask["batch", "width"]."""
    graph = helper.make_graph(
        [
            helper.make_node("ReduceSum", ["image"], ["a"], keepdims=0),
            helper.make_node("ReduceSum", ["mask"], ["b"], keepdims=0),
            helper.make_node("Add", ["a", "b"], ["y"]),
        ],
        "unnamed",
        [
            helper.make_tensor_value_info("image", TensorProto.FLOAT, ["?", 3, 8, "?"]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", "width"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
    )
    return _save(graph, path)


def slow(path: Path, layers: int = 8) -> Path:
    """x[256,1024] through ``layers`` MatMul+Tanh layers of one 1024x1024 weight: about 0.1-0.3 s
    a run on 2 cores, the run time of a large model."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.standard_normal((1024, 1024)) / 32).astype(np.float32), "w")
    nodes = []
    name = "x"
    for i in range(layers):
        nodes.append(helper.make_node("MatMul", [name, "w"], [f"m{i}"]))
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [f"t{i}"]))
        name = f"t{i}"
    nodes[-1].output[0] = "y"
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [256, 1024])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [256, 1024])],
        [w],
    )
    return _save(graph, path)


def fp16_twin(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same model with fp16 weights, inputs, outputs and constants: on the CPU EP every op's
    result is rounded to fp16, as an accelerator computing in fp16 rounds it (the accuracy
    tiers' tests and scripts/accuracy_tiers.py)."""
    half = onnx.ModelProto()
    half.CopyFrom(model)
    graph = half.graph
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            array = numpy_helper.to_array(init).astype(np.float16)
            init.CopyFrom(numpy_helper.from_array(array, init.name))
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            value.type.tensor_type.elem_type = TensorProto.FLOAT16
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT:
                array = numpy_helper.to_array(attr.t).astype(np.float16)
                attr.t.CopyFrom(numpy_helper.from_array(array, attr.t.name))
    return half


def shape_folding(path: Path, width: int = 256, rows: int = 96) -> Path:
    """A model where one configuration is far faster than ORT's defaults, for a reason apps
    meet: part of its work depends only on the input's *shape* (as attention masks and
    positional tables do). x[N, rows, width] -> x @ W -> Tanh, plus a bias computed from
    ConstantOfShape([N * rows, width]) through two MatMuls. With the batch dimension N symbolic,
    ORT recomputes that bias on every run; with ``free_dimension_overrides`` {N: 1} the shape is
    static and constant folding computes it once, at load (about 2x faster here)."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(
        (rng.standard_normal((width, width)) / width).astype(np.float32), "W"
    )
    consts = [
        numpy_helper.from_array(np.array([0], np.int64), "i0"),
        numpy_helper.from_array(np.array([rows], np.int64), "r"),
        numpy_helper.from_array(np.array([width], np.int64), "w"),
    ]
    one = numpy_helper.from_array(np.array([1.0], np.float32))
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "i0"], ["n"], axis=0),
        helper.make_node("Mul", ["n", "r"], ["nr"]),
        helper.make_node("Concat", ["nr", "w"], ["shape"], axis=0),
        helper.make_node("ConstantOfShape", ["shape"], ["ones"], value=one),
        helper.make_node("MatMul", ["ones", "W"], ["b1"]),
        helper.make_node("Tanh", ["b1"], ["t1"]),
        helper.make_node("MatMul", ["t1", "W"], ["b2"]),
        helper.make_node("ReduceMean", ["b2"], ["bias"], axes=[0], keepdims=1),
        helper.make_node("MatMul", ["x", "W"], ["h"]),
        helper.make_node("Tanh", ["h"], ["a"]),
        helper.make_node("Add", ["a", "bias"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "shape_folding",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", rows, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", rows, width])],
        [w, *consts],
    )
    return _save(graph, path)


def sequence(path: Path) -> Path:
    """x[batch, seq, 64] -> MatMul 256 -> Relu -> MatMul 64 -> Softmax: two free dimensions."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array((rng.standard_normal((64, 256)) / 8).astype(np.float32), "w1")
    w2 = numpy_helper.from_array((rng.standard_normal((256, 64)) / 16).astype(np.float32), "w2")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "w2"], ["m"]),
            helper.make_node("Softmax", ["m"], ["y"], axis=-1),
        ],
        "sequence",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 64])],
        [w1, w2],
    )
    return _save(graph, path)


def openvino_plugin_config() -> SessionConfig | None:
    """ORT's defaults on the OpenVINO plugin EP's CPU device (``onnxruntime-ep-openvino``), or
    None where the plugin does not register one (used by the soak's test and
    scripts/bench_soak.py)."""
    from autotune.providers import plugin_candidates

    for space in plugin_candidates():
        if space.ep_name == "OpenVINOExecutionProvider" and space.plugin["device"][:3] == "CPU":
            providers: tuple[tuple[str, dict[str, str]], ...] = ((space.ep_name, {}), (CPU, {}))
            return SessionConfig(providers=providers, plugin=dict(space.plugin)).canonical()
    return None
