"""ORT's CoreML op lists, corrected against the CoreML EP's builders before ``inspect`` uses them.

onnxruntime's usability checker reads ``coreml_supported_{mlprogram,neuralnetwork}_ops.md`` from
the wheel and matches ``domain:op`` exactly, skipping lines without a colon. In ORT 1.32 those
lists disagree with the EP's own builders (``onnxruntime/core/providers/coreml/builders/impl/``,
and the same strings in the 1.32 macOS wheel):

- MLProgram: ArgMax is listed as ``Argmax`` and never matches (``argmax_op_builder.cc``, MIL
  ``reduce_argmax``); Gather (``gather_op_builder.cc``), BatchNormalization
  (``batch_norm_op_builder.cc``, MIL ``batch_norm``), ReduceMin and ReduceProd
  (``reduction_op_builder.cc`` refuses them only for NeuralNetwork; MIL ``reduce_min``,
  ``reduce_prod``) are missing.
- NeuralNetwork: ReduceSum is listed as ``ai.onnx.ReduceSum`` (no colon, skipped) and ReduceMean
  is missing, although the builder emits both as NN layers; Tile is missing, although its NN path
  takes a constant ``repeats`` ("Tile NeuralNetwork path requires 'repeats' to be a constant
  initializer"); Cast is listed without its condition: NN takes a Cast only right after an
  ArgMax, to int32 ("Cast's producing node is not ArgMax is not supported."); Pad is listed
  without its condition: a constant-mode Pad needs a ``constant_value`` input ("`constant_value`
  input is required for constant mode Pad op in NeuralNetwork mode.").

Like the checker, these are op-level facts plus the few node conditions above; attributes, dtypes
and shapes beyond them stay the EP's to judge at session creation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

ONNX = "ai.onnx"
_INT32 = 6  # onnx.TensorProto.INT32, without importing onnx here

# what each format's list lacks (domain:op -> the builder that takes it)
MISSING: dict[str, dict[str, str]] = {
    "MLProgram": {
        f"{ONNX}:ArgMax": "argmax_op_builder.cc (the list spells it Argmax)",
        f"{ONNX}:Gather": "gather_op_builder.cc",
        f"{ONNX}:BatchNormalization": "batch_norm_op_builder.cc",
        f"{ONNX}:ReduceMin": "reduction_op_builder.cc",
        f"{ONNX}:ReduceProd": "reduction_op_builder.cc",
    },
    "NeuralNetwork": {
        f"{ONNX}:ReduceSum": "reduction_op_builder.cc (the list writes ai.onnx.ReduceSum)",
        f"{ONNX}:ReduceMean": "reduction_op_builder.cc",
        f"{ONNX}:Tile": "tile_op_builder.cc (constant repeats)",
    },
}
# list entries that name no op the EP has
MISSPELT = frozenset({f"{ONNX}:Argmax"})


class _Graphs:
    """What a node rule needs to know of the model: producers and constant values."""

    def __init__(self, graph: Any) -> None:
        self.producers: dict[str, Any] = {}
        self.constants: set[str] = set()
        for g in _graphs(graph):
            self.constants.update(i.name for i in g.initializer)
            for node in g.node:
                for output in node.output:
                    self.producers[output] = node
                if node.op_type == "Constant" and node.domain in ("", ONNX):
                    self.constants.update(node.output)

    def is_constant(self, name: str) -> bool:
        return name in self.constants


def _graphs(graph: Any) -> Iterator[Any]:
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                yield from _graphs(sub)


def _attr(node: Any, name: str) -> Any:
    for attr in node.attribute:
        if attr.name == name:
            return attr
    return None


def _input(node: Any, index: int) -> str:
    return node.input[index] if len(node.input) > index else ""


def nn_cast(node: Any, graphs: _Graphs) -> bool:
    """cast_op_builder.cc: NeuralNetwork takes a Cast only after an ArgMax, to int32."""
    producer = graphs.producers.get(_input(node, 0))
    to = _attr(node, "to")
    return (
        producer is not None and producer.op_type == "ArgMax" and to is not None and to.i == _INT32
    )


def nn_pad(node: Any, graphs: _Graphs) -> bool:
    """pad_op_builder.cc: NeuralNetwork's constant-mode Pad needs a constant ``constant_value``."""
    mode = _attr(node, "mode")
    if mode is not None and mode.s.decode("utf-8", "replace") != "constant":
        return True  # other modes: the notes of autotune.output.inspection say what happens
    value = _input(node, 2)
    return bool(value) and graphs.is_constant(value)


def nn_tile(node: Any, graphs: _Graphs) -> bool:
    """tile_op_builder.cc: NeuralNetwork's Tile needs a constant ``repeats``."""
    return graphs.is_constant(_input(node, 1))


def constant_axes(node: Any, graphs: _Graphs) -> bool:
    """reduction_op_builder.cc: an ``axes`` input must be a constant initializer."""
    axes = _input(node, 1)
    return not axes or graphs.is_constant(axes)


Rule = Callable[[Any, _Graphs], bool]
RULES: dict[str, dict[str, Rule]] = {
    "MLProgram": {
        f"{ONNX}:ReduceMin": constant_axes,
        f"{ONNX}:ReduceProd": constant_axes,
    },
    "NeuralNetwork": {
        f"{ONNX}:Cast": nn_cast,
        f"{ONNX}:Pad": nn_pad,
        f"{ONNX}:Tile": nn_tile,
        f"{ONNX}:ReduceSum": constant_axes,
        f"{ONNX}:ReduceMean": constant_axes,
    },
}


class CorrectedOps:
    """The checker's op list for one CoreML format, corrected as this module describes. It has
    the checker's interface (``is_op_supported``, ``get_caveats``), so the checker's own
    partitioning (``usability_checker.check_partitioning``) runs with it."""

    def __init__(self, listed: Any, model_format: str, graph: Any) -> None:
        self._listed = listed  # usability_checker._SupportedOpsChecker for the format's list
        self._missing = MISSING[model_format]
        self._rules = RULES[model_format]
        self._graphs = _Graphs(graph)

    def is_op_supported(self, node: Any) -> bool:
        domain_op = f"{node.domain or ONNX}:{node.op_type}"
        if domain_op in MISSPELT:
            return False
        if domain_op not in self._missing and not self._listed.is_op_supported(node):
            return False
        rule = self._rules.get(domain_op)
        return rule is None or rule(node, self._graphs)

    def get_caveats(self) -> list[str]:
        caveats: list[str] = self._listed.get_caveats()
        return caveats
