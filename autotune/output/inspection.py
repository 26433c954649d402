"""What a model is, without running it: file, inputs, ops, and predicted CoreML partitions.

The CoreML prediction comes from onnxruntime's own offline checker
(``onnxruntime.tools.mobile_helpers.usability_checker``), which reads the op lists shipped in the
wheel and works on any machine. It is a pre-filter: it checks op types, input shapes and rank,
not attributes, and the lists lag the EP's code. The lists are corrected against the EP's
builders first (:mod:`autotune.output.coreml_ops`); where the checker is still known to be wrong,
the inspection carries a note saying so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import textwrap
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotune.model import Dim, TensorSpec, load_model_info, resolve_shapes, shape_signature
from autotune.output.coreml_ops import CorrectedOps

COREML_FORMATS = {
    "MLProgram": "coreml_supported_mlprogram_ops.md",
    "NeuralNetwork": "coreml_supported_neuralnetwork_ops.md",
}
_COREML_MAX_RANK = 5  # the rank limit check_coreml_partitions passes to the partitioner
_SIZES_SHOWN = 10  # partition sizes printed in the table (the JSON has them all)

PAD_REFLECT_NOTE = (
    "{n} Pad node(s) use mode=reflect. ORT 1.32's CoreML EP supports reflect Pad on the last "
    "two dims in MLProgram, so the checker under-reports MLProgram coverage; it does not support "
    "it in NeuralNetwork, so the checker over-reports NeuralNetwork coverage."
)
PAD_CONSTANT_NOTE = (
    "{n} Pad node(s) use mode=constant. ORT 1.32's CoreML EP supports constant Pad in MLProgram "
    "(constant, non-negative pads) but its op list omits Pad, so the checker under-reports "
    "MLProgram coverage."
)
PAD_OTHER_NOTE = (
    "{n} Pad node(s) use mode {modes}, which ORT 1.32's CoreML EP supports in neither format; "
    "the checker over-reports NeuralNetwork coverage."
)
RANK_NOTE = (
    "{n} node(s) ({ops}) take inputs of rank > 5, which CoreML refuses. The checker tests rank "
    "only in its RequireStaticInputShapes=1 run, so the default rows do not exclude them."
)
SUBGRAPH_NOTE = (
    "{n} node(s) are inside {m} control-flow subgraph(s). The checker partitions them on their "
    "own; the CoreML EP takes them only with EnableOnSubgraphs=1."
)


@dataclass(frozen=True)
class CoreMLPrediction:
    """The checker's partitioning for one CoreML model format."""

    model_format: str  # "MLProgram" or "NeuralNetwork"
    total_nodes: int
    supported_nodes: int  # with dynamic input shapes allowed (RequireStaticInputShapes=0)
    partition_sizes: tuple[int, ...]
    unsupported_ops: tuple[str, ...]
    static_supported_nodes: int  # with RequireStaticInputShapes=1
    static_partition_sizes: tuple[int, ...]
    dynamic_shape_nodes: int  # supported, but lost with RequireStaticInputShapes=1
    rank_unsupported_nodes: int
    rank_unsupported_ops: tuple[str, ...]

    @property
    def partitions(self) -> int:
        return len(self.partition_sizes)

    @property
    def static_partitions(self) -> int:
        return len(self.static_partition_sizes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "partitions": self.partitions,
            "supported_nodes": self.supported_nodes,
            "total_nodes": self.total_nodes,
            "partition_sizes": list(self.partition_sizes),
            "unsupported_ops": list(self.unsupported_ops),
            "require_static_input_shapes": {
                "partitions": self.static_partitions,
                "supported_nodes": self.static_supported_nodes,
                "partition_sizes": list(self.static_partition_sizes),
                "nodes_lost_to_dynamic_shapes": self.dynamic_shape_nodes,
            },
            "nodes_with_rank_over_5": self.rank_unsupported_nodes,
            "ops_with_rank_over_5": list(self.rank_unsupported_ops),
        }


@dataclass(frozen=True)
class Inspection:
    path: Path
    size_bytes: int
    digest: str
    opset: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    op_counts: dict[str, int]
    has_subgraphs: bool
    ort_version: str
    coreml: tuple[CoreMLPrediction, ...]  # empty when the prediction is unavailable
    coreml_unavailable: str | None
    notes: tuple[str, ...]
    shapes: dict[str, tuple[int, ...]] | None = None  # --shape / --inputs, resolved

    @property
    def node_count(self) -> int:
        return sum(self.op_counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "sha256": self.digest,
            "opset": self.opset,
            "inputs": [_tensor_dict(t) for t in self.inputs],
            "outputs": [_tensor_dict(t) for t in self.outputs],
            "node_count": self.node_count,
            "op_counts": dict(self.op_counts),
            "has_subgraphs": self.has_subgraphs,
            "onnxruntime": self.ort_version,
            "coreml": {p.model_format: p.to_dict() for p in self.coreml} or None,
            "coreml_unavailable": self.coreml_unavailable,
            "notes": list(self.notes),
            "shapes": {k: list(v) for k, v in self.shapes.items()} if self.shapes else None,
        }


def inspect_model(
    path: str | os.PathLike[str], shapes: dict[str, tuple[int, ...]] | None = None
) -> Inspection:
    """Describe the model at ``path`` without running it; with ``shapes`` (as ``search``'s
    ``--shape``), its symbolic dimensions are fixed first, so the CoreML prediction sees the
    static shapes a search would measure. Raises ModelError for a bad file and ShapeError for
    shapes that do not fit; a failing CoreML checker only sets ``coreml_unavailable``."""
    import onnxruntime

    info = load_model_info(path)
    resolved = resolve_shapes(info, shapes) if shapes else None
    coreml: tuple[CoreMLPrediction, ...] = ()
    unavailable: str | None = None
    notes: list[str] = []
    try:
        with _quiet(), _with_fixed_shapes(info.path, resolved) as checked:
            coreml, notes = _predict_coreml(checked)
    except ImportError as exc:
        unavailable = (
            f"onnxruntime {onnxruntime.__version__} has no usable onnxruntime.tools "
            f"usability checker ({type(exc).__name__}: {_first_line(exc)})"
        )
    except Exception as exc:  # noqa: BLE001 - a checker failure is reported, not fatal
        unavailable = (
            f"onnxruntime's usability checker failed ({type(exc).__name__}: {_first_line(exc)})"
        )
    return Inspection(
        path=info.path,
        size_bytes=info.size_bytes,
        digest=info.digest,
        opset=info.opset,
        inputs=info.inputs,
        outputs=info.outputs,
        op_counts=dict(info.op_counts),
        has_subgraphs=info.has_subgraphs,
        ort_version=str(onnxruntime.__version__),
        coreml=coreml,
        coreml_unavailable=unavailable,
        notes=tuple(notes),
        shapes=resolved,
    )


@contextlib.contextmanager
def _with_fixed_shapes(path: Path, shapes: dict[str, tuple[int, ...]] | None) -> Iterator[Path]:
    """``path``, or a temporary copy with each input's shape fixed to ``shapes``."""
    if not shapes:
        yield path
        return
    import onnx
    from onnxruntime.tools.onnx_model_utils import make_input_shape_fixed

    model = onnx.load(str(path))
    for name, shape in shapes.items():
        make_input_shape_fixed(model.graph, name, list(shape))
    with tempfile.TemporaryDirectory(prefix="autotune-inspect-") as tmp:
        fixed = Path(tmp) / path.name
        onnx.save(model, str(fixed))
        yield fixed


def _predict_coreml(path: Path) -> tuple[tuple[CoreMLPrediction, ...], list[str]]:
    from onnxruntime.tools.mobile_helpers import usability_checker as uc
    from onnxruntime.tools.onnx_model_utils import ModelProtoWithShapeInfo

    if not hasattr(ModelProtoWithShapeInfo, "_tmp_model_path"):
        # its __del__ reads this even when __init__ failed (shape inference refused the model),
        # which printed "Exception ignored ... AttributeError" with a traceback
        setattr(ModelProtoWithShapeInfo, "_tmp_model_path", None)  # noqa: B010
    wrapper = ModelProtoWithShapeInfo(path)  # keeps a >2 GB model's temporary file alive
    model = wrapper.model_with_shape_info
    ranks = _value_ranks(model.graph)
    predictions = []
    notes: list[str] = []
    for model_format, config in COREML_FORMATS.items():
        # ORT's list for the format, corrected against the EP's builders (coreml_ops), then the
        # checker's own partitioning, as check_coreml_partitions runs it on the list alone
        ops = CorrectedOps(
            uc._SupportedOpsChecker(Path(uc.__file__).parent / config), model_format, model.graph
        )
        # The checker only looks at shapes when asked to require fixed input sizes, so running
        # it both ways separates the nodes RequireStaticInputShapes=1 would lose.
        dynamic = uc.check_partitioning(model.graph, ops, False, _COREML_MAX_RANK)
        static = uc.check_partitioning(model.graph, ops, True, _COREML_MAX_RANK)
        static_ids = {id(n) for group in static.supported_groups for n in group}
        lost = [n for group in dynamic.supported_groups for n in group if id(n) not in static_ids]
        dynamic_only = sum(1 for n in lost if not _rank_over(n, ranks))
        predictions.append(
            CoreMLPrediction(
                model_format=model_format,
                total_nodes=int(dynamic.num_nodes),
                supported_nodes=int(dynamic.num_supported_nodes),
                partition_sizes=tuple(len(g) for g in dynamic.supported_groups),
                unsupported_ops=tuple(sorted(_op_name(o) for o in dynamic.unsupported_ops)),
                static_supported_nodes=int(static.num_supported_nodes),
                static_partition_sizes=tuple(len(g) for g in static.supported_groups),
                dynamic_shape_nodes=dynamic_only,
                rank_unsupported_nodes=int(static.num_unsupported_nodes_due_to_rank),
                rank_unsupported_ops=tuple(
                    sorted(_op_name(o) for o in static.ops_with_unsupported_rank)
                ),
            )
        )
        if model_format == "MLProgram" and dynamic.num_subgraphs:
            notes.append(
                SUBGRAPH_NOTE.format(n=dynamic.num_nodes_in_subgraphs, m=dynamic.num_subgraphs)
            )
    notes[:0] = _pad_notes(model.graph)
    first = predictions[0]
    if first.rank_unsupported_nodes:
        notes.append(
            RANK_NOTE.format(
                n=first.rank_unsupported_nodes, ops=", ".join(first.rank_unsupported_ops)
            )
        )
    return tuple(predictions), notes


def _pad_notes(graph: Any) -> list[str]:
    modes: dict[str, int] = {}
    for node in _all_nodes(graph):
        if node.op_type == "Pad" and node.domain in ("", "ai.onnx"):
            mode = "constant"
            for attr in node.attribute:
                if attr.name == "mode":
                    mode = attr.s.decode("utf-8", "replace")
            modes[mode] = modes.get(mode, 0) + 1
    notes = []
    if modes.get("reflect"):
        notes.append(PAD_REFLECT_NOTE.format(n=modes["reflect"]))
    if modes.get("constant"):
        notes.append(PAD_CONSTANT_NOTE.format(n=modes["constant"]))
    other = sorted(m for m in modes if m not in ("reflect", "constant"))
    if other:
        notes.append(PAD_OTHER_NOTE.format(n=sum(modes[m] for m in other), modes="/".join(other)))
    return notes


def _all_nodes(graph: Any) -> Iterator[Any]:
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                yield from _all_nodes(sub)


def _value_ranks(graph: Any, ranks: dict[str, int] | None = None) -> dict[str, int]:
    """Rank of every tensor value with shape information, in the graph and its subgraphs."""
    ranks = {} if ranks is None else ranks
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.type.HasField("tensor_type"):
            ranks[value.name] = len(value.type.tensor_type.shape.dim)
    for node in graph.node:
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                _value_ranks(sub, ranks)
    return ranks


def _rank_over(node: Any, ranks: dict[str, int]) -> bool:
    return any(ranks.get(name, 0) > _COREML_MAX_RANK for name in node.input if name)


def _op_name(domain_op: str) -> str:
    return domain_op.removeprefix("ai.onnx:")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else "no message")[:200]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep the checker's log records and warnings off the terminal while it runs."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


# -- text ------------------------------------------------------------------------------------


def dims_text(shape: tuple[Dim, ...]) -> str:
    """``[batch, 3, 224, 224]``: named symbolic dims by name, unnamed ones as ``?``."""
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _tensor_dict(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "dtype": str(spec.dtype), "shape": list(spec.shape)}


def _size_text(size: int) -> str:
    scaled = f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size / 2**10:.1f} KB"
    return f"{scaled} ({size:,} bytes)"


def _sizes_text(sizes: tuple[int, ...]) -> str:
    if not sizes:
        return "-"
    shown = ", ".join(map(str, sizes[:_SIZES_SHOWN]))
    return shown + (f", … (+{len(sizes) - _SIZES_SHOWN})" if len(sizes) > _SIZES_SHOWN else "")


def _nodes_text(supported: int, total: int) -> str:
    return f"{supported}/{total} ({100 * supported / total:.0f}%)" if total else "0/0"


def format_inspection(inspection: Inspection) -> str:
    """The terminal report of ``autotune inspect``."""

    i = inspection
    specs = [*i.inputs, *i.outputs]
    name_w = max((len(s.name) for s in specs), default=0)
    dtype_w = max((len(str(s.dtype)) for s in specs), default=0)

    def tensors(group: tuple[TensorSpec, ...]) -> list[str]:
        return [
            f"{s.name.ljust(name_w)}  {str(s.dtype).ljust(dtype_w)}  {dims_text(s.shape)}"
            for s in group
        ] or ["none"]

    def field(name: str, values: list[str]) -> list[str]:
        return [f"{(name if k == 0 else '').ljust(10)} {v}" for k, v in enumerate(values)]

    ops = "  ".join(f"{op} {count}" for op, count in i.op_counts.items())
    subgraphs = "has subgraphs" if i.has_subgraphs else "no subgraphs"
    lines = [
        *field("Model", [str(i.path)]),
        *field("Size", [_size_text(i.size_bytes)]),
        *field("SHA-256", [i.digest]),
        *field("Opset", [str(i.opset)]),
        *field("Inputs", tensors(i.inputs)),
        *field("Shapes", [shape_signature(i.shapes)] if i.shapes else []),
        *field("Outputs", tensors(i.outputs)),
        *field(
            "Ops",
            [
                f"{i.node_count} nodes, {len(i.op_counts)} op type(s), {subgraphs}",
                *textwrap.wrap(ops, width=85, break_long_words=False),
            ],
        ),
        "",
    ]
    lines += _coreml_lines(i)
    if i.notes:
        lines += ["", "Notes"]
        for note in i.notes:
            lines += _wrapped(note, first="  - ", rest="    ")
    return "\n".join(lines)


def _wrapped(text: str, first: str = "  ", rest: str = "  ") -> list[str]:
    return textwrap.wrap(text, width=96, initial_indent=first, subsequent_indent=rest)


def _coreml_lines(i: Inspection) -> list[str]:
    """The CoreML prediction: partitions and nodes per model format, with and without static
    input shapes, the unsupported ops, and what dynamic shapes cost."""
    from autotune.output.tables import table

    if i.coreml_unavailable is not None:
        return [f"CoreML prediction unavailable: {i.coreml_unavailable}"]
    lines = [
        f"CoreML, predicted by onnxruntime {i.ort_version}'s usability checker "
        "(op lists only; nothing was run)"
    ]
    rows: list[list[Any]] = []
    for p in i.coreml:
        rows.append(
            [
                p.model_format,
                "0 (default)",
                p.partitions,
                _nodes_text(p.supported_nodes, p.total_nodes),
                _sizes_text(p.partition_sizes),
            ]
        )
        rows.append(
            [
                "",
                "1",
                p.static_partitions,
                _nodes_text(p.static_supported_nodes, p.total_nodes),
                _sizes_text(p.static_partition_sizes),
            ]
        )
    headers = ["format", "RequireStaticInputShapes", "partitions", "nodes", "partition sizes"]
    lines += ["  " + row for row in table(rows, headers).splitlines()]
    for p in i.coreml:
        unsupported = ", ".join(p.unsupported_ops) or "none"
        lines += _wrapped(f"{p.model_format} unsupported ops: {unsupported}", rest="    ")
    lost = [p for p in i.coreml if p.dynamic_shape_nodes]
    if not lost:
        return [*lines, "  RequireStaticInputShapes=1 would lose no node to dynamic shapes"]
    counts = " and ".join(f"{p.dynamic_shape_nodes} {p.model_format}" for p in lost)
    lines += _wrapped(
        f"RequireStaticInputShapes=1 would lose {counts} node(s) only because their "
        "inputs have dynamic (or, to the checker, unknown) shapes; fix input dims with:",
        rest="    ",
    )
    return [*lines, "    python -m onnxruntime.tools.make_dynamic_shape_fixed"]
