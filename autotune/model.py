"""Which model this is: a checked file, its inputs and outputs, the shapes to tune for, feeds.

Everything a search needs to know about the model before the first trial, with one-line errors
for every way the file or the shapes can be wrong.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autotune.digest import model_digest
from autotune.errors import ModelError, ShapeError
from autotune.signature import parse_signature, shape_signature

__all__ = ["parse_signature", "shape_signature"]  # re-exported: the signature's one home

Dim = int | str | None  # a fixed size, a named symbolic dim, or an unnamed one


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: np.dtype[Any]
    shape: tuple[Dim, ...]

    def shape_text(self) -> str:
        return "x".join("?" if d is None else str(d) for d in self.shape) or "scalar"


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    digest: str
    size_bytes: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    op_counts: dict[str, int] = field(default_factory=dict)
    has_subgraphs: bool = False
    opset: int = 0
    checker_warning: str | None = None  # onnx.checker refused it but onnxruntime loads it

    @property
    def node_count(self) -> int:
        return sum(self.op_counts.values())

    @property
    def has_dynamic_inputs(self) -> bool:
        return any(not isinstance(d, int) for i in self.inputs for d in i.shape)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ModelError(f"{path}: no such file; give the path of an .onnx model")
    if path.is_dir():
        raise ModelError(f"{path} is a directory; give the path of an .onnx model file")
    if path.stat().st_size == 0:
        raise ModelError(f"{path} is empty; re-export or re-download the model")


def load_model_info(path: str | os.PathLike[str]) -> ModelInfo:
    """Read and check the model; raises ModelError for anything that is not a whole ONNX model.
    A model that onnx.checker refuses but onnxruntime loads is accepted, with one warning."""
    p = Path(path)
    _check_file(p)
    info = _load(p)
    if info.checker_warning and str(p.resolve()) not in _warned:
        _warned.add(str(p.resolve()))
        log.warning("%s", info.checker_warning)
    return info


_warned: set[str] = set()  # models whose checker warning was logged (once per process)
log = logging.getLogger("autotune")


def _load(p: Path) -> ModelInfo:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load(str(p), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ModelError(
            f"{p} is not an ONNX model or is truncated ({type(exc).__name__}); "
            "re-export or re-download it"
        ) from None
    except OSError as exc:
        raise ModelError(f"{p}: cannot read it ({exc.strerror})") from None
    if not proto.graph.node or not proto.graph.output:
        raise ModelError(
            f"{p} is not an ONNX model or is truncated (no graph nodes or outputs); "
            "re-export or re-download it"
        )
    checker_warning = None
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        reason = sentences(str(exc)) or "invalid"
        ort_error = _ort_load_error(p)
        if ort_error is not None:
            raise ModelError(
                f"{p} is not a valid ONNX model ({reason}) and onnxruntime cannot load it "
                f"({ort_error}); re-export it"
            ) from None
        # ORT loads it (it sorts the graph itself, for one): what autotune tunes is what ORT runs
        checker_warning = (
            f"warning: {p} fails onnx.checker ({reason}), but onnxruntime loads it; "
            "tuning it as onnxruntime runs it"
        )
    initializers = {i.name for i in proto.graph.initializer}
    inputs = tuple(_spec(v) for v in proto.graph.input if v.name not in initializers)
    outputs = tuple(_spec(v) for v in proto.graph.output)
    ops: Counter[str] = Counter()
    has_subgraphs = _count_ops(proto.graph, ops)
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return ModelInfo(
        path=p,
        digest=model_digest(p),
        size_bytes=p.stat().st_size,
        inputs=inputs,
        outputs=outputs,
        op_counts=dict(ops.most_common()),
        has_subgraphs=has_subgraphs,
        opset=opset,
        checker_warning=checker_warning,
    )


def _ort_load_error(path: Path) -> str | None:
    """None if onnxruntime can load the model (CPU, no optimization), else why not. ORT's own
    log lines are silenced: the reason is in the exception."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 4
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ORT raises several types
        return ort_reason(str(exc))
    return None


_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ")
_ORT_SOURCE = re.compile(r"\S+\.(?:h|cc|cpp):\d+ [\w:~<>]+\([^()]*\)\s*(?:const\s*)?")


def ort_reason(text: str) -> str:
    """ORT's exception text without its status prefix and C++ source locations, whole."""
    return sentences(_ORT_SOURCE.sub("", _ORT_PREFIX.sub("", " ".join(text.split()))))


def sentences(text: str, limit: int = 400) -> str:
    """``text`` on one line; if longer than ``limit``, cut after the last whole sentence that
    fits (never mid-sentence; the first sentence is kept whole however long)."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    ends = [m.end() for m in re.finditer(r"[.;!?](?=\s)", flat)]
    fitting = [e for e in ends if e <= limit]
    if fitting:
        return flat[: fitting[-1]]
    return flat[: ends[0]] if ends else flat


def _count_ops(graph: Any, ops: Counter[str]) -> bool:
    nested = False
    for node in graph.node:
        ops[
            node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"
        ] += 1
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                nested = True
                _count_ops(sub, ops)
    return nested


def _is_name(dim_param: str) -> bool:
    """A dimension name ORT can override: not empty, not a placeholder such as ``?`` or
    ``-1`` that some exporters write for an unnamed dimension."""
    return re.search(r"[A-Za-z_]", dim_param) is not None


def _spec(value_info: Any) -> TensorSpec:
    from onnx import helper

    t = value_info.type.tensor_type
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type))
    except (KeyError, TypeError, ValueError):
        dtype = np.dtype(np.float32)
    dims: list[Dim] = []
    if t.HasField("shape"):
        for d in t.shape.dim:
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(int(d.dim_value))
            elif d.HasField("dim_param") and _is_name(d.dim_param):
                dims.append(d.dim_param)
            else:
                dims.append(None)
    return TensorSpec(value_info.name, dtype, tuple(dims))


# -- shapes ---------------------------------------------------------------------------------

_SHAPE_RE = re.compile(r"^([^=]+)=(\d+(?:[x,]\d+)*)?$")


def parse_shape_args(args: tuple[str, ...] | list[str]) -> dict[str, tuple[int, ...]]:
    """Parse ``NAME=1x3x224x224`` arguments (``NAME=`` for a scalar, though a scalar never needs
    one); raises ShapeError on a bad format."""
    out: dict[str, tuple[int, ...]] = {}
    for arg in args:
        m = _SHAPE_RE.match(arg.strip())
        if not m:
            raise ShapeError(
                f"--shape {arg!r} is not NAME=DIMxDIMx...; write it like --shape input=1x3x224x224"
            )
        dims = tuple(int(x) for x in re.split("[x,]", m.group(2))) if m.group(2) else ()
        if any(d <= 0 or d > 1 << 20 for d in dims):
            raise ShapeError(f"--shape {arg!r}: every dimension must be from 1 to 1048576")
        out[m.group(1).strip()] = dims
    return out


def resolve_shapes(
    info: ModelInfo, given: dict[str, tuple[int, ...]] | None = None
) -> dict[str, tuple[int, ...]]:
    """Concrete shapes for every input. A symbolic leading (batch) dimension defaults to 1; any
    other symbolic dimension must be given. Raises ShapeError listing the ``--shape`` to add."""
    given = dict(given or {})
    names = {i.name for i in info.inputs}
    unknown = sorted(set(given) - names)
    if unknown:
        raise ShapeError(
            f"--shape names unknown input(s) {', '.join(unknown)}; "
            f"the model's inputs are {', '.join(sorted(names))}"
        )
    shapes: dict[str, tuple[int, ...]] = {}
    missing: list[str] = []
    for spec in info.inputs:
        if spec.name in given:
            dims = given[spec.name]
            if len(dims) != len(spec.shape):
                raise ShapeError(
                    f"--shape {spec.name} has rank {len(dims)} but the input has rank "
                    f"{len(spec.shape)} ({spec.shape_text()})"
                )
            for want, got in zip(spec.shape, dims, strict=True):
                if isinstance(want, int) and want != got:
                    raise ShapeError(
                        f"--shape {spec.name}={'x'.join(map(str, dims))} conflicts with the "
                        f"model's fixed shape {spec.shape_text()}"
                    )
            shapes[spec.name] = dims
            continue
        dims_out: list[int] = []
        unresolved = False
        for pos, d in enumerate(spec.shape):
            if isinstance(d, int):
                dims_out.append(d)
            elif pos == 0:
                dims_out.append(1)  # the batch dimension
            else:
                unresolved = True
                dims_out.append(0)
        if unresolved:
            example = _example_dims(spec.shape)
            missing.append(f"{spec.name} ({spec.shape_text()}): --shape {spec.name}={example}")
        shapes[spec.name] = tuple(dims_out)
    if missing:
        raise ShapeError(
            "the model has symbolic dimensions; give them with --shape: " + "; ".join(missing)
        )
    return shapes


def _example_dims(shape: tuple[Dim, ...] | list[Dim]) -> str:
    """``1xNx8`` for ``(batch, seq, 8)``: what to write in a ``--shape`` (N: a size to choose)."""
    return "x".join(
        str(d) if isinstance(d, int) else ("1" if i == 0 else "N") for i, d in enumerate(shape)
    )


def free_dimensions(info: ModelInfo, shapes: dict[str, tuple[int, ...]]) -> dict[str, int]:
    """Named symbolic dimensions and the size they take in ``shapes`` (for free-dim overrides).
    Unnamed dimensions are fixed by the shapes alone; a name given two different sizes (by two
    inputs) cannot be overridden either."""
    sizes: dict[str, set[int]] = {}
    for spec in info.inputs:
        for d, size in zip(spec.shape, shapes[spec.name], strict=True):
            if isinstance(d, str):
                sizes.setdefault(d, set()).add(size)
    return {name: next(iter(s)) for name, s in sizes.items() if len(s) == 1}


def match_signature(given: dict[str, tuple[int, ...]], stored: list[str]) -> str | None:
    """The stored shape signature ``given`` shapes select: the one equal to them, else the only
    one that agrees with every given shape (the inputs not given are scalars or fixed-shape
    inputs, which a search never needs a ``--shape`` for); None if none or several do."""
    exact = shape_signature(given)
    if exact in stored:
        return exact
    agreeing = []
    for signature in stored:
        shapes = parse_signature(signature)
        if shapes and all(shapes.get(name) == tuple(dims) for name, dims in given.items()):
            agreeing.append(signature)
    return agreeing[0] if len(agreeing) == 1 else None


def search_hint(
    path: str | os.PathLike[str], given: dict[str, tuple[int, ...]] | None = None
) -> str:
    """:func:`search_command` for the model at ``path``. Raises ModelError if the file is not
    an ONNX model (so a command about a model nothing is stored for says so first)."""
    info = load_model_info(path)
    return search_command(path, [(i.name, i.shape) for i in info.inputs], given)


def search_command(
    path: str | os.PathLike[str],
    inputs: list[tuple[str, tuple[Dim, ...]]],
    given: dict[str, tuple[int, ...]] | None = None,
) -> str:
    """``autotune search PATH`` with the ``--shape`` flags the model needs: the shapes given,
    and ``NAME=1xN`` for every other input with a symbolic dimension beyond the batch."""
    given = given or {}
    flags = []
    for name, shape in inputs:
        if name in given:
            flags.append(f"--shape {name}={'x'.join(map(str, given[name]))}")
        elif any(not isinstance(d, int) for d in shape[1:]):
            flags.append(f"--shape {name}={_example_dims(shape)}")
    return " ".join(["autotune search", os.fspath(path), *flags])


# -- feeds ----------------------------------------------------------------------------------


def feeds_digest(feeds: dict[str, np.ndarray[Any, Any]]) -> str:
    """SHA-256 of given input data (names, dtypes, shapes, bytes): results measured on it are
    told apart from results on synthetic inputs and on other data."""
    h = hashlib.sha256()
    for name in sorted(feeds):
        arr = np.ascontiguousarray(feeds[name])
        h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def synthetic_value_hint(info: ModelInfo, shapes: dict[str, tuple[int, ...]]) -> str | None:
    """For a model that fails on synthetic inputs: which integer inputs got the synthetic 1 and
    how to give real values instead; None if the model has no integer inputs."""
    ints = [s for s in info.inputs if np.issubdtype(s.dtype, np.integer)]
    if not ints:
        return None
    arrays = []
    for spec in info.inputs:
        value = "VALUE" if spec in ints else "0"
        arrays.append(f"{spec.name}=np.full({tuple(shapes[spec.name])!r}, {value}, '{spec.dtype}')")
    plural = len(ints) > 1
    return (
        f"the synthetic value of integer input{'s' if plural else ''} "
        f"{', '.join(s.name for s in ints)} is 1, which this model may not accept (a sample "
        "rate, an index, a length); give real inputs with --inputs FEEDS.npz, written e.g. with: "
        "python -c \"import numpy as np; np.savez('feeds.npz', " + ", ".join(arrays) + ')"'
    )


def synthetic_feeds(
    info: ModelInfo, shapes: dict[str, tuple[int, ...]], seed: int = 0
) -> dict[str, np.ndarray[Any, Any]]:
    """Deterministic inputs: floats standard-normal, integers one (a valid token id, index and
    mask value for most models), booleans true."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray[Any, Any]] = {}
    for spec in info.inputs:
        shape = shapes[spec.name]
        if np.issubdtype(spec.dtype, np.floating):
            feeds[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        elif spec.dtype == np.bool_:
            feeds[spec.name] = np.ones(shape, dtype=np.bool_)
        else:
            feeds[spec.name] = np.ones(shape, dtype=spec.dtype)
    return feeds


def load_feeds(
    info: ModelInfo, npz_path: str | os.PathLike[str]
) -> tuple[dict[str, np.ndarray[Any, Any]], dict[str, tuple[int, ...]]]:
    """Read ``--inputs FEEDS.npz``: one array per model input, named as the input."""
    p = Path(npz_path)
    if not p.is_file():
        raise ShapeError(f"--inputs {p}: no such file; give an .npz with one array per input")
    not_npz = (
        f"--inputs {p} is not an .npz file; write one with numpy.savez "
        "(one array per input, named as the input)"
    )
    try:
        with open(p, "rb") as f:
            if f.read(4) != b"PK\x03\x04":  # an .npz is a zip archive of .npy files
                raise ShapeError(not_npz)
        with np.load(p, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError) as exc:
        # not numpy's advice about pickles: an .npz of plain arrays is what is wanted
        raise ShapeError(f"{not_npz} ({type(exc).__name__})") from None
    names = [i.name for i in info.inputs]
    missing = [n for n in names if n not in arrays]
    extra = sorted(set(arrays) - set(names))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"unknown {', '.join(extra)}")
        raise ShapeError(
            f"--inputs {p} does not match the model's inputs ({'; '.join(parts)}); "
            f"save arrays named {', '.join(names)}"
        )
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in info.inputs:
        arr = arrays[spec.name]
        if arr.dtype != spec.dtype:
            raise ShapeError(
                f"--inputs {p}: array {spec.name} is {arr.dtype} but the input is {spec.dtype}"
            )
        if arr.ndim != len(spec.shape) or any(
            isinstance(d, int) and d != s for d, s in zip(spec.shape, arr.shape, strict=False)
        ):
            raise ShapeError(
                f"--inputs {p}: array {spec.name} has shape {'x'.join(map(str, arr.shape))} "
                f"but the input is {spec.shape_text()}"
            )
        shapes[spec.name] = tuple(int(s) for s in arr.shape)
    return arrays, shapes
