"""Example models to try autotune on: real architectures with random, seeded weights.

Built with ``onnx.helper`` and numpy only (no torch, no download). Weights are deterministic (one
fixed seed per model, so building twice gives the same bytes) and scaled He/Xavier-style, with
damped residual branches, so activations stay of order one through the whole network on
standard-normal input: outputs can be compared between session configurations with relative
tolerances.

    resnet50     ResNet-50 v1.5, BatchNorm folded into Conv as a TorchScript export leaves it
    mobilenetv2  MobileNetV2 (width 1.0), ReLU6 as Clip(0, 6), depthwise convolutions
    mlp          a tiny 64-256-256-10 Gemm/Relu network
    transformer  a BERT-like encoder: 4 layers, hidden 256, 4 heads, sequence length 128

Every model uses opset 17; each input's first dimension is the symbolic ``batch``.
"""

from __future__ import annotations

import itertools
import math
import os
import pathlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from autotune.errors import AutotuneError

OPSET = 17
IR_VERSION = 9  # onnxruntime >= 1.16 loads it; onnx's newest default may be too new for older ORT
BATCH = "batch"

# Gain on the last (linear) convolution of each residual branch, so that adding the branch to
# the shortcut grows the activations' second moment by about 1 + RESIDUAL_GAIN**2 per block.
RESIDUAL_GAIN = 0.4


@dataclass(frozen=True)
class Example:
    name: str
    description: str
    build: Callable[[], onnx.ModelProto]


class _Graph:
    """Collects nodes and seeded random initializers for one model."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set()

    def _claim(self, name: str) -> str:
        if name in self._names:
            raise ValueError(f"duplicate tensor name {name!r}")
        self._names.add(name)
        return name

    def const(self, name: str, value: NDArray[np.generic]) -> str:
        self.initializers.append(numpy_helper.from_array(value, self._claim(name)))
        return name

    def normal(self, name: str, shape: Sequence[int], std: float, mean: float = 0.0) -> str:
        """A float32 initializer drawn from N(mean, std**2)."""
        value = self.rng.standard_normal(tuple(shape), dtype=np.float32)
        value *= np.float32(std)
        if mean:
            value += np.float32(mean)
        return self.const(name, value)

    def op(
        self, op_type: str, inputs: Sequence[str], name: str, output: str = "", **attrs: Any
    ) -> str:
        """Add node ``name``; returns its one output (named ``output``, or the node's name)."""
        out = self._claim(output or name)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=name, **attrs))
        return out

    def model(
        self,
        name: str,
        inputs: Sequence[onnx.ValueInfoProto],
        outputs: Sequence[onnx.ValueInfoProto],
        doc: str,
    ) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, name, list(inputs), list(outputs), initializer=self.initializers
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            ir_version=IR_VERSION,
            producer_name="autotune.examples",
            doc_string=doc,
        )
        return model


def _value(name: str, elem_type: int, dims: Sequence[int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, [BATCH, *dims])


def _scalar(value: float) -> NDArray[np.float32]:
    return np.array(value, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Convolutional networks


def _conv(
    g: _Graph,
    name: str,
    x: str,
    cin: int,
    cout: int,
    kernel: int,
    *,
    stride: int = 1,
    group: int = 1,
    gain: float = math.sqrt(2.0),
) -> str:
    """Conv with bias (a Conv+BatchNorm pair folded); weights ~ N(0, gain**2 / fan_in)."""
    fan_in = cin // group * kernel * kernel
    w = g.normal(f"{name}.weight", (cout, cin // group, kernel, kernel), gain / math.sqrt(fan_in))
    b = g.normal(f"{name}.bias", (cout,), 0.05)
    pad = kernel // 2
    return g.op(
        "Conv",
        [x, w, b],
        name,
        dilations=[1, 1],
        group=group,
        kernel_shape=[kernel, kernel],
        pads=[pad, pad, pad, pad],
        strides=[stride, stride],
    )


def _classifier(g: _Graph, x: str, features: int, classes: int = 1000) -> str:
    pooled = g.op("GlobalAveragePool", [x], "avgpool")
    flat = g.op("Flatten", [pooled], "flatten", axis=1)
    w = g.normal("fc.weight", (classes, features), 1.0 / math.sqrt(features))
    b = g.normal("fc.bias", (classes,), 0.05)
    return g.op("Gemm", [flat, w, b], "fc", output="logits", alpha=1.0, beta=1.0, transB=1)


def build_resnet50() -> onnx.ModelProto:
    """ResNet-50 v1.5 (stride on the 3x3 conv of each bottleneck), BatchNorm folded into Conv."""
    g = _Graph(seed=50)
    x = g.op("Relu", [_conv(g, "conv1", "input", 3, 64, 7, stride=2)], "relu")
    x = g.op("MaxPool", [x], "maxpool", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2])
    cin = 64
    for layer, (width, blocks, first_stride) in enumerate(
        [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], start=1
    ):
        cout = width * 4
        for block in range(blocks):
            p = f"layer{layer}.{block}"
            stride = first_stride if block == 0 else 1
            y = g.op("Relu", [_conv(g, f"{p}.conv1", x, cin, width, 1)], f"{p}.relu1")
            y = g.op(
                "Relu", [_conv(g, f"{p}.conv2", y, width, width, 3, stride=stride)], f"{p}.relu2"
            )
            y = _conv(g, f"{p}.conv3", y, width, cout, 1, gain=RESIDUAL_GAIN)
            if block == 0:
                shortcut = _conv(g, f"{p}.downsample", x, cin, cout, 1, stride=stride, gain=1.0)
            else:
                shortcut = x
            x = g.op("Relu", [g.op("Add", [y, shortcut], f"{p}.add")], f"{p}.relu3")
            cin = cout
    logits = _classifier(g, x, cin)
    return g.model(
        "resnet50",
        [_value("input", TensorProto.FLOAT, [3, 224, 224])],
        [_value(logits, TensorProto.FLOAT, [1000])],
        "ResNet-50 v1.5 with random weights (autotune example)",
    )


def build_mobilenetv2() -> onnx.ModelProto:
    """MobileNetV2, width multiplier 1.0, as torchvision lays it out; BatchNorm folded."""
    g = _Graph(seed=2)
    lo = g.const("relu6.min", _scalar(0.0))
    hi = g.const("relu6.max", _scalar(6.0))

    def conv_relu6(name: str, x: str, cin: int, cout: int, kernel: int, **kw: int) -> str:
        return g.op("Clip", [_conv(g, name, x, cin, cout, kernel, **kw), lo, hi], f"{name}.relu6")

    x = conv_relu6("features.0", "input", 3, 32, 3, stride=2)
    cin = 32
    index = 1
    for t, c, n, s in [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]:
        for i in range(n):
            p = f"features.{index}"
            stride = s if i == 0 else 1
            hidden = cin * t
            y = x
            if t != 1:
                y = conv_relu6(f"{p}.expand", y, cin, hidden, 1)
            y = conv_relu6(f"{p}.depthwise", y, hidden, hidden, 3, stride=stride, group=hidden)
            residual = stride == 1 and cin == c
            y = _conv(g, f"{p}.project", y, hidden, c, 1, gain=RESIDUAL_GAIN if residual else 1.0)
            x = g.op("Add", [x, y], f"{p}.add") if residual else y
            cin = c
            index += 1
    x = conv_relu6(f"features.{index}", x, cin, 1280, 1)
    logits = _classifier(g, x, 1280)
    return g.model(
        "mobilenetv2",
        [_value("input", TensorProto.FLOAT, [3, 224, 224])],
        [_value(logits, TensorProto.FLOAT, [1000])],
        "MobileNetV2 (width 1.0) with random weights (autotune example)",
    )


# ---------------------------------------------------------------------------------------------
# MLP


def build_mlp() -> onnx.ModelProto:
    """64-256-256-10 Gemm/Relu network."""
    g = _Graph(seed=64)
    x = "x"
    sizes = [64, 256, 256, 10]
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        last = i == len(sizes) - 2
        w = g.normal(
            f"fc{i + 1}.weight", (fan_out, fan_in), (1.0 if last else 2.0) / math.sqrt(fan_in)
        )
        b = g.normal(f"fc{i + 1}.bias", (fan_out,), 0.05)
        x = g.op("Gemm", [x, w, b], f"fc{i + 1}", output="y" if last else "", transB=1)
        if not last:
            x = g.op("Relu", [x], f"relu{i + 1}")
    return g.model(
        "mlp",
        [_value("x", TensorProto.FLOAT, [64])],
        [_value("y", TensorProto.FLOAT, [10])],
        "64-256-256-10 MLP with random weights (autotune example)",
    )


# ---------------------------------------------------------------------------------------------
# Transformer encoder

VOCAB = 30522
MAX_POSITIONS = 512
SEQ = 128
HIDDEN = 256
HEADS = 4
FFN = 1024
LAYERS = 4
LN_EPSILON = 1e-12


def _layer_norm(g: _Graph, name: str, x: str, output: str = "") -> str:
    gamma = g.normal(f"{name}.weight", (HIDDEN,), 0.05, mean=1.0)
    beta = g.normal(f"{name}.bias", (HIDDEN,), 0.05)
    return g.op(
        "LayerNormalization", [x, gamma, beta], name, output=output, axis=-1, epsilon=LN_EPSILON
    )


def _linear(g: _Graph, name: str, x: str, fan_in: int, fan_out: int) -> str:
    w = g.normal(f"{name}.weight", (fan_in, fan_out), 1.0 / math.sqrt(fan_in))
    b = g.normal(f"{name}.bias", (fan_out,), 0.02)
    return g.op("Add", [g.op("MatMul", [x, w], f"{name}.MatMul"), b], f"{name}.Add")


def _heads(g: _Graph, name: str, x: str, split_heads: str, perm: list[int]) -> str:
    """Linear projection ``name`` of ``x`` split into heads, transposed by ``perm``."""
    r = g.op("Reshape", [_linear(g, name, x, HIDDEN, HIDDEN), split_heads], f"{name}.Reshape")
    return g.op("Transpose", [r], f"{name}.Transpose", perm=perm)


def build_transformer() -> onnx.ModelProto:
    """BERT-like post-LayerNorm encoder with an additive attention mask and exact (Erf) GELU."""
    g = _Graph(seed=30522)
    head = HIDDEN // HEADS
    split_heads = g.const("shape.split_heads", np.array([0, 0, HEADS, head], dtype=np.int64))
    merge_heads = g.const("shape.merge_heads", np.array([0, 0, HIDDEN], dtype=np.int64))
    one = g.const("const.one", _scalar(1.0))
    half = g.const("const.half", _scalar(0.5))
    sqrt2 = g.const("const.sqrt2", _scalar(math.sqrt(2.0)))
    scale = g.const("const.attention_scale", _scalar(math.sqrt(head)))
    mask_min = g.const("const.mask_min", _scalar(-10000.0))
    mask_axes = g.const("const.mask_axes", np.array([1, 2], dtype=np.int64))

    # Embeddings: token + position, then LayerNorm.
    words = g.normal("embeddings.word_embeddings.weight", (VOCAB, HIDDEN), 0.02)
    positions = g.normal("embeddings.position_embeddings.weight", (MAX_POSITIONS, HIDDEN), 0.02)
    position_ids = g.const("embeddings.position_ids", np.arange(SEQ, dtype=np.int64))
    x = g.op(
        "Add",
        [
            g.op("Gather", [words, "input_ids"], "embeddings.word_embeddings", axis=0),
            g.op("Gather", [positions, position_ids], "embeddings.position_embeddings", axis=0),
        ],
        "embeddings.add",
    )
    x = _layer_norm(g, "embeddings.LayerNorm", x)

    # Additive mask: (1 - mask) * -10000, shaped [batch, 1, 1, SEQ] to broadcast over heads.
    mask = g.op("Unsqueeze", ["attention_mask", mask_axes], "mask.unsqueeze")
    mask = g.op("Cast", [mask], "mask.cast", to=TensorProto.FLOAT)
    mask = g.op("Sub", [one, mask], "mask.sub")
    mask = g.op("Mul", [mask, mask_min], "mask.mul")

    for layer in range(LAYERS):
        p = f"encoder.layer.{layer}"

        q, k, v = (
            _heads(g, f"{p}.attention.{n}", x, split_heads, perm)
            for n, perm in [("query", [0, 2, 1, 3]), ("key", [0, 2, 3, 1]), ("value", [0, 2, 1, 3])]
        )
        scores = g.op("MatMul", [q, k], f"{p}.attention.scores")
        scores = g.op("Div", [scores, scale], f"{p}.attention.scale")
        scores = g.op("Add", [scores, mask], f"{p}.attention.mask")
        probs = g.op("Softmax", [scores], f"{p}.attention.softmax", axis=-1)
        context = g.op("MatMul", [probs, v], f"{p}.attention.context")
        context = g.op(
            "Transpose", [context], f"{p}.attention.context.Transpose", perm=[0, 2, 1, 3]
        )
        context = g.op("Reshape", [context, merge_heads], f"{p}.attention.context.Reshape")
        attn = _linear(g, f"{p}.attention.output.dense", context, HIDDEN, HIDDEN)
        x = _layer_norm(
            g, f"{p}.attention.output.LayerNorm", g.op("Add", [attn, x], f"{p}.attention.residual")
        )

        h = _linear(g, f"{p}.intermediate.dense", x, HIDDEN, FFN)
        erf = g.op("Erf", [g.op("Div", [h, sqrt2], f"{p}.gelu.Div")], f"{p}.gelu.Erf")
        gelu = g.op("Mul", [h, g.op("Add", [erf, one], f"{p}.gelu.Add")], f"{p}.gelu.Mul")
        gelu = g.op("Mul", [gelu, half], f"{p}.gelu.Mul_half")
        out = _linear(g, f"{p}.output.dense", gelu, FFN, HIDDEN)
        x = _layer_norm(
            g,
            f"{p}.output.LayerNorm",
            g.op("Add", [out, x], f"{p}.output.residual"),
            output="last_hidden_state" if layer == LAYERS - 1 else "",
        )

    return g.model(
        "transformer",
        [
            _value("input_ids", TensorProto.INT64, [SEQ]),
            _value("attention_mask", TensorProto.INT64, [SEQ]),
        ],
        [_value("last_hidden_state", TensorProto.FLOAT, [SEQ, HIDDEN])],
        "BERT-like encoder (4 layers, hidden 256) with random weights (autotune example)",
    )


# ---------------------------------------------------------------------------------------------

EXAMPLES: dict[str, Example] = {
    e.name: e
    for e in [
        Example(
            "mlp",
            "MLP 64-256-256-10, Gemm/Relu (1x64 float32, 85.0K parameters)",
            build_mlp,
        ),
        Example(
            "mobilenetv2",
            "MobileNetV2 1.0 (1x3x224x224 float32, 3.5M parameters)",
            build_mobilenetv2,
        ),
        Example(
            "resnet50",
            "ResNet-50 v1.5 (1x3x224x224 float32, 25.5M parameters)",
            build_resnet50,
        ),
        Example(
            "transformer",
            "BERT-like encoder, 4 layers, hidden 256, 4 heads "
            "(1x128 int64 input_ids + attention_mask, 11.1M parameters)",
            build_transformer,
        ),
    ]
}


def write_example(name: str, path: str | os.PathLike[str]) -> pathlib.Path:
    """Build example ``name`` and save it to ``path`` (parent directories created)."""
    example = EXAMPLES.get(name)
    if example is None:
        raise AutotuneError(
            f"unknown example {name!r}; choose one of: {', '.join(sorted(EXAMPLES))}"
        )
    out = pathlib.Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(example.build(), out)
    return out
