"""Serving benchmark: throughput under concurrency, cold start and long runs, on autotune's four
examples and three models unlike them (``bench_unseen.py``'s lstm, ffn, branches).

    python scripts/bench_serving.py                                   # everything (an hour+)
    python scripts/bench_serving.py --models mlp,ffn --concurrency 2  # a few minutes

Per model and concurrency: the throughput search (screening, then the paired head-to-head in
fresh processes against one shared session with ORT's defaults); an *exhaustive* measurement
of every candidate arrangement in one more fresh process (``--exhaustive-rounds`` rounds each),
to see whether the pick is within 5% of the best found there; and an *independent check*:
``--check-generations`` fresh processes holding the pick, the shared default and a second
shared default, whose ratio pick/default and default/default (the check's A/A) are reported.
Per model: the cold-start search (first ever, cached, warm, per choice) and a soak of ORT's
defaults and of the highest concurrency's pick (its session configuration) over a batch range.
JSON to --out (default docs/results/serving.json), a summary to stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from bench_machine import describe, others_cores

EXAMPLES = ("resnet50", "mobilenetv2", "mlp", "transformer")
UNSEEN = ("lstm", "ffn", "branches")


def write_model(name: str, work: Path) -> Path:
    path = work / f"{name}.onnx"
    if name in EXAMPLES:
        from autotune.examples import write_example

        write_example(name, path)
    else:
        import onnx
        from bench_unseen import MODELS

        onnx.save(MODELS[name](), str(path))
    return path


def _rates(result: dict[str, Any], i: int) -> list[float]:
    return [r[i]["throughput"] for r in result["rounds"] if r[i] and r[i]["throughput"]]


def throughput(path: Path, shapes: dict[str, tuple[int, ...]], n: int, args: Any) -> Any:
    from autotune.chip import usable_cores
    from autotune.serving.arrangement import baseline
    from autotune.serving.throughput_search import (
        ThroughputOptions,
        candidates,
        run_generation,
        search_throughput,
    )

    cores = usable_cores()
    options = ThroughputOptions(
        concurrency=n,
        window_s=args.window,
        generations=args.generations,
        rounds=args.rounds,
    )
    t0 = time.perf_counter()
    outcome = search_throughput(path, shapes, options, cores)
    search_s = time.perf_counter() - t0
    pick = outcome.pick or baseline(n)
    every = candidates(n, cores)
    exhaustive = run_generation(path, shapes, every, options, args.exhaustive_rounds, seed=99)
    medians = [statistics.median(_rates(exhaustive, i) or [0.0]) for i in range(len(every))]
    best = max(range(len(every)), key=lambda i: medians[i])
    picked = next((i for i, a in enumerate(every) if a == pick), None)
    ratios, aa = [], []
    for g in range(args.check_generations):
        check = run_generation(path, shapes, [baseline(n), pick], options, 2, seed=1000 + g)
        base, mine, ref = (statistics.median(_rates(check, i) or [0.0]) for i in range(3))
        if base > 0:
            ratios.append(mine / base)
            aa.append(ref / base)
    i = outcome.verdict.pick_index
    return {
        "concurrency": n,
        "outcome": outcome.verdict.outcome,
        "reason": outcome.verdict.reason,
        "pick": pick.label(),
        "search_s": search_s,
        "pick_throughput": outcome.throughput[i] if i is not None else None,
        "baseline_throughput": outcome.throughput[0],
        "exhaustive": {a.label(): m for a, m in zip(every, medians, strict=True)},
        "exhaustive_best": every[best].label(),
        "pick_vs_exhaustive_best": (medians[picked] / medians[best])
        if picked is not None and medians[best]
        else None,
        "check_pick_over_default": statistics.median(ratios) if ratios else None,
        "check_ratios": ratios,
        "check_aa": aa,
        "unstable": outcome.unstable,
        "pick_config": pick.config.to_dict(),
    }


def coldstart(path: Path, shapes: dict[str, tuple[int, ...]], args: Any) -> Any:
    from autotune.digest import model_digest
    from autotune.serving.coldstart_search import ColdStartOptions, search_coldstart

    options = ColdStartOptions(generations=args.generations, rounds=args.rounds, warm_runs=10)
    outcome = search_coldstart(path, model_digest(path), shapes, options)
    return {
        "outcome": outcome.verdict.outcome,
        "reason": outcome.verdict.reason,
        "pick": outcome.pick.label() if outcome.pick else None,
        "choices": outcome.details()["contenders"],
    }


def soaks(path: Path, shapes: dict[str, tuple[int, ...]], pick: Any, args: Any) -> Any:
    from autotune.config import DEFAULT_CONFIG, SessionConfig
    from autotune.model import load_model_info
    from autotune.serving.soak import soak

    # a symbolic batch (first) dimension varies from 1 to --soak-batch; the rest as searched
    ranges = {}
    for spec in load_model_info(path).inputs:
        dims = shapes[spec.name]
        first = (1, args.soak_batch) if spec.shape and isinstance(spec.shape[0], str) else None
        ranges[spec.name] = tuple((d, d) for d in dims)
        if first and dims:
            ranges[spec.name] = (first, *ranges[spec.name][1:])
    configs = [DEFAULT_CONFIG]
    picked = SessionConfig.from_dict(pick)
    if picked.config_id != DEFAULT_CONFIG.config_id:
        configs.append(picked)
    out = []
    for config in configs:
        result = soak(path, config, args.soak, ranges, window_s=min(1.0, args.soak / 6))
        out.append({k: v for k, v in result.to_dict().items() if k != "windows"})
    return out


def _f(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def markdown(results: dict[str, Any]) -> str:
    """The results as Markdown tables (docs/serving.md pastes them)."""
    m = results["machine"]
    before, after = (results["others_cores"] + [None, None])[:2]
    lines = [
        f"Measured with `{results['command']}`, {m['date']}, {m['chip']}, {m['os']}, "
        f"onnxruntime {m['onnxruntime']}, Python {m['python']}; other programs used "
        f"{_f(before, '.2f')} cores before the run and {_f(after, '.2f')} after it (psutil).",
        "",
        "| model | N | verdict | pick | pick req/s | shared default req/s | exhaustive best "
        "| pick / best (exhaustive) | check: pick / default | check A/A |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in results["models"].items():
        for t in entry["throughput"]:
            lines.append(
                f"| {name} | {t['concurrency']} | {t['outcome']} | {t['pick']} | "
                f"{_f(t['pick_throughput'], '.0f')} | {_f(t['baseline_throughput'], '.0f')} | "
                f"{t['exhaustive_best']} | {_f(t['pick_vs_exhaustive_best'], '.3f')} | "
                f"{_f(t['check_pick_over_default'], '.3f')} "
                f"({', '.join(format(r, '.2f') for r in t['check_ratios'])}) | "
                f"{', '.join(format(r, '.3f') for r in t['check_aa'])} |"
            )
    lines += [
        "",
        "| model | choice | first ever ms | cached ms | warm p50 ms | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in results["models"].items():
        c = entry["coldstart"]
        for choice in c["choices"]:
            picked = f"**{c['outcome']}**" if choice["label"] == c["pick"] else ""
            lines.append(
                f"| {name} | {choice['label']} | {_f(choice['first_ever_ms'], '.0f')} | "
                f"{_f(choice['cached_cold_ms'], '.0f')} | {_f(choice['warm_ms_p50'], '.3f')} | "
                f"{picked} |"
            )
    for name, entry in results["models"].items():
        c = entry["coldstart"]
        lines += [
            "",
            f"{name}, cold start: {c['outcome']}, {c['pick'] or 'no pick'} ({c['reason']})",
        ]
    lines += [
        "",
        "| model | configuration | flags | RSS growth MB | drift ratio |",
        "|---|---|---|---|---|",
    ]
    for name, entry in results["models"].items():
        for s in entry["soak"]:
            lines.append(
                f"| {name} | {s['label']} | {'; '.join(s['flags']) or 'none'} | "
                f"{_f(s['growth_mb'], '.1f')} | {_f(s['drift_ratio'], '.2f')} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(EXAMPLES + UNSEEN))
    parser.add_argument("--concurrency", default="1,2,4")
    parser.add_argument("--window", type=float, default=0.5)
    parser.add_argument("--generations", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--exhaustive-rounds", type=int, default=3)
    parser.add_argument("--check-generations", type=int, default=3)
    parser.add_argument("--soak", type=float, default=30.0, help="Seconds per soak.")
    parser.add_argument("--soak-batch", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("docs/results/serving.json"))
    parser.add_argument("--render", type=Path, help="Print a results file as Markdown; no run.")
    parser.add_argument(
        "--resume", action="store_true", help="keep the models --out already holds; run the rest"
    )
    args = parser.parse_args()
    if args.render:
        print(markdown(json.loads(args.render.read_text())))
        return

    from autotune.model import load_model_info, resolve_shapes

    work = Path(tempfile.mkdtemp(prefix="autotune-serving-"))
    before = others_cores()
    results: dict[str, Any] = {"models": {}}
    if args.resume and args.out.exists():  # a cut run goes on where it stopped
        results["models"] = json.loads(args.out.read_text())["models"]
    for name in args.models.split(","):
        if name in results["models"]:
            continue
        path = write_model(name, work)
        shapes = resolve_shapes(load_model_info(path))
        entry: dict[str, Any] = {"shapes": {k: list(v) for k, v in shapes.items()}}
        entry["throughput"] = []
        for n in (int(c) for c in args.concurrency.split(",")):
            entry["throughput"].append(throughput(path, shapes, n, args))
            print(f"{name} c={n}: {json.dumps(entry['throughput'][-1])[:300]}", file=sys.stderr)
        entry["coldstart"] = coldstart(path, shapes, args)
        entry["soak"] = soaks(path, shapes, entry["throughput"][-1]["pick_config"], args)
        results["models"][name] = entry
        # written after every model (a cut run keeps what it measured), with the load so far
        results.update(describe(before))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=str))
    print(markdown(results))


if __name__ == "__main__":
    main()
