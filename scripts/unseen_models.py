"""Models unlike autotune's examples, built in code (no downloads), for the decision benchmark
(``scripts/bench_decisions.py``): the kinds of third-party models users bring.

- ``vad``: a voice-activity detector: strided Conv1d front-end on 1024 samples, an LSTM over 64
  frames, a sigmoid per frame (~0.2 ms).
- ``wakeword``: a keyword spotter: three Conv2d blocks over a 40 x 98 log-mel patch (~0.5 ms).
- ``filetype``: a file-type classifier: byte embedding (Gather) over 1024 bytes, Conv1d, global
  max pool, a dense layer (~0.3 ms).
- ``ocr_det``: a text detector: a conv encoder-decoder (Resize up) on 1 x 3 x 160 x 160.
- ``crnn``: a text recognizer: conv stack, bidirectional LSTM, per-column classes
  (1 x 3 x 32 x 320).
- ``yolo``: a small detector: conv stack with stride-2 stages and a 1 x 1 detection head.
- ``gru``: a GRU over 50 steps, hidden 128.
- ``ocr_det_large``, ``filetype_large``: the detector on 1 x 3 x 640 x 640 and the classifier
  over 16 KiB with wider convolutions (~50 ms each on a 2-vCPU Xeon: models over 10 ms; the
  OpenVINO EP runs them 1.2x and 1.4x faster than ORT's CPU EP there).
- ``lstm``, ``ffn``, ``branches``: from ``scripts/bench_unseen.py``.
- ``shape_folding``: ``tests.models.shape_folding`` (a 3-4x effect from free dimension overrides).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from bench_unseen import MODELS as _UNSEEN
from bench_unseen import _model


class _Builder:
    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.count = 0

    def weight(self, shape: tuple[int, ...], scale: float) -> str:
        self.count += 1
        name = f"w{self.count}"
        value = (self.rng.standard_normal(shape) * scale).astype(np.float32)
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def const(self, value: Any, dtype: Any = np.int64) -> str:
        self.count += 1
        name = f"c{self.count}"
        self.inits.append(numpy_helper.from_array(np.array(value, dtype), name))
        return name

    def op(self, kind: str, inputs: list[str], **attrs: Any) -> str:
        self.count += 1
        out = f"{kind.lower()}{self.count}"
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int = 1, dims: int = 2) -> str:
        w = self.weight((cout, cin, *([k] * dims)), (2 / (cin * k**dims)) ** 0.5)
        b = self.weight((cout,), 0.01)
        pads = [0 if stride == k else k // 2] * (2 * dims)
        y = self.op("Conv", [x, w, b], pads=pads, strides=[stride] * dims)
        return self.op("Relu", [y])

    def model(self, inputs: list[Any], output: str, out_shape: list[int]) -> Any:
        y = helper.make_tensor_value_info(output, TensorProto.FLOAT, out_shape)
        return _model(self.nodes, inputs, [y], self.inits)


def _input(name: str, shape: list[int], dtype: int = TensorProto.FLOAT) -> Any:
    return helper.make_tensor_value_info(name, dtype, shape)


def vad() -> Any:
    g = _Builder(1)
    h = g.conv("x", 1, 32, 16, stride=16, dims=1)  # [1, 32, 64]
    h = g.conv(h, 32, 32, 3, dims=1)
    seq = g.op("Transpose", [h], perm=[2, 0, 1])  # [64, 1, 32]
    hidden = 64
    w, r = g.weight((1, 4 * hidden, 32), 0.1), g.weight((1, 4 * hidden, hidden), 0.1)
    y = g.op("LSTM", [seq, w, r], hidden_size=hidden)  # [64, 1, 1, 64]
    flat = g.op("Reshape", [y, g.const([-1, hidden])])
    logits = g.op("MatMul", [flat, g.weight((hidden, 1), 0.1)])
    out = g.op("Sigmoid", [logits])
    return g.model([_input("x", [1, 1, 1024])], out, [64, 1])


def wakeword() -> Any:
    g = _Builder(2)
    h = g.conv("x", 1, 16, 3)
    h = g.op("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = g.conv(h, 16, 32, 3)
    h = g.op("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = g.conv(h, 32, 32, 3)
    pooled = g.op("GlobalAveragePool", [h])
    flat = g.op("Flatten", [pooled])
    out = g.op("MatMul", [flat, g.weight((32, 12), 0.1)])
    return g.model([_input("x", [1, 1, 40, 98])], out, [1, 12])


def filetype() -> Any:
    g = _Builder(3)
    emb = g.op("Gather", [g.weight((256, 32), 0.1), "bytes"])  # [1, 1024, 32]
    h = g.op("Transpose", [emb], perm=[0, 2, 1])
    h = g.conv(h, 32, 64, 9, stride=4, dims=1)
    h = g.conv(h, 64, 64, 9, stride=4, dims=1)
    pooled = g.op("GlobalMaxPool", [h])
    flat = g.op("Flatten", [pooled])
    out = g.op("MatMul", [flat, g.weight((64, 100), 0.1)])
    return g.model([_input("bytes", [1, 1024], TensorProto.INT64)], out, [1, 100])


def _detector(seed: int, size: int, widths: tuple[int, int, int, int]) -> Any:
    """A text detector: three stride-2 convolutions, one more, 4x nearest upsampling, a 1-channel
    sigmoid map at half the input's resolution."""
    g = _Builder(seed)
    h, ch = "x", 3
    for width, stride in zip(widths, (2, 2, 2, 1), strict=True):
        h, ch = g.conv(h, ch, width, 3, stride=stride), width
    scales = g.const([1.0, 1.0, 4.0, 4.0], np.float32)
    up = g.op("Resize", [h, "", scales], mode="nearest")
    h = g.conv(up, ch, 32, 3)
    h = g.conv(h, 32, 1, 1)
    out = g.op("Sigmoid", [h])
    return g.model([_input("x", [1, 3, size, size])], out, [1, 1, size // 2, size // 2])


def ocr_det() -> Any:
    return _detector(4, 160, (16, 32, 64, 64))


def crnn() -> Any:
    g = _Builder(5)
    h, ch = "x", 3
    for out, pool in ((32, (2, 2)), (64, (2, 2)), (128, (2, 1)), (128, (2, 1))):
        h = g.conv(h, ch, out, 3)
        h = g.op("MaxPool", [h], kernel_shape=list(pool), strides=list(pool))
        ch = out
    h = g.op("ReduceMean", [h], axes=[2], keepdims=0)  # [1, 128, 80]
    seq = g.op("Transpose", [h], perm=[2, 0, 1])  # [80, 1, 128]
    hidden = 96
    w = g.weight((2, 4 * hidden, ch), 0.05)
    r = g.weight((2, 4 * hidden, hidden), 0.05)
    y = g.op("LSTM", [seq, w, r], hidden_size=hidden, direction="bidirectional")
    y = g.op("Transpose", [y], perm=[0, 2, 1, 3])
    feat = g.op("Reshape", [y, g.const([80, 2 * hidden])])
    logits = g.op("MatMul", [feat, g.weight((2 * hidden, 97), 0.05)])
    return g.model([_input("x", [1, 3, 32, 320])], logits, [80, 97])


def yolo() -> Any:
    g = _Builder(6)
    h, ch = "x", 3
    for out in (16, 32, 64, 128):
        h = g.conv(h, ch, out, 3, stride=2)
        h = g.conv(h, out, out, 3)
        ch = out
    w = g.weight((3 * 85, ch, 1, 1), 0.05)
    head = g.op("Conv", [h, w])  # [1, 255, 10, 10]
    return g.model([_input("x", [1, 3, 160, 160])], head, [1, 255, 10, 10])


def ocr_det_large() -> Any:
    return _detector(8, 640, (32, 64, 128, 128))


def filetype_large() -> Any:
    g = _Builder(9)
    emb = g.op("Gather", [g.weight((256, 64), 0.1), "bytes"])  # [1, 16384, 64]
    h = g.op("Transpose", [emb], perm=[0, 2, 1])
    for cin in (64, 256, 256):
        h = g.conv(h, cin, 256, 9, stride=2, dims=1)
    pooled = g.op("GlobalMaxPool", [h])
    flat = g.op("Flatten", [pooled])
    out = g.op("MatMul", [flat, g.weight((256, 100), 0.1)])
    return g.model([_input("bytes", [1, 16384], TensorProto.INT64)], out, [1, 100])


def gru() -> Any:
    g = _Builder(7)
    hidden, features = 128, 64
    w = g.weight((1, 3 * hidden, features), 0.05)
    r = g.weight((1, 3 * hidden, hidden), 0.05)
    y = g.op("GRU", ["x", w, r], hidden_size=hidden)
    out = g.op("ReduceMean", [y], axes=[0], keepdims=0)
    return g.model([_input("x", [50, 1, features])], out, [1, 1, hidden])


def shape_folding() -> Any:
    import tempfile

    import onnx

    from tests import models

    with tempfile.TemporaryDirectory() as tmp:
        return onnx.load(str(models.shape_folding(Path(tmp) / "m.onnx")))


MODELS: dict[str, Callable[[], Any]] = {
    "vad": vad,
    "wakeword": wakeword,
    "filetype": filetype,
    "ocr_det": ocr_det,
    "crnn": crnn,
    "yolo": yolo,
    "gru": gru,
    **_UNSEEN,
    "ocr_det_large": ocr_det_large,
    "filetype_large": filetype_large,
    "shape_folding": shape_folding,
}
