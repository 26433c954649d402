"""``autotune inspect``: file facts, symbolic dims, op histogram and the CoreML prediction.

The CoreML numbers come from onnxruntime's usability checker (1.32.0). Each expected number was
worked out by hand from the op lists in the wheel and the checker's partitioning rule (a node
joins the current partition unless it consumes a supported node's output across an unsupported
node), then confirmed against the checker.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from autotune.commands.cli import _Group
from autotune.commands.cli_inspect import inspect_cmd
from autotune.errors import ModelError
from autotune.model import load_model_info
from autotune.output.inspection import (
    PAD_CONSTANT_NOTE,
    PAD_REFLECT_NOTE,
    CoreMLPrediction,
    Inspection,
    format_inspection,
    inspect_model,
)
from tests import models


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def _weights(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
    rng = np.random.default_rng(0)
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


def symbolic_model(path: Path) -> Path:
    """x[batch, seq, ?] -> Relu -> Softmax -> y, and a fixed z[2, 3] -> Relu -> w."""
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["a"]),
            helper.make_node("Softmax", ["a"], ["y"], axis=-1),
            helper.make_node("Relu", ["z"], ["w"]),
        ],
        "symbolic",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", None]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 3]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", None]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 3]),
        ],
    )
    return _save(graph, path)


def mixed_model(path: Path) -> Path:
    """Conv -> Relu -> Pad(reflect) -> Erf -> Relu -> TopK -> Relu -> NonZero, all fixed shapes.

    NeuralNetwork lacks Erf, TopK, NonZero: [Conv Relu Pad] Erf [Relu] TopK [Relu] NonZero.
    MLProgram lacks Pad, TopK, NonZero: [Conv Relu] Pad [Erf Relu] TopK [Relu] NonZero.
    """
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("Pad", ["r", "pads"], ["p"], mode="reflect"),
            helper.make_node("Erf", ["p"], ["e"]),
            helper.make_node("Relu", ["e"], ["r2"]),
            helper.make_node("TopK", ["r2", "k"], ["v", "i"], axis=-1),
            helper.make_node("Relu", ["v"], ["r3"]),
            helper.make_node("NonZero", ["r3"], ["nz"]),
        ],
        "mixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [
            helper.make_tensor_value_info("r3", TensorProto.FLOAT, [1, 4, 10, 2]),
            helper.make_tensor_value_info("nz", TensorProto.INT64, [4, None]),
        ],
        [
            _weights("w", (4, 3, 3, 3)),
            numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"),
            numpy_helper.from_array(np.array([2], np.int64), "k"),
        ],
    )
    return _save(graph, path)


def conv_model(path: Path) -> Path:
    """x[1, 3, 16, 16] -> Conv(+bias) -> Relu -> MaxPool: every op in both CoreML lists."""
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("MaxPool", ["r"], ["y"], kernel_shape=[2, 2], strides=[2, 2]),
        ],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])],
        [_weights("w", (8, 3, 3, 3)), _weights("b", (8,))],
    )
    return _save(graph, path)


def rank6_subgraph_model(path: Path) -> Path:
    """A rank-6 dynamic input through Relu and two Pads (edge, constant), and an If."""
    then = helper.make_graph(
        [helper.make_node("Relu", ["a"], ["t"])],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])],
    )
    other = helper.make_graph(
        [helper.make_node("Neg", ["a"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [2])],
    )
    pads = numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 1] * 2, np.int64), "pads")
    out6: list[str | int | None] = ["b", 1, 1, 1, 1, 4]
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x6"], ["r6"]),
            helper.make_node("Pad", ["r6", "pads"], ["p6"], mode="edge"),
            helper.make_node("Pad", ["r6", "pads"], ["p7"]),
            helper.make_node("Relu", ["a0"], ["a"]),
            helper.make_node("If", ["c"], ["o"], then_branch=then, else_branch=other),
        ],
        "misc",
        [
            helper.make_tensor_value_info("x6", TensorProto.FLOAT, ["b", 1, 1, 1, 1, 2]),
            helper.make_tensor_value_info("a0", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
        ],
        [
            helper.make_tensor_value_info("p6", TensorProto.FLOAT, out6),
            helper.make_tensor_value_info("p7", TensorProto.FLOAT, out6),
            helper.make_tensor_value_info("o", TensorProto.FLOAT, [2]),
        ],
        [pads],
    )
    return _save(graph, path)


def _coreml(found: Inspection) -> dict[str, CoreMLPrediction]:
    assert found.coreml_unavailable is None, found.coreml_unavailable
    return {p.model_format: p for p in found.coreml}


# -- the library -----------------------------------------------------------------------------


def test_file_facts_and_symbolic_dims(tmp_path: Path) -> None:
    path = symbolic_model(tmp_path / "sym.onnx")
    found = inspect_model(path)
    info = load_model_info(path)
    assert found.size_bytes == path.stat().st_size
    assert found.digest == info.digest and len(found.digest) == 64
    assert found.opset == 17
    assert found.op_counts == {"Relu": 2, "Softmax": 1}
    assert not found.has_subgraphs
    assert [(t.name, t.shape) for t in found.inputs] == [
        ("x", ("batch", "seq", None)),
        ("z", (2, 3)),
    ]
    text = format_inspection(found)
    assert "x  float32  [batch, seq, ?]" in text
    assert "z  float32  [2, 3]" in text
    assert "y  float32  [batch, seq, ?]" in text
    assert "Relu 2  Softmax 1" in text
    assert found.digest in text


def test_dynamic_shapes_lost_with_require_static_input_shapes(tmp_path: Path) -> None:
    found = inspect_model(symbolic_model(tmp_path / "sym.onnx"))
    for p in _coreml(found).values():
        # Shapes allowed to vary: all three nodes, one partition (both Relus are roots).
        assert (p.partitions, p.supported_nodes, p.total_nodes) == (1, 3, 3)
        assert p.partition_sizes == (3,)
        assert p.unsupported_ops == ()
        # RequireStaticInputShapes=1: only Relu(z) keeps its fixed input.
        assert (p.static_partitions, p.static_supported_nodes) == (1, 1)
        assert p.static_partition_sizes == (1,)
        assert p.dynamic_shape_nodes == 2
        assert p.rank_unsupported_nodes == 0
    text = format_inspection(found)
    assert "would lose 2 MLProgram and 2 NeuralNetwork node(s)" in text
    assert "make_dynamic_shape_fixed" in text
    assert "Notes" not in text


def test_unsupported_ops_partitions_and_reflect_pad_note(tmp_path: Path) -> None:
    found = inspect_model(mixed_model(tmp_path / "mixed.onnx"))
    pred = _coreml(found)
    nn, ml = pred["NeuralNetwork"], pred["MLProgram"]
    assert nn.unsupported_ops == ("Erf", "NonZero", "TopK")
    assert (nn.partitions, nn.supported_nodes, nn.total_nodes) == (3, 5, 8)
    assert nn.partition_sizes == (3, 1, 1)
    assert ml.unsupported_ops == ("NonZero", "Pad", "TopK")
    assert (ml.partitions, ml.supported_nodes, ml.total_nodes) == (3, 5, 8)
    assert ml.partition_sizes == (2, 2, 1)
    for p in (nn, ml):  # every shape is fixed: static shapes change nothing
        assert p.static_partition_sizes == p.partition_sizes
        assert p.dynamic_shape_nodes == 0
    assert found.notes == (PAD_REFLECT_NOTE.format(n=1),)
    text = format_inspection(found)
    assert "NeuralNetwork unsupported ops: Erf, NonZero, TopK" in text
    assert "MLProgram unsupported ops: NonZero, Pad, TopK" in text
    assert "5/8 (62%)" in text
    assert "would lose no node to dynamic shapes" in text
    flat = " ".join(text.split())
    assert "supports reflect Pad on the last two dims in MLProgram" in flat
    assert "under-reports MLProgram coverage" in flat
    assert "over-reports NeuralNetwork coverage" in flat


def test_fully_supported_conv_model_is_one_partition(tmp_path: Path) -> None:
    found = inspect_model(conv_model(tmp_path / "conv.onnx"))
    for p in _coreml(found).values():
        assert (p.partitions, p.supported_nodes, p.total_nodes) == (1, 3, 3)
        assert p.partition_sizes == p.static_partition_sizes == (3,)
        assert p.unsupported_ops == ()
    assert found.notes == ()
    assert "3/3 (100%)" in format_inspection(found)


def test_rank_over_five_is_not_counted_as_a_dynamic_shape_loss(tmp_path: Path) -> None:
    found = inspect_model(rank6_subgraph_model(tmp_path / "misc.onnx"))
    assert found.has_subgraphs
    pred = _coreml(found)
    nn, ml = pred["NeuralNetwork"], pred["MLProgram"]
    # 5 main-graph nodes + Relu (then) + Neg (else); the If itself is unsupported, and so is
    # the constant Pad without a constant_value in NeuralNetwork.
    assert (nn.supported_nodes, nn.total_nodes, nn.partition_sizes) == (4, 7, (3, 1))
    assert (ml.supported_nodes, ml.total_nodes, ml.partition_sizes) == (3, 7, (2, 1))
    for p in (nn, ml):
        # Statically only Relu(a0) and the then-branch Relu remain; the rank-6 nodes are lost
        # to their rank (CoreML refuses them anyway), not to their dynamic shape.
        assert (p.static_supported_nodes, p.static_partition_sizes) == (2, (1, 1))
        assert p.dynamic_shape_nodes == 0
        assert (p.rank_unsupported_nodes, p.rank_unsupported_ops) == (3, ("Pad", "Relu"))
    joined = " ".join(found.notes)
    assert PAD_CONSTANT_NOTE.format(n=1) in found.notes
    assert "use mode edge" in joined
    assert "2 node(s) are inside 2 control-flow subgraph(s)" in joined
    assert "3 node(s) (Pad, Relu) take inputs of rank > 5" in joined


def test_checker_missing_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from onnxruntime.tools import mobile_helpers

    monkeypatch.delattr(mobile_helpers, "usability_checker")
    monkeypatch.setitem(sys.modules, "onnxruntime.tools.mobile_helpers.usability_checker", None)
    found = inspect_model(conv_model(tmp_path / "conv.onnx"))
    assert found.coreml == ()
    assert found.coreml_unavailable is not None
    assert "ModuleNotFoundError" in found.coreml_unavailable
    text = format_inspection(found)
    assert text.splitlines()[-1].startswith("CoreML prediction unavailable: onnxruntime 1.")
    assert found.to_dict()["coreml"] is None


def test_checker_error_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from onnxruntime.tools.mobile_helpers import usability_checker as uc

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(uc, "check_partitioning", broken)
    found = inspect_model(conv_model(tmp_path / "conv.onnx"))
    assert found.coreml_unavailable == (
        "onnxruntime's usability checker failed (RuntimeError: boom)"
    )
    assert "CoreML prediction unavailable: onnxruntime's usability checker failed" in (
        format_inspection(found)
    )


def test_checker_logging_is_silenced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from onnxruntime.tools.mobile_helpers import usability_checker as uc

    real = uc.check_partitioning

    def chatty(*args: Any, **kwargs: Any) -> Any:
        logging.getLogger("usability_checker").warning("checker noise")
        return real(*args, **kwargs)

    monkeypatch.setattr(uc, "check_partitioning", chatty)
    caplog.set_level(logging.DEBUG)
    result = CliRunner().invoke(inspect_cmd, [str(conv_model(tmp_path / "conv.onnx"))])
    assert result.exit_code == 0, result.output
    assert "checker noise" not in result.output
    assert not [r for r in caplog.records if "noise" in r.getMessage()]
    assert logging.root.manager.disable == logging.NOTSET  # restored


def test_onnxruntime_tools_is_imported_lazily() -> None:
    code = (
        "import sys, autotune.output.inspection, autotune.commands.cli_inspect\n"
        "print(sorted(m for m in sys.modules if m.startswith('onnxruntime')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"


# -- the command -----------------------------------------------------------------------------


def test_command_text_and_json(tmp_path: Path) -> None:
    path = symbolic_model(tmp_path / "sym.onnx")
    runner = CliRunner()
    result = runner.invoke(inspect_cmd, [str(path)])
    assert result.exit_code == 0, result.output
    assert "[batch, seq, ?]" in result.output
    assert "CoreML, predicted by onnxruntime" in result.output

    result = runner.invoke(inspect_cmd, [str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) >= {
        "path",
        "size_bytes",
        "sha256",
        "opset",
        "inputs",
        "outputs",
        "node_count",
        "op_counts",
        "has_subgraphs",
        "coreml",
        "coreml_unavailable",
        "notes",
    }
    assert data["inputs"][0] == {"name": "x", "dtype": "float32", "shape": ["batch", "seq", None]}
    assert data["op_counts"] == {"Relu": 2, "Softmax": 1}
    assert set(data["coreml"]) == {"MLProgram", "NeuralNetwork"}
    ml = data["coreml"]["MLProgram"]
    assert (ml["partitions"], ml["supported_nodes"], ml["total_nodes"]) == (1, 3, 3)
    assert ml["require_static_input_shapes"] == {
        "partitions": 1,
        "supported_nodes": 1,
        "partition_sizes": [1],
        "nodes_lost_to_dynamic_shapes": 2,
    }


def _bad_models(tmp_path: Path) -> list[Path]:
    good = models.mlp(tmp_path / "mlp.onnx")
    not_onnx = tmp_path / "notes.onnx"
    not_onnx.write_text("this is not a model\n" * 20)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    folder = tmp_path / "folder.onnx"
    folder.mkdir()
    return [tmp_path / "missing.onnx", folder, not_onnx, truncated]


def test_bad_models_raise_the_model_errors_of_load_model_info(tmp_path: Path) -> None:
    for path in _bad_models(tmp_path):
        with pytest.raises(ModelError) as expected:
            load_model_info(path)
        result = CliRunner().invoke(inspect_cmd, [str(path)])
        assert isinstance(result.exception, ModelError), (path, result.output)
        assert str(result.exception) == str(expected.value)


def test_bad_models_print_one_error_line_under_the_group(tmp_path: Path) -> None:
    @click.group(cls=_Group)
    def group() -> None:
        pass

    group.add_command(inspect_cmd)
    for path in _bad_models(tmp_path):
        result = CliRunner().invoke(group, ["inspect", str(path)])
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
        assert "Traceback" not in result.output


# -- ORT's op lists, corrected against the CoreML EP's builders (autotune.output.coreml_ops) ----


def _const(name: str, values: Any, dtype: Any = np.int64) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, dtype), name)


def _op_model(
    path: Path,
    nodes: list[onnx.NodeProto],
    inputs: list[tuple[str, int, list[int]]],
    output: tuple[str, int, list[int]],
    initializers: list[onnx.TensorProto] = (),  # type: ignore[assignment]
) -> Path:
    graph = helper.make_graph(
        nodes,
        path.stem,
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(*output)],
        list(initializers),
    )
    return _save(graph, path)


F, I64 = TensorProto.FLOAT, TensorProto.INT64
X4 = ("x", F, [1, 2, 4, 4])
# name: (nodes, inputs, output, initializers, {format: the op under test is taken})
OP_CASES: dict[str, tuple[Any, ...]] = {
    # MLProgram's list spells it "Argmax", which never matches
    "ArgMax": (
        [helper.make_node("ArgMax", ["x"], ["y"], axis=1)],
        [X4],
        ("y", I64, [1, 1, 4, 4]),
        [],
        {"MLProgram": True, "NeuralNetwork": True},
    ),
    "Gather": (
        [helper.make_node("Gather", ["x", "i"], ["y"], axis=1)],
        [X4],
        ("y", F, [1, 2, 4, 4]),
        [_const("i", [1, 0])],
        {"MLProgram": True, "NeuralNetwork": True},
    ),
    "BatchNormalization": (
        [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])],
        [X4],
        ("y", F, [1, 2, 4, 4]),
        [_const(n, [1.0, 0.5], np.float32) for n in ("s", "b", "m", "v")],
        {"MLProgram": True, "NeuralNetwork": True},
    ),
    "ReduceMin": (
        [helper.make_node("ReduceMin", ["x"], ["y"], axes=[1])],
        [X4],
        ("y", F, [1, 1, 4, 4]),
        [],
        {"MLProgram": True, "NeuralNetwork": False},
    ),
    "ReduceProd": (
        [helper.make_node("ReduceProd", ["x"], ["y"], axes=[1])],
        [X4],
        ("y", F, [1, 1, 4, 4]),
        [],
        {"MLProgram": True, "NeuralNetwork": False},
    ),
    # NeuralNetwork's list writes "ai.onnx.ReduceSum" (no colon), which the checker skips
    "ReduceSum": (
        [helper.make_node("ReduceSum", ["x", "axes"], ["y"])],
        [X4],
        ("y", F, [1, 1, 4, 4]),
        [_const("axes", [1])],
        {"MLProgram": True, "NeuralNetwork": True},
    ),
    "ReduceSum, runtime axes": (
        [helper.make_node("ReduceSum", ["x", "axes"], ["y"])],
        [X4, ("axes", I64, [1])],
        ("y", F, [1, 1, 4, 4]),
        [],
        {"NeuralNetwork": False},
    ),
    "ReduceMean": (
        [helper.make_node("ReduceMean", ["x"], ["y"], axes=[1])],
        [X4],
        ("y", F, [1, 1, 4, 4]),
        [],
        {"MLProgram": True, "NeuralNetwork": True},
    ),
    "Tile": (
        [helper.make_node("Tile", ["x", "r"], ["y"])],
        [X4],
        ("y", F, [1, 2, 4, 8]),
        [_const("r", [1, 1, 1, 2])],
        {"MLProgram": True, "NeuralNetwork": True},
    ),
    "Tile, runtime repeats": (
        [helper.make_node("Tile", ["x", "r"], ["y"])],
        [X4, ("r", I64, [4])],
        ("y", F, [None, None, None, None]),
        [],
        {"MLProgram": True, "NeuralNetwork": False},
    ),
    # NeuralNetwork takes a Cast only right after an ArgMax, to int32
    "Cast": (
        [
            helper.make_node("Relu", ["x"], ["r"]),
            helper.make_node("Cast", ["r"], ["y"], to=TensorProto.INT32),
        ],
        [X4],
        ("y", TensorProto.INT32, [1, 2, 4, 4]),
        [],
        {"MLProgram": True, "NeuralNetwork": False},
    ),
    "Cast after ArgMax": (
        [
            helper.make_node("ArgMax", ["x"], ["a"], axis=1),
            helper.make_node("Cast", ["a"], ["y"], to=TensorProto.INT32),
        ],
        [X4],
        ("y", TensorProto.INT32, [1, 1, 4, 4]),
        [],
        {"MLProgram": True, "NeuralNetwork": True},
    ),
    # NeuralNetwork's constant Pad needs a constant_value input (MLProgram's list omits Pad:
    # PAD_CONSTANT_NOTE says so)
    "Pad": (
        [helper.make_node("Pad", ["x", "pads"], ["y"])],
        [X4],
        ("y", F, [1, 2, 6, 6]),
        [_const("pads", [0, 0, 1, 1, 0, 0, 1, 1])],
        {"NeuralNetwork": False},
    ),
    "Pad with a constant_value": (
        [helper.make_node("Pad", ["x", "pads", "value"], ["y"])],
        [X4],
        ("y", F, [1, 2, 6, 6]),
        [_const("pads", [0, 0, 1, 1, 0, 0, 1, 1]), _const("value", 0.5, np.float32)],
        {"NeuralNetwork": True},
    ),
}


@pytest.mark.parametrize("case", OP_CASES, ids=list(OP_CASES))
def test_coreml_op_lists_are_corrected_per_op(tmp_path: Path, case: str) -> None:
    nodes, inputs, output, initializers, expected = OP_CASES[case]
    path = _op_model(tmp_path / "op.onnx", nodes, inputs, output, initializers)
    pred = _coreml(inspect_model(path))
    op = nodes[-1].op_type
    for model_format, taken in expected.items():
        p = pred[model_format]
        assert (op not in p.unsupported_ops) == taken, (model_format, p.unsupported_ops)
        others = len(nodes) - 1  # the ops before it (Relu, ArgMax) are in both lists
        assert p.supported_nodes == others + taken, (model_format, p)
