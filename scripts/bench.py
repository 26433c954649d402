"""The benchmark: autotune's pick against ORT's defaults and against an oracle, on this machine.

    python scripts/bench.py                      # the four studies in studies/
    python scripts/bench.py model.onnx ...       # and/or your own models
    python scripts/bench.py --studies mlp,transformer --out docs/results/oracle.json

For each model, in one run on one machine:
1. `autotune search` with default options (fresh database): its wall time and its pick.
2. The oracle: every configuration of a fixed grid measured fully with the same paired,
   interleaved protocol (no pruning, no early stop): its wall time and its best.
   The grid is levels {DISABLE_ALL, BASIC, EXTENDED, LAYOUT, ALL} × {1 thread; ORT's threads with
   spinning on; ORT's threads with spinning off} × memory pattern {on, off} (30 configurations,
   60 with the GELU approximation on models with GELU): on this class of machine a full
   120-configuration grid (5 levels x 3 thread counts x 2 modes x 2 spinning x 2 memory
   pattern, measured on the four example models in November 2026) found every model's optimum
   inside it. autotune's own space is larger (it is counted and reported, and
   the time an exhaustive search of it would take is extrapolated from the grid's per-config cost).
3. A fresh head-to-head of default, pick and oracle best (15 paired rounds, slow-phase guard):
   speed-up = default/pick, pick/oracle, and the rounds the guard dropped.
Writes a Markdown table to stdout and JSON to --out (default docs/results/oracle.json, which
docs/benchmarks.md renders).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_machine


def oracle_grid(levels: list[str], gelu: bool) -> list[Any]:
    from autotune.config import SessionConfig

    grid = []
    for level in levels:
        for threads, spin in ((1, "1"), (0, "1"), (0, "0")):
            for mem_pattern in (True, False):
                for approx in ("0", "1") if gelu else ("0",):
                    entries = {"session.intra_op.allow_spinning": spin}
                    if approx == "1":
                        entries["optimization.enable_gelu_approximation"] = "1"
                    grid.append(
                        SessionConfig(
                            graph_optimization_level=level,
                            intra_op_num_threads=threads,
                            enable_mem_pattern=mem_pattern,
                            session_entries=entries,
                        ).canonical()
                    )
    unique = {c.config_id: c for c in grid}
    return list(unique.values())


class _Path:
    """A trial that answers each suggestion from a path of choice indices (define-by-run):
    index ``i`` of the path is the choice of the ``i``-th suggestion; past the path, the first
    choice. It records how many choices each suggestion had, for the next path."""

    def __init__(self, path: list[int]) -> None:
        self.path = path
        self.counts: list[int] = []

    def _pick(self, options: list[Any]) -> Any:
        i = len(self.counts)
        self.counts.append(len(options))
        return options[self.path[i] if i < len(self.path) else 0]

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self._pick(list(choices))

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        return int(self._pick(list(range(low, high + 1, step))))


def space_size(ctx: Any, levels: list[str], providers: list[str] | None = None) -> int:
    """Distinct configurations autotune's search space holds here (of ``providers`` when the
    study names them, as the search selects them): every path through its define-by-run
    suggestions enumerated (odometer order), the configurations counted once."""
    from autotune.config import CPU
    from autotune.providers import available_spaces
    from autotune.tuning.space import suggest_config

    spaces = [
        s
        for s in available_spaces()
        if providers is None or s.ort_name in providers or s.name == CPU
    ]
    seen: set[str] = set()
    path: list[int] = []
    while True:
        trial = _Path(path)
        seen.add(suggest_config(trial, ctx, spaces, levels=levels).config_id)
        path = path + [0] * (len(trial.counts) - len(path))
        while path and path[-1] + 1 >= trial.counts[len(path) - 1]:
            path.pop()  # this suggestion's choices are exhausted: back up
        if not path:
            return len(seen)
        path[-1] += 1


def bench_model(path: Path, work: Path, options: dict[str, Any]) -> dict[str, Any]:
    from autotune.chip import current_chip
    from autotune.config import DEFAULT_CONFIG
    from autotune.measure.manager import Manager, Protocol, WorkerSetup
    from autotune.measure.verdict import decide
    from autotune.model import free_dimensions, load_model_info, resolve_shapes, synthetic_feeds
    from autotune.providers import SearchContext
    from autotune.store.records import Status
    from autotune.tuning.search import SearchOptions, run_search
    from autotune.tuning.space import GELU_OPS, graph_levels

    info = load_model_info(path)
    shapes = resolve_shapes(info)
    feeds = synthetic_feeds(info, shapes)
    levels = graph_levels()
    gelu = bool(set(info.op_counts) & GELU_OPS)
    ctx = SearchContext(
        cores=current_chip().cores,
        has_subgraphs=info.has_subgraphs,
        has_dynamic_inputs=info.has_dynamic_inputs,
        free_dims=free_dimensions(info, shapes),
        op_types=frozenset(info.op_counts),
    )

    print(f"== {path.name}: autotune search", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    outcome = run_search(path, SearchOptions(db=str(work / f"{path.stem}-search.db"), **options))
    search_s = time.monotonic() - t0

    grid = oracle_grid(levels, gelu)
    print(f"== {path.name}: oracle, {len(grid)} configurations", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    worker = Manager(WorkerSetup(str(path), feeds, Protocol()))
    oracle: list[tuple[float, Any]] = []
    oracle_dropped = 0
    try:
        for cfg in grid:
            result = worker.measure(cfg, timeout=600)
            oracle_dropped += result.rounds_dropped
            if result.status == Status.OK and result.ratio is not None:
                oracle.append((result.ratio, cfg))
        oracle_s = time.monotonic() - t0
        oracle.sort(key=lambda x: x[0])
        oracle_best = oracle[0][1]
        pick = outcome.pick or DEFAULT_CONFIG  # None: an inconclusive verdict keeps the default
        contenders = [DEFAULT_CONFIG, pick, oracle_best]
        print(f"== {path.name}: head-to-head", file=sys.stderr, flush=True)
        h2h = worker.compare(contenders, 15, timeout=600)
    finally:
        worker.close()
    verdict = decide(
        h2h.rounds,
        contenders=3,
        min_gain=options.get("min_gain", 0.03),
        latencies=h2h.latencies,
        rounds_dropped=h2h.rounds_dropped,
    )
    default, picked, best = verdict.entries
    sp, so = picked.speedup or float("nan"), best.speedup or float("nan")
    full = space_size(ctx, levels, options.get("providers"))
    per_config = oracle_s / len(grid)
    return {
        "model": path.name,
        "default_ms_p50": default.latency_ms_p50,
        "default_ms_p90": default.latency_ms_p90,
        "pick": pick.describe(),
        "outcome": outcome.outcome,
        "pick_ms_p50": picked.latency_ms_p50,
        "pick_ms_p90": picked.latency_ms_p90,
        "oracle_best": oracle_best.describe(),
        "oracle_best_search_ratio": oracle[0][0],
        "speedup": sp,
        "pick_vs_oracle": so / sp,
        "oracle_speedup": so,
        "rounds_kept": verdict.rounds_kept,
        "rounds_dropped": verdict.rounds_dropped,
        "search_s": search_s,
        "search_trials": outcome.measured,
        "oracle_s": oracle_s,
        "oracle_configs": len(grid),
        "oracle_rounds_dropped": oracle_dropped,
        "search_vs_oracle_time": search_s / oracle_s,
        "space_size": full,
        "full_oracle_s_extrapolated": full * per_config,
        "search_vs_full_oracle_time": search_s / (full * per_config),
    }


def markdown(found: dict[str, Any]) -> str:
    """A results file's table (docs/benchmarks.md renders it with scripts/render_docs.py)."""
    lines = [
        "| model | default p50 / p90 | autotune's pick | speed-up | pick / oracle best | "
        "oracle best | search time (trials) | oracle grid time (configs) | search / grid time | "
        "full space: configs, extrapolated time, search / that | "
        "head-to-head rounds kept (dropped) |",
        "|---" * 11 + "|",
    ]
    for r in found["rows"]:
        lines.append(
            f"| {r['model']} | {r['default_ms_p50']:.3f} / {r['default_ms_p90']:.3f} ms "
            f"| {r['pick']} ({r['outcome']}) | {r['speedup']:.3f}× | {r['pick_vs_oracle']:.3f} "
            f"| {r['oracle_best']} ({r['oracle_speedup']:.3f}×) "
            f"| {r['search_s']:.0f} s ({r['search_trials']}) "
            f"| {r['oracle_s']:.0f} s ({r['oracle_configs']}) | {r['search_vs_oracle_time']:.0%} "
            f"| {r['space_size']}, {r['full_oracle_s_extrapolated'] / 60:.0f} min, "
            f"{r['search_vs_full_oracle_time']:.1%} "
            f"| {r['rounds_kept']} ({r['rounds_dropped']}) |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="extra .onnx files")
    parser.add_argument(
        "--studies",
        default="mlp,transformer,mobilenetv2,resnet50",
        help="study files of studies/ to run (comma-separated names)",
    )
    parser.add_argument("--out", type=Path, default=Path(bench_machine.RESULTS) / "oracle.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="autotune-bench-"))
    os.environ["AUTOTUNE_CACHE_DIR"] = str(work / "cache")
    others_before = bench_machine.others_cores()
    from autotune.chip import current_chip
    from autotune.tuning.study import load_study

    studies = Path(__file__).parent.parent / "studies"
    runs = []
    for name in filter(None, args.studies.split(",")):
        study = load_study(studies / f"{name}.toml")
        runs.append((study.model, study.options))
    runs += [(Path(m), {}) for m in args.models]
    rows = [bench_model(p, work, options) for p, options in runs]
    chip = current_chip()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    found = {"rows": rows, **bench_machine.describe(others_before)}
    args.out.write_text(json.dumps(found, indent=2))
    print(f"{chip.chip_id}, onnxruntime {chip.ort_version}, {found['machine']['date']}\n")
    print(markdown(found))


if __name__ == "__main__":
    main()
