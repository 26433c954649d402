"""The example models: valid ONNX, run on ORT CPU, finite O(1) outputs, stable across levels."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from autotune.errors import AutotuneError
from autotune.examples import EXAMPLES, Example, write_example

NAMES = ["mlp", "mobilenetv2", "resnet50", "transformer"]

# name -> ({input: (dtype, shape without batch)}, (output name, shape without batch))
SIGNATURES: dict[
    str, tuple[dict[str, tuple[type[Any], tuple[int, ...]]], tuple[str, tuple[int, ...]]]
] = {
    "mlp": ({"x": (np.float32, (64,))}, ("y", (10,))),
    "mobilenetv2": ({"input": (np.float32, (3, 224, 224))}, ("logits", (1000,))),
    "resnet50": ({"input": (np.float32, (3, 224, 224))}, ("logits", (1000,))),
    "transformer": (
        {"input_ids": (np.int64, (128,)), "attention_mask": (np.int64, (128,))},
        ("last_hidden_state", (128, 256)),
    ),
}


@pytest.fixture(scope="module")
def model_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each example written once for the whole module (resnet50 is ~100 MB)."""
    root = tmp_path_factory.mktemp("examples")
    return {name: write_example(name, root / name / f"{name}.onnx") for name in NAMES}


def _feeds(name: str, batch: int = 1) -> dict[str, np.ndarray[Any, Any]]:
    """Float inputs standard normal (seed 0), int64 inputs all ones."""
    rng = np.random.default_rng(0)
    feeds: dict[str, np.ndarray[Any, Any]] = {}
    for input_name, (dtype, dims) in SIGNATURES[name][0].items():
        shape = (batch, *dims)
        if dtype is np.float32:
            feeds[input_name] = rng.standard_normal(shape).astype(np.float32)
        else:
            feeds[input_name] = np.ones(shape, dtype=np.int64)
    return feeds


def _run(path: Path, feeds: dict[str, np.ndarray[Any, Any]], level: str) -> np.ndarray[Any, Any]:
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (output,) = session.run(None, feeds)
    return np.asarray(output)


def test_registry() -> None:
    assert sorted(EXAMPLES) == NAMES
    for key, example in EXAMPLES.items():
        assert isinstance(example, Example)
        assert example.name == key
        assert example.description and "\n" not in example.description


@pytest.mark.parametrize("name", NAMES)
def test_model_is_valid_onnx(name: str, model_paths: dict[str, Path]) -> None:
    model = onnx.load(model_paths[name])
    onnx.checker.check_model(model, full_check=True)  # full_check runs strict shape inference
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert model.ir_version <= 9

    inputs, (output_name, output_dims) = SIGNATURES[name]
    graph_inputs = {i.name: i.type.tensor_type for i in model.graph.input}
    assert list(graph_inputs) == list(inputs)
    for input_name, (dtype, dims) in inputs.items():
        tensor_type = graph_inputs[input_name]
        assert onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type) == np.dtype(dtype)
        first, *rest = tensor_type.shape.dim
        assert first.dim_param == "batch"
        assert tuple(d.dim_value for d in rest) == dims
    (graph_output,) = model.graph.output
    assert graph_output.name == output_name

    # Shape inference carries the symbolic batch through to the output.
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    (out,) = inferred.graph.output
    first, *rest = out.type.tensor_type.shape.dim
    assert first.dim_param == "batch"
    assert tuple(d.dim_value for d in rest) == output_dims


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_matches_description(name: str, model_paths: dict[str, Path]) -> None:
    model = onnx.load(model_paths[name])
    count = sum(
        int(np.prod(t.dims))
        for t in model.graph.initializer
        if t.data_type == onnx.TensorProto.FLOAT
    )
    match = re.search(r"([\d.]+)([KM]) parameters", EXAMPLES[name].description)
    assert match is not None
    unit = {"K": 1e3, "M": 1e6}[match.group(2)]
    assert f"{count / unit:.1f}" == match.group(1)


@pytest.mark.parametrize("name", NAMES)
def test_runs_on_cpu_with_finite_order_one_output(name: str, model_paths: dict[str, Path]) -> None:
    output = _run(model_paths[name], _feeds(name), "ORT_ENABLE_ALL")
    assert output.shape == (1, *SIGNATURES[name][1][1])
    assert output.dtype == np.float32
    assert np.isfinite(output).all()
    assert 1e-3 < np.abs(output).max() < 1e4


@pytest.mark.parametrize("name", NAMES)
def test_optimization_levels_agree(name: str, model_paths: dict[str, Path]) -> None:
    """What autotune's accuracy gate relies on: optimized graphs match the unoptimized one."""
    feeds = _feeds(name)
    reference = _run(model_paths[name], feeds, "ORT_DISABLE_ALL")
    optimized = _run(model_paths[name], feeds, "ORT_ENABLE_ALL")
    assert np.allclose(optimized, reference, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", ["mlp", "mobilenetv2", "transformer"])
def test_batch_is_dynamic(name: str, model_paths: dict[str, Path]) -> None:
    feeds = _feeds(name, batch=3)
    output = _run(model_paths[name], feeds, "ORT_ENABLE_ALL")
    assert output.shape == (3, *SIGNATURES[name][1][1])
    # Each row depends only on its own inputs.
    single = _run(model_paths[name], {k: v[1:2] for k, v in feeds.items()}, "ORT_ENABLE_ALL")
    assert np.allclose(output[1:2], single, rtol=1e-4, atol=1e-5)


def test_transformer_attention_mask_matters(model_paths: dict[str, Path]) -> None:
    feeds = _feeds("transformer", batch=2)
    feeds["input_ids"] = np.random.default_rng(1).integers(0, 30522, (2, 128), dtype=np.int64)
    feeds["attention_mask"][1, 64:] = 0
    reference = _run(model_paths["transformer"], feeds, "ORT_DISABLE_ALL")
    optimized = _run(model_paths["transformer"], feeds, "ORT_ENABLE_ALL")
    assert np.isfinite(reference).all()
    assert np.allclose(optimized, reference, rtol=1e-3, atol=1e-4)
    unmasked = _run(
        model_paths["transformer"],
        {"input_ids": feeds["input_ids"][1:], "attention_mask": np.ones((1, 128), np.int64)},
        "ORT_ENABLE_ALL",
    )
    assert not np.allclose(unmasked[0, :64], reference[1, :64], rtol=1e-3, atol=1e-4)


def test_mlp_bytes_are_deterministic(tmp_path: Path) -> None:
    build = EXAMPLES["mlp"].build
    assert build().SerializeToString() == build().SerializeToString()
    first = write_example("mlp", tmp_path / "a.onnx")
    second = write_example("mlp", tmp_path / "b.onnx")
    assert first.read_bytes() == second.read_bytes()


def test_write_example_creates_parents_and_returns_path(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "mlp.onnx"
    result = write_example("mlp", str(target))
    assert result == target
    assert isinstance(result, Path)
    assert onnx.load(result).graph.output[0].name == "y"


def test_unknown_example_name(tmp_path: Path) -> None:
    message = "unknown example 'x'; choose one of: mlp, mobilenetv2, resnet50, transformer"
    with pytest.raises(AutotuneError, match=f"^{re.escape(message)}$"):
        write_example("x", tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
