"""Pipelines tuned together: the joint pick against both baselines, checked independently.

    python scripts/bench_pipeline.py                         # speech, streams, ocr
    python scripts/bench_pipeline.py --stage-trials 3 --checks 3 --rounds 3   # a short run

Three pipelines built in code (``autotune.pipeline.example``): ``speech`` (an encoder, a
decoder step called 8 times with its state fed back, a post-net), ``streams`` (two encoders at
the same time) and ``ocr`` (a detector and a recognizer called 4 times, overlapping). For each:
every stage is first searched alone (``--stage-trials``, ``autotune.search_model``), then the
pipeline (``autotune.pipeline.search``), on one fresh database. Then, without autotune's
measurement code, the joint candidate the search measured fastest (picked, or held: a thread
pick measured under load is not issued) is checked against both baselines: ``--checks``
repetitions, each running one fresh process per arrangement (ORT's defaults for every stage,
every stage at its own pick, the joint candidate) in random order, each process building the
stages, warming up and timing ``--runs`` whole pipeline runs; a repetition's ratio is the
baseline's median over the candidate's (above 1: faster). Markdown to
stdout, JSON to --out (default docs/results/pipeline.json).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import bench_machine

from autotune.measure.manager import Protocol
from autotune.pipeline.arrangement import Arrangement
from autotune.pipeline.example import PIPELINES
from autotune.pipeline.search import PipelineOptions, run_pipeline_search, stage_picks
from autotune.pipeline.spec import load_pipeline

# one fresh process: build the stages with an arrangement, warm up, time whole runs
TIMED = """
import json, resource, statistics, sys, time
from autotune.pipeline.arrangement import Arrangement
from autotune.pipeline.feeds import stage_feeds
from autotune.pipeline.replay import Replay, build_sessions
from autotune.pipeline.spec import load_pipeline
spec = load_pipeline(sys.argv[1])
arrangement = Arrangement.from_json(sys.argv[2], len(spec.stages))
replay = Replay(spec, build_sessions(spec, arrangement), stage_feeds(spec))
for _ in range(10):
    replay.run()
times = []
for _ in range(int(sys.argv[3])):
    t0 = time.perf_counter()
    replay.run()
    times.append((time.perf_counter() - t0) * 1000.0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"ms": statistics.median(times), "peak_rss_mb": peak}))
"""


def timed(path: Path, arrangement: Arrangement, runs: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", TIMED, str(path), arrangement.to_json(), str(runs)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def check(path: Path, arrangements: dict[str, Arrangement], reps: int, runs: int) -> dict[str, Any]:
    """Paired repetitions of fresh processes, in random order; each arrangement's ratio to
    each baseline (baseline median / its median: above 1 is faster)."""
    rows: list[dict[str, dict[str, float]]] = []
    for _ in range(reps):
        order = list(arrangements)
        random.shuffle(order)
        rows.append({name: timed(path, arrangements[name], runs) for name in order})
    out: dict[str, Any] = {"reps": rows}
    for name in arrangements:
        for baseline in ("defaults", "stage picks"):
            ratios = [r[baseline]["ms"] / r[name]["ms"] for r in rows]
            out[f"{name} vs {baseline}"] = {
                "median": statistics.median(ratios),
                "min": min(ratios),
                "max": max(ratios),
            }
    out["peak_rss_mb"] = {
        name: statistics.median(r[name]["peak_rss_mb"] for r in rows) for name in arrangements
    }
    return out


def bench(name: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    path = PIPELINES[name](root / name)
    db = str(root / f"{name}.db")
    rounds = args.rounds
    protocol = Protocol(rounds=rounds, max_rounds=2 * rounds + 4, final_rounds=3 * rounds)
    options = PipelineOptions(
        db=db, stage_trials=args.stage_trials, protocol=protocol, allow_busy=args.allow_busy
    )
    started = time.monotonic()
    outcome = run_pipeline_search(path, options, progress=lambda line: print(line, file=sys.stderr))
    spec = load_pipeline(path)
    picks, _ = stage_picks(spec, PipelineOptions(db=db), lambda _: None)
    n = len(spec.stages)
    # the joint candidate the search measured fastest against ORT's defaults (picked or not:
    # a pick measured under load is held, and the check says whether it would have held up)
    joint = [c for c in outcome.contenders if c["role"] == "joint"]
    best = max(joint, key=lambda c: c["vs_defaults"] or 0.0) if joint else None
    arrangements = {
        "defaults": Arrangement.defaults(n),
        "stage picks": Arrangement(tuple(picks)),
        "best joint": Arrangement.from_json(json.dumps(best["arrangement"]), n)
        if best
        else Arrangement(tuple(picks)),
    }
    checked = check(path, arrangements, args.checks, args.runs)
    return {
        "pipeline": name,
        "outcome": outcome.outcome,
        "reason": outcome.reason,
        "served": outcome.label or "ORT defaults for every stage",
        "best_joint": best["label"] if best else None,
        "best_joint_search": {k: best[k] for k in ("vs_defaults", "vs_picks", "why_not")}
        if best
        else None,
        "stage_sources": outcome.stage_sources,
        "search": {
            "speedup_vs_defaults": outcome.speedup_vs_defaults,
            "speedup_vs_picks": outcome.speedup_vs_picks,
            "contenders": outcome.contenders,
            "busy": outcome.busy,
        },
        "check": checked,
        "wall_s": time.monotonic() - started,
    }


def recheck(previous: dict[str, Any], args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """The check alone, again, of a results file's pipeline: the same arrangements (ORT's
    defaults, the stage picks the search held, its fastest joint candidate)."""
    path = PIPELINES[previous["pipeline"]](root / previous["pipeline"])
    n = len(load_pipeline(path).stages)
    by_role = {c["role"]: c for c in previous["search"]["contenders"]}
    joint = [c for c in previous["search"]["contenders"] if c["label"] == previous["best_joint"]]
    picks = by_role.get("stage picks", by_role["defaults"])
    arrangements = {
        "defaults": Arrangement.defaults(n),
        "stage picks": Arrangement.from_json(json.dumps(picks["arrangement"]), n),
        "best joint": Arrangement.from_json(json.dumps(joint[0]["arrangement"]), n),
    }
    return {
        "pipeline": previous["pipeline"],
        "best_joint": previous["best_joint"],
        "check": check(path, arrangements, args.checks, args.runs),
    }


def _x(value: float | None) -> str:
    return f"{value:.3f}×" if value is not None else "-"


def _spread(check: dict[str, Any]) -> str:
    """How far ORT's defaults ran apart over the check's fresh processes: (max - min) / min."""
    times = [rep["defaults"]["ms"] for rep in check.get("reps", []) if "defaults" in rep]
    return f"{max(times) / min(times) - 1:.1%}" if len(times) > 1 else "-"


def markdown(data: dict[str, Any]) -> str:
    """A results file's table (docs/pipelines.md renders it with scripts/render_docs.py)."""
    lines = [
        "| pipeline | verdict (apps get) | fastest joint candidate | search: vs defaults, vs "
        "stage picks | check: vs defaults [min–max] | vs stage picks [min–max] | check's A/A: "
        "ORT's defaults across its processes |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in data["pipelines"]:
        c, s = r["check"], r["best_joint_search"] or {}
        d, p = c["best joint vs defaults"], c["best joint vs stage picks"]
        served = r["served"].replace(" | ", "; ")
        lines.append(
            f"| {r['pipeline']} | {r['outcome']} ({served}) | "
            f"{(r['best_joint'] or '-').replace(' | ', '; ')} | "
            f"{_x(s.get('vs_defaults'))}, {_x(s.get('vs_picks'))} | "
            f"{_x(d['median'])} [{d['min']:.2f}–{d['max']:.2f}] | "
            f"{_x(p['median'])} [{p['min']:.2f}–{p['max']:.2f}] | {_spread(c)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", nargs="+", default=list(PIPELINES), choices=PIPELINES)
    parser.add_argument("--stage-trials", type=int, default=8, help="each stage's own search")
    parser.add_argument("--rounds", type=int, default=8, help="paired rounds per candidate")
    parser.add_argument("--checks", type=int, default=5, help="fresh-process repetitions")
    parser.add_argument("--runs", type=int, default=200, help="timed runs per check process")
    parser.add_argument(
        "--allow-busy", action="store_true", help="measure while other programs use the CPU"
    )
    parser.add_argument("--out", default=str(Path(bench_machine.RESULTS) / "pipeline.json"))
    parser.add_argument("--recheck", help="only check again the picks of this results file")
    args = parser.parse_args()
    others = bench_machine.others_cores()
    if args.recheck:
        previous = json.loads(Path(args.recheck).read_text(encoding="utf-8"))["pipelines"]
        with tempfile.TemporaryDirectory() as tmp:
            again = [
                recheck(r, args, Path(tmp)) for r in previous if r["pipeline"] in args.pipelines
            ]
        data = {**bench_machine.describe(others), "pipelines": again}
        Path(args.out).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        for r in again:
            d, p = r["check"]["best joint vs defaults"], r["check"]["best joint vs stage picks"]
            print(
                f"| {r['pipeline']} | {r['best_joint']} | {_x(d['median'])} "
                f"[{d['min']:.2f}–{d['max']:.2f}] | {_x(p['median'])} "
                f"[{p['min']:.2f}–{p['max']:.2f}] |"
            )
        return
    with tempfile.TemporaryDirectory() as tmp:
        results = [bench(name, args, Path(tmp)) for name in args.pipelines]
    data = {**bench_machine.describe(others), "pipelines": results}
    Path(args.out).write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    print(markdown(data))


if __name__ == "__main__":
    main()
