"""Pipelines built in code (onnx.helper and numpy; seeded random weights), to try pipelines in
one command (``autotune example pipeline -o DIR``) and for the tests and the benchmark.

    speech   an encoder, a decoder step called 8 times with its hidden state fed back, and a
             small post-net fed the decoder's last output
    streams  two encoders that run at the same time (two streams of one app)
    ocr      a detector, then a recognizer called 4 times, overlapping the next detector
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from autotune.errors import AutotuneError
from autotune.pipeline.spec import write_pipeline

OPSET = 17
IR_VERSION = 9


def _save(
    nodes: list[Any],
    name: str,
    inputs: list[Any],
    outputs: list[Any],
    weights: list[Any],
    path: Path,
) -> Path:
    graph = helper.make_graph(nodes, name, inputs, outputs, weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _weight(rng: np.random.Generator, name: str, rows: int, cols: int) -> Any:
    return numpy_helper.from_array(
        (rng.standard_normal((rows, cols)) / np.sqrt(rows)).astype(np.float32), name
    )


def _tensor(name: str, shape: list[int]) -> Any:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def encoder(path: Path, *, x: str, y: str, rows: int, width: int, layers: int, seed: int) -> Path:
    """``x[1, rows, width]`` through ``layers`` MatMul+Relu layers (and a residual) to ``y``."""
    rng = np.random.default_rng(seed)
    nodes, weights, h = [], [], x
    for k in range(layers):
        weights.append(_weight(rng, f"w{k}", width, width))
        nodes += [
            helper.make_node("MatMul", [h, f"w{k}"], [f"m{k}"]),
            helper.make_node("Relu", [f"m{k}"], [f"r{k}"]),
        ]
        h = f"r{k}"
    nodes.append(helper.make_node("Add", [h, x], [y]))
    shape = [1, rows, width]
    return _save(nodes, "encoder", [_tensor(x, shape)], [_tensor(y, shape)], weights, path)


def decoder_step(path: Path, *, memory: str, width: int, rows: int, out: str, seed: int) -> Path:
    """One autoregressive step: ``h_out = tanh(h_in W + mean(memory) V)``, ``out = h_out U``;
    ``h_out`` is meant to be fed back as ``h_in``."""
    rng = np.random.default_rng(seed)
    weights = [_weight(rng, n, width, width) for n in ("W", "V", "U")]
    nodes = [
        helper.make_node("ReduceMean", [memory], ["ctx3"], axes=[1], keepdims=0),
        helper.make_node("MatMul", ["h_in", "W"], ["a"]),
        helper.make_node("MatMul", ["ctx3", "V"], ["b"]),
        helper.make_node("Add", ["a", "b"], ["s"]),
        helper.make_node("Tanh", ["s"], ["h_out"]),
        helper.make_node("MatMul", ["h_out", "U"], [out]),
    ]
    inputs = [_tensor(memory, [1, rows, width]), _tensor("h_in", [1, width])]
    outputs = [_tensor("h_out", [1, width]), _tensor(out, [1, width])]
    return _save(nodes, "decoder_step", inputs, outputs, weights, path)


def postnet(path: Path, *, x: str, width: int, y: str, seed: int) -> Path:
    """``x[1, width]`` -> MatMul -> Relu -> MatMul -> ``y[1, 4*width]``."""
    rng = np.random.default_rng(seed)
    weights = [_weight(rng, "p0", width, width), _weight(rng, "p1", width, 4 * width)]
    nodes = [
        helper.make_node("MatMul", [x, "p0"], ["q"]),
        helper.make_node("Relu", ["q"], ["qr"]),
        helper.make_node("MatMul", ["qr", "p1"], [y]),
    ]
    return _save(
        nodes, "postnet", [_tensor(x, [1, width])], [_tensor(y, [1, 4 * width])], weights, path
    )


def speech(out: Path) -> Path:
    """Encoder -> decoder step x8 (state fed back) -> post-net; returns the pipeline file."""
    width, rows = 256, 64
    encoder(out / "encoder.onnx", x="audio", y="memory", rows=rows, width=width, layers=4, seed=1)
    decoder_step(out / "decoder.onnx", memory="memory", width=width, rows=rows, out="token", seed=2)
    postnet(out / "postnet.onnx", x="token", width=width, y="wave", seed=3)
    return write_pipeline(
        {
            "name": "speech",
            "stages": [
                {"name": "encoder", "model": "encoder.onnx"},
                {"name": "decoder", "model": "decoder.onnx", "repeat": 8,
                 "state": {"h_out": "h_in"}},
                {"name": "postnet", "model": "postnet.onnx"},
            ],
        },
        out / "pipeline.toml",
    )  # fmt: skip


def _two_encoders(out: Path, name: str, stages: list[dict[str, Any]], rows: list[int]) -> Path:
    """Two encoders of width 512 (``rows`` each, 4 and 3 layers) that overlap."""
    for k, (stage, n) in enumerate(zip(stages, rows, strict=True)):
        path = out / stage["model"]
        encoder(path, x=f"{stage['name']}_in", y=f"{stage['name']}_out", rows=n, width=512,
                layers=4 - k, seed=4 + k)  # fmt: skip
    overlap = [s["name"] for s in stages]
    return write_pipeline(
        {"name": name, "overlap": overlap, "stages": stages}, out / "pipeline.toml"
    )


def streams(out: Path) -> Path:
    """Two encoders called at the same time (two streams): their threads contend."""
    stages: list[dict[str, Any]] = [
        {"name": "video", "model": "video.onnx"},
        {"name": "audio", "model": "audio.onnx"},
    ]
    return _two_encoders(out, "streams", stages, [128, 128])


def ocr(out: Path) -> Path:
    """A detector and a recognizer called 4 times per run, overlapping."""
    stages: list[dict[str, Any]] = [
        {"name": "det", "model": "det.onnx"},
        {"name": "rec", "model": "rec.onnx", "repeat": 4},
    ]
    return _two_encoders(out, "ocr", stages, [192, 16])


PIPELINES: dict[str, Callable[[Path], Path]] = {
    "speech": speech,
    "streams": streams,
    "ocr": ocr,
}


def write_example_pipeline(directory: str | Path, name: str = "speech") -> Path:
    """Write pipeline ``name``'s models and its pipeline.toml into ``directory``."""
    build = PIPELINES.get(name)
    if build is None:
        raise AutotuneError(f"unknown pipeline {name!r}; choose one of: {', '.join(PIPELINES)}")
    return build(Path(directory))
