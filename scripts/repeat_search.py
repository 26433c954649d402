"""Repeatability: run the same search several times (fresh database each time), then judge the
picks against each other in one fresh paired head-to-head (default, pick 1, pick 2, …).

    python scripts/repeat_search.py MODEL.onnx [--repeats 3] [--trials 30]
    python scripts/repeat_search.py --example resnet50 --out docs/results/repeat.json

Prints each run's pick, wall time and claimed speed-up, then the head-to-head ratios (each pick
relative to the default, measured in the same rounds) and the spread between picks. With
``--out``, the model's record is added to that results file (one record per model, replaced when
the model is run again), with the machine and load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import bench_machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?")
    parser.add_argument("--example", help="use an example model: resnet50, mobilenetv2, ...")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=15, help="head-to-head rounds")
    parser.add_argument("--out", type=Path, help="add this model's record to a results file")
    args = parser.parse_args()
    others_before = bench_machine.others_cores()
    work = Path(tempfile.mkdtemp(prefix="autotune-repeat-"))
    os.environ["AUTOTUNE_CACHE_DIR"] = str(work / "cache")
    if args.example:
        from autotune.examples import write_example

        model = write_example(args.example, work / f"{args.example}.onnx")
    elif args.model:
        model = Path(args.model)
    else:
        sys.exit("give MODEL.onnx or --example NAME")

    from autotune.config import DEFAULT_CONFIG, SessionConfig
    from autotune.measure.manager import Manager, Protocol, WorkerSetup
    from autotune.measure.verdict import decide
    from autotune.model import load_model_info, resolve_shapes, synthetic_feeds
    from autotune.tuning.search import SearchOptions, run_search

    picks: list[SessionConfig] = []
    runs: list[dict[str, Any]] = []
    print(f"model {model.name}: {args.repeats} searches of {args.trials} trials")
    for i in range(args.repeats):
        db = work / f"run{i}.db"
        t0 = time.monotonic()
        outcome = run_search(model, SearchOptions(trials=args.trials, db=str(db)))
        wall = time.monotonic() - t0
        pick = outcome.pick or DEFAULT_CONFIG  # None: inconclusive, apps keep the default
        picks.append(pick)
        runs.append(
            {
                "wall_s": round(wall, 1),
                "outcome": outcome.outcome,
                "pick": pick.describe(),
                "claimed": outcome.speedup,
                "claimed_interval": [outcome.speedup_low, outcome.speedup_high],
                "aa_spread": outcome.aa_spread,
            }
        )
        claimed = f"{outcome.speedup:.3f}x" if outcome.speedup else outcome.outcome
        print(
            f"  run {i + 1}: {wall:5.0f} s, pick {pick.describe()!r}, "
            f"claimed {claimed}, final rounds dropped {outcome.rounds_dropped}"
        )
    info = load_model_info(model)
    feeds = synthetic_feeds(info, resolve_shapes(info))
    worker = Manager(WorkerSetup(str(model), feeds, Protocol()))
    contenders = [DEFAULT_CONFIG, *picks]
    try:
        h2h = worker.compare(contenders, args.rounds, timeout=600)
    finally:
        worker.close()
    verdict = decide(
        h2h.rounds,
        contenders=len(contenders),
        min_gain=0.03,
        latencies=h2h.latencies,
        rounds_dropped=h2h.rounds_dropped,
    )
    # each pick's latency relative to the default's (lower is faster)
    ratios = [1 / (e.speedup or float("nan")) for e in verdict.entries[1:]]
    print(
        f"head-to-head ({verdict.rounds_kept} rounds kept, "
        f"{verdict.rounds_dropped} dropped by the slow-phase guard):"
    )
    for cfg, r in zip(picks, ratios, strict=True):
        print(f"  {cfg.describe():50s} {1 / r:.3f}x the default")
    spread = max(ratios) / min(ratios) - 1
    distinct = len({c.config_id for c in picks})
    same = "the same configuration" if distinct == 1 else f"{distinct} distinct configurations"
    print(
        f"{len(picks)} picks: {same}; measured within {spread * 100:.1f}% of each other "
        f"(median speed-up {1 / statistics.median(ratios):.3f}x). Identical configurations "
        "differ only by measurement noise between processes."
    )
    if args.out:
        record = {
            "model": args.example or model.name,
            "trials": args.trials,
            "runs": runs,
            "measured": [round(1 / r, 4) for r in ratios],
            "rounds_kept": verdict.rounds_kept,
            "rounds_dropped": verdict.rounds_dropped,
            "distinct": distinct,
        }
        found = json.loads(args.out.read_text()) if args.out.exists() else {"models": []}
        found["models"] = [m for m in found["models"] if m["model"] != record["model"]]
        found["models"].append(record)
        found.update(bench_machine.describe(others_before))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(found, indent=2))


if __name__ == "__main__":
    main()
