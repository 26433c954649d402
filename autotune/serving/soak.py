"""Long runs: does a configuration stay fast and small? One configuration runs for a while in a
fresh process, in windows, with input shapes drawn from ranges (``--shape x=1..512x16``): each
window's p50/p90 latency and the process's RSS, then two flags.

``drift``   the latency grew: the median p50 of the last three windows over that of the first
            three after warm-up beyond DRIFT_RATIO, or (in runs of a minute or more) a slope
            beyond DRIFT_PCT_PER_MIN percent a minute.
``memory``  RSS grew after warm-up by more than GROWTH_MB_PER_1000_RUNS per 1,000 runs (a
            least-squares slope) and by at least GROWTH_MIN_MB in all.

Warm-up: the first WARMUP_FRACTION of the windows (arenas and caches fill there).

    python -m autotune.serving.soak < job.json
"""

from __future__ import annotations

import json
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune.config import SessionConfig
from autotune.errors import ShapeError
from autotune.measure.stats import percentile
from autotune.serving.child import run_child

DRIFT_RATIO = 1.10
DRIFT_PCT_PER_MIN = 10.0
GROWTH_MB_PER_1000_RUNS = 2.0
GROWTH_MIN_MB = 4.0
WARMUP_FRACTION = 0.2
WINDOW_S = 1.0

Ranges = dict[str, tuple[tuple[int, int], ...]]


def parse_shape_ranges(args: tuple[str, ...] | list[str], option: str = "--shape") -> Ranges:
    """``NAME=1..512x16`` (a dimension is a number or a range LOW..HIGH) per input. Raises
    ShapeError naming the form to use (and ``option``, the flag that gave them)."""
    out: Ranges = {}
    for arg in args:
        name, sep, dims_text = arg.partition("=")
        dims: list[tuple[int, int]] = []
        for part in dims_text.split("x") if sep else []:
            m = re.fullmatch(r"(\d+)(?:\.\.(\d+))?", part.strip())
            if not m:
                dims = []
                break
            low = int(m.group(1))
            high = int(m.group(2)) if m.group(2) else low
            if low < 1 or high < low:
                raise ShapeError(
                    f"{option} {arg}: a range runs from 1 up, LOW..HIGH with LOW <= HIGH"
                )
            dims.append((low, high))
        if not name or not dims:
            raise ShapeError(
                f"{option} {arg!r} is not NAME=DIMS; give e.g. x=1..512x16 (a range varies the "
                "dimension from run to run)"
            )
        out[name.strip()] = tuple(dims)
    return out


def check_ranges(info: Any, ranges: Ranges, option: str = "--shape") -> None:
    """Every input named exists, with the model's rank, only symbolic dimensions vary, and a
    named dimension's ranges overlap. Raises ShapeError naming the input and dimension (and
    ``option``)."""
    specs = {s.name: s for s in info.inputs}
    for name, dims in ranges.items():
        spec = specs.get(name)
        if spec is None:
            raise ShapeError(f"{option} names unknown input {name}; the inputs: {', '.join(specs)}")
        if len(dims) != len(spec.shape):
            raise ShapeError(
                f"{option} {name} has rank {len(dims)} but the input has rank {len(spec.shape)} "
                f"({spec.shape_text()})"
            )
        for pos, ((low, high), want) in enumerate(zip(dims, spec.shape, strict=True)):
            if isinstance(want, int) and (low, high) != (want, want):
                raise ShapeError(
                    f"{option} {name}: dimension {pos} is fixed at {want} in the model "
                    f"({spec.shape_text()}); only symbolic dimensions can vary"
                )
    shape_drawer(info, ranges, option)  # a named dimension's ranges must overlap


def shape_drawer(
    info: Any, ranges: Ranges, option: str = "--shape"
) -> Callable[[random.Random], dict[str, tuple[int, ...]]]:
    """Each run's shapes: a dimension the model names (``batch``) takes one value per run in
    every input that has it, drawn from where their ranges overlap; other dimensions are drawn
    on their own. Raises ShapeError when the ranges of one named dimension do not overlap."""
    named = {s.name: s.shape for s in info.inputs}
    bounds: dict[Any, tuple[int, int]] = {}
    keys: dict[str, list[Any]] = {}
    for name, dims in ranges.items():
        spec = named.get(name, ())
        keys[name] = []
        for pos, (low, high) in enumerate(dims):
            sym = spec[pos] if pos < len(spec) and isinstance(spec[pos], str) else None
            key = ("dim", sym) if sym else ("at", name, pos)
            was = bounds.get(key, (low, high))
            bounds[key] = (max(was[0], low), min(was[1], high))
            if bounds[key][0] > bounds[key][1]:
                raise ShapeError(
                    f"{option}: dimension {sym!r} is in several inputs and their ranges do not "
                    "overlap; give it the same range in each"
                )
            keys[name].append(key)

    def draw(rng: random.Random) -> dict[str, tuple[int, ...]]:
        value = {key: rng.randint(lo, hi) for key, (lo, hi) in bounds.items()}
        return {name: tuple(value[k] for k in ks) for name, ks in keys.items()}

    return draw


@dataclass(frozen=True)
class SoakWindow:
    seconds: float  # since the start of the run
    runs: int  # runs in this window
    total_runs: int  # runs so far
    latency_ms_p50: float
    latency_ms_p90: float
    rss_mb: float


@dataclass
class SoakResult:
    label: str
    windows: list[SoakWindow]
    flags: list[str] = field(default_factory=list)
    drift_ratio: float | None = None
    drift_pct_per_min: float | None = None
    growth_mb_per_1000_runs: float | None = None
    growth_mb: float | None = None

    @property
    def stable(self) -> bool:
        return not self.flags

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "flags": self.flags,
            "drift_ratio": self.drift_ratio,
            "drift_pct_per_min": self.drift_pct_per_min,
            "growth_mb_per_1000_runs": self.growth_mb_per_1000_runs,
            "growth_mb": self.growth_mb,
            "windows": [
                [w.seconds, w.runs, w.total_runs, w.latency_ms_p50, w.latency_ms_p90, w.rss_mb]
                for w in self.windows
            ],
        }


def _slope(xs: list[float], ys: list[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def judge(label: str, windows: list[SoakWindow]) -> SoakResult:
    """The flags of a run's windows (too few windows after warm-up: no flags, figures None)."""
    result = SoakResult(label, windows)
    skip = max(1, round(len(windows) * WARMUP_FRACTION))
    steady = windows[skip:]
    if len(steady) < 3:
        return result
    first = statistics.median([w.latency_ms_p50 for w in steady[:3]])
    last = statistics.median([w.latency_ms_p50 for w in steady[-3:]])
    result.drift_ratio = last / first if first > 0 else None
    minutes = [w.seconds / 60 for w in steady]
    result.drift_pct_per_min = _slope(minutes, [w.latency_ms_p50 for w in steady]) / first * 100
    runs_k = [w.total_runs / 1000 for w in steady]
    rss = [w.rss_mb for w in steady]
    result.growth_mb_per_1000_runs = _slope(runs_k, rss)
    result.growth_mb = max(rss) - rss[0]
    long_enough = steady[-1].seconds - steady[0].seconds >= 60
    if (result.drift_ratio or 0) > DRIFT_RATIO or (
        long_enough and result.drift_pct_per_min > DRIFT_PCT_PER_MIN
    ):
        result.flags.append(
            f"drift: p50 {first:.3g} -> {last:.3g} ms ({result.drift_ratio:.2f}x, "
            f"{result.drift_pct_per_min:+.1f}%/min)"
        )
    if (
        result.growth_mb_per_1000_runs > GROWTH_MB_PER_1000_RUNS
        and result.growth_mb >= GROWTH_MIN_MB
    ):
        result.flags.append(
            f"memory: RSS +{result.growth_mb:.1f} MB after warm-up "
            f"({result.growth_mb_per_1000_runs:.2f} MB per 1,000 runs)"
        )
    return result


def run_soak(job: dict[str, Any]) -> list[dict[str, Any]]:
    """In the soak process: build the session, run for ``seconds``, one dict per window."""
    import numpy as np
    import psutil

    from autotune.build import build_session
    from autotune.model import load_model_info, resolve_shapes

    info = load_model_info(job["model"])
    ranges: Ranges = {k: tuple(tuple(d) for d in v) for k, v in job["ranges"].items()}
    fixed = resolve_shapes(info, {k: tuple(d[0] for d in v) for k, v in ranges.items()})
    for name, dims in fixed.items():
        ranges.setdefault(name, tuple((d, d) for d in dims))
    draw = shape_drawer(info, ranges)
    session = build_session(job["model"], SessionConfig.from_dict(job["config"]))
    rng = random.Random(job.get("seed", 0))
    proc = psutil.Process()
    specs = {s.name: s.dtype for s in info.inputs}
    windows: list[dict[str, Any]] = []
    start = time.perf_counter()
    window_end = start + job["window_s"]
    latencies: list[float] = []
    total = 0
    while True:
        feeds = {name: np.ones(dims, dtype=specs[name]) for name, dims in draw(rng).items()}
        t0 = time.perf_counter()
        session.run(None, feeds)
        t1 = time.perf_counter()
        latencies.append((t1 - t0) * 1000)
        total += 1
        if t1 >= window_end:
            windows.append(
                {
                    "seconds": t1 - start,
                    "runs": len(latencies),
                    "total_runs": total,
                    "latency_ms_p50": percentile(latencies, 50),
                    "latency_ms_p90": percentile(latencies, 90),
                    "rss_mb": proc.memory_info().rss / 2**20,
                }
            )
            latencies = []
            window_end += job["window_s"]
            if t1 - start >= job["seconds"]:
                return windows


def soak(
    model: Path,
    config: SessionConfig,
    seconds: float,
    ranges: Ranges | None = None,
    *,
    window_s: float = WINDOW_S,
    seed: int = 0,
    label: str | None = None,
) -> SoakResult:
    """Run ``config`` for ``seconds`` in a fresh process and judge its windows."""
    job = {
        "model": str(model),
        "config": config.to_dict(),
        "seconds": seconds,
        "window_s": window_s,
        "ranges": {k: [list(d) for d in v] for k, v in (ranges or {}).items()},
        "seed": seed,
    }
    rows = run_child(
        "autotune.serving.soak",
        job,
        timeout_s=seconds * 3 + 120,
        what=f"the soak of {label or config.describe()}",
    )
    return judge(label or config.describe(), [SoakWindow(**r) for r in rows])


def main() -> None:
    print(json.dumps(run_soak(json.loads(sys.stdin.read()))))


if __name__ == "__main__":
    main()
