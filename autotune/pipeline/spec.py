"""The pipeline file: the models of one app and how the app calls them.

    name = "ocr"
    overlap = ["det", "rec"]        # optional: stages that run at the same time (threads)
    [[stages]]
    name = "det"
    model = "det.onnx"              # relative to this file
    shapes = { x = "1x3x640x640" }  # optional: symbolic dimensions
    inputs = "det_inputs.npz"       # optional: real inputs (else synthetic, or earlier outputs)
    [[stages]]
    name = "rec"
    model = "rec.onnx"
    repeat = 8                      # called 8 times per pipeline run
    state = { h_out = "h_in" }      # optional: an output fed back as the next call's input

``overlap`` may also be given inside a stage (the stages it runs with). A stage's input named
like an output of an earlier stage (not one it overlaps) is fed that output. Read with tomllib;
every problem is a ConfigError of one line naming the fix. Standard library only (the run-time
path reads it)."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune.errors import ConfigError

_TOP_KEYS = {"name", "stages", "overlap"}
_STAGE_KEYS = {"name", "model", "shapes", "repeat", "state", "inputs", "overlap"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_DIMS = re.compile(r"^\d+(x\d+)*$")
MAX_REPEAT = 100_000


@dataclass(frozen=True)
class Stage:
    name: str
    model: Path
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    repeat: int = 1
    state: dict[str, str] = field(default_factory=dict)  # output -> input of the next call
    inputs: Path | None = None  # an .npz of real inputs

    def pattern(self) -> dict[str, Any]:
        """The stage's part of the call pattern (what a stored result is valid for)."""
        return {
            "name": self.name,
            "shapes": {k: list(v) for k, v in sorted(self.shapes.items())},
            "repeat": self.repeat,
            "state": dict(sorted(self.state.items())),
        }


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    path: Path
    stages: tuple[Stage, ...]
    groups: tuple[tuple[int, ...], ...]  # the call pattern: steps in order, each 1+ stages

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def overlapping(self) -> list[tuple[int, ...]]:
        """The steps whose stages run at the same time."""
        return [g for g in self.groups if len(g) > 1]

    def pattern(self) -> dict[str, Any]:
        return {
            "stages": [s.pattern() for s in self.stages],
            "steps": [[self.stages[i].name for i in g] for g in self.groups],
        }

    def key(self) -> str:
        """SHA-256 over the stages' model digests and the call pattern (chip and ORT version
        are stored beside it)."""
        from autotune.digest import model_digest

        data = {"digests": [model_digest(s.model) for s in self.stages], **self.pattern()}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _fail(path: Path, text: str) -> ConfigError:
    return ConfigError(f"pipeline {path}: {text}")


def load_pipeline(path: str | Path) -> PipelineSpec:
    """Read and check a pipeline file. Raises ConfigError (one line) naming the fix."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"pipeline {p}: no such file; give a .toml pipeline file")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _fail(p, f"not valid TOML ({exc})") from None
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise _fail(p, f"unknown key {unknown[0]!r}; the keys are {', '.join(sorted(_TOP_KEYS))}")
    raw_stages = data.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise _fail(p, "no stages; add one [[stages]] table per model (name = ..., model = ...)")
    stages = [_stage(p, i, s) for i, s in enumerate(raw_stages)]
    names = [s.name for s in stages]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise _fail(p, f"two stages are named {twice[0]!r}; give each stage its own name")
    links = [_names(p, "overlap", data.get("overlap", []), names)]
    links += [
        [s["name"], *_names(p, f"stage {s['name']!r} overlap", s.get("overlap", []), names)]
        for s in raw_stages
        if "overlap" in s
    ]
    name = data.get("name", p.stem)
    if not isinstance(name, str) or not name:
        raise _fail(p, "name must be a non-empty string")
    return PipelineSpec(name, p, tuple(stages), _groups(stages, links))


def _names(p: Path, where: str, value: Any, names: list[str]) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(p, f'{where} must be a list of stage names, like ["det", "rec"]')
    unknown = [v for v in value if v not in names]
    if unknown:
        raise _fail(p, f"{where} names no stage {unknown[0]!r}; the stages: {', '.join(names)}")
    return list(value)


def _groups(stages: list[Stage], links: list[list[str]]) -> tuple[tuple[int, ...], ...]:
    """Steps in stage order; stages linked by overlap (transitively) share the step of the
    first of them."""
    index = {s.name: i for i, s in enumerate(stages)}
    root = list(range(len(stages)))

    def find(i: int) -> int:
        while root[i] != i:
            i = root[i]
        return i

    for link in links:
        for other in link[1:]:
            a, b = sorted((find(index[link[0]]), find(index[other])))
            root[b] = a
    steps: dict[int, list[int]] = {}
    for i in range(len(stages)):
        steps.setdefault(find(i), []).append(i)
    return tuple(tuple(m) for _, m in sorted(steps.items()))


def _stage(p: Path, i: int, raw: Any) -> Stage:
    where = f"stage {i + 1}"
    if not isinstance(raw, dict):
        raise _fail(p, f"{where} is not a table; write it as [[stages]] with name and model")
    unknown = sorted(set(raw) - _STAGE_KEYS)
    if unknown:
        raise _fail(
            p, f"{where}: unknown key {unknown[0]!r}; the keys are {', '.join(sorted(_STAGE_KEYS))}"
        )
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise _fail(p, f'{where} needs a name of letters, digits and _ . - (name = "encoder")')
    where = f"stage {name!r}"
    model = raw.get("model")
    if not isinstance(model, str) or not model:
        raise _fail(p, f'{where} needs model = "path/to/model.onnx" (relative to this file)')
    model_path = (p.parent / model).resolve()
    if not model_path.is_file():
        raise _fail(p, f"{where}: model {model_path} does not exist; fix its path")
    repeat = raw.get("repeat", 1)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= MAX_REPEAT:
        raise _fail(p, f"{where}: repeat must be a whole number from 1 to {MAX_REPEAT}")
    shapes: dict[str, tuple[int, ...]] = {}
    for input_name, dims in _table(p, where, "shapes", raw).items():
        if not isinstance(dims, str) or not _DIMS.match(dims) or "x0" in f"x{dims}":
            raise _fail(p, f'{where}: shape of {input_name} must read like "1x3x224x224"')
        shapes[input_name] = tuple(int(d) for d in dims.split("x"))
    state = _table(p, where, "state", raw)
    if not all(isinstance(v, str) for v in state.values()):
        raise _fail(p, f'{where}: state maps an output to an input, like {{ h_out = "h_in" }}')
    inputs = raw.get("inputs")
    if inputs is not None and (not isinstance(inputs, str) or not inputs):
        raise _fail(p, f'{where}: inputs must be the path of an .npz, like inputs = "x.npz"')
    return Stage(
        name=name,
        model=model_path,
        shapes=shapes,
        repeat=repeat,
        state={str(k): str(v) for k, v in state.items()},
        inputs=(p.parent / inputs).resolve() if inputs else None,
    )


def _table(p: Path, where: str, key: str, raw: dict[str, Any]) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise _fail(p, f"{where}: {key} must be a table, like {key} = {{ name = ... }}")
    return value


def write_pipeline(spec: dict[str, Any], path: Path) -> Path:
    """Write a pipeline file from plain data (``name``, ``overlap`` and ``stages``: dicts of
    the stage keys); the reader above reads it back."""
    lines = [f"name = {json.dumps(spec['name'])}"]
    if spec.get("overlap"):
        lines.append(f"overlap = {json.dumps(spec['overlap'])}")
    for stage in spec["stages"]:
        lines += ["", "[[stages]]"]
        for key, value in stage.items():
            if isinstance(value, dict):
                inner = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
                lines.append(f"{key} = {{ {inner} }}")
            else:
                lines.append(f"{key} = {json.dumps(value)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
