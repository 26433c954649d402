"""Declarative studies: one TOML file says what to search, so a search is reproducible.

    # studies/transformer.toml
    model = { example = "transformer" }        # or: model = { path = "models/encoder.onnx" }
    shapes = { input_ids = "1x128", attention_mask = "1x128" }   # optional
    inputs = "feeds.npz"                       # optional: real input data
    providers = ["CPUExecutionProvider"]       # optional: only these providers
    objective = "latency"                      # latency | load | memory | balanced
    trials = 30
    timeout = 600                              # optional, seconds

Paths are relative to the study file. Example models are written to autotune's cache.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune.errors import SearchError
from autotune.model import parse_shape_args
from autotune.tuning.objectives import check

_KEYS = {"model", "shapes", "inputs", "providers", "objective", "trials", "timeout"}


@dataclass(frozen=True)
class Study:
    name: str
    model: Path
    options: dict[str, Any] = field(default_factory=dict)  # SearchOptions fields
    example: str | None = None  # the example model's name, when model = { example = NAME }


def load_study(path: str | Path) -> Study:
    """Read a study file; raises SearchError naming the problem."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise SearchError(f"--study {p}: no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SearchError(f"--study {p} is not valid TOML ({exc})") from None
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise SearchError(f"--study {p}: unknown key(s) {', '.join(unknown)}")
    model = data.get("model")
    if not isinstance(model, dict) or len(model) != 1 or not ({"example", "path"} & set(model)):
        raise SearchError(f"--study {p}: model must be {{ example = NAME }} or {{ path = FILE }}")
    if "example" in model:
        from autotune.examples import write_example
        from autotune.paths import cache_dir

        name = str(model["example"])
        target = cache_dir() / "examples" / f"{name}.onnx"
        model_path = target if target.exists() else write_example(name, target)
    else:
        model_path = (p.parent / str(model["path"])).resolve()
    options: dict[str, Any] = {}
    shapes = data.get("shapes", {})
    if not isinstance(shapes, dict):
        raise SearchError(f'--study {p}: shapes must be a table of NAME = "1x3x224x224"')
    if shapes:
        options["shapes"] = parse_shape_args([f"{k}={v}" for k, v in shapes.items()])
    if "inputs" in data:
        options["inputs"] = str((p.parent / str(data["inputs"])).resolve())
    if "providers" in data:
        providers = data["providers"]
        if not isinstance(providers, list) or not all(isinstance(x, str) for x in providers):
            raise SearchError(f"--study {p}: providers must be a list of provider names")
        options["providers"] = tuple(providers)
    options["objective"] = check(str(data.get("objective", "latency")))
    for key in ("trials", "timeout"):
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise SearchError(f"--study {p}: {key} must be a positive number")
            options[key] = int(value) if key == "trials" else float(value)
    example = str(model["example"]) if "example" in model else None
    return Study(name=p.stem, model=model_path, options=options, example=example)
