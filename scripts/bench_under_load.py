"""Are autotune's stored picks ever slower than ORT's defaults, on a quiet machine and under load?

    python scripts/bench_under_load.py                        # the four example models, N=5
    python scripts/bench_under_load.py --models mlp,transformer --searches 5 --trials 12

For each model: N searches on a quiet machine and N while a background process keeps one core
busy (a Python busy loop, started outside autotune; the searches run with --allow-busy), each
with a fresh database. Then every stored pick that is not ORT's default configuration is checked
on the quiet machine by two *independent* comparisons, each building its sessions the way an app
does (autotune.build, as best_session does) and timing runs with its own perf_counter loop (none
of autotune.measure):

- interleaved (``scripts/check_pick.py``, the one a wrong pick is judged by): pairs of fresh
  processes of the pick and the default alive together, asked in turn for ~0.1 s blocks; a
  pair's speed-up is its median block ratio, the check's the median over pairs;
- sequential: pairs of fresh processes one after the other (random order within a pair), each
  timing for ``--seconds``; speed-up = median over pairs of default p50 / pick p50.

The same checks of the default against itself give their A/A spreads. A wrong pick: its
interleaved speed-up is below 0.99 (slower than the default beyond 1%). Writes Markdown to
stdout and JSON to --out (default docs/results/under_load.json); ``--recheck FILE`` runs only
the checks again on a results file (the example models are written anew).
"""

from __future__ import annotations

import argparse
import json
import os
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
from check_pick import check as interleaved_check

TIMER = r"""
import json, statistics, sys, time
import numpy as np
from autotune.build import build_session
from autotune.config import SessionConfig
from autotune.model import load_model_info, resolve_shapes, synthetic_feeds
path, config, seconds = sys.argv[1], SessionConfig.from_json(sys.argv[2]), float(sys.argv[3])
info = load_model_info(path)
feeds = synthetic_feeds(info, resolve_shapes(info, {}))
session = build_session(path, config)
for _ in range(10):
    session.run(None, feeds)
times = []
end = time.perf_counter() + seconds
while time.perf_counter() < end or len(times) < 30:
    t0 = time.perf_counter()
    session.run(None, feeds)
    times.append((time.perf_counter() - t0) * 1000.0)
print(json.dumps({"p50": statistics.median(times), "runs": len(times)}))
"""


def timed_process(model: Path, config_json: str, seconds: float) -> float:
    out = subprocess.run(
        [sys.executable, "-c", TIMER, str(model), config_json, str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["p50"])


def independent_check(model: Path, pick_json: str, pairs: int, seconds: float) -> dict[str, Any]:
    """Pairs of fresh processes (pick, default) in random order: default p50 / pick p50."""
    from autotune.config import DEFAULT_CONFIG

    default_json = DEFAULT_CONFIG.to_json()
    ratios = []
    for _ in range(pairs):
        order = [("pick", pick_json), ("default", default_json)]
        random.shuffle(order)
        p50 = {name: timed_process(model, cfg, seconds) for name, cfg in order}
        ratios.append(p50["default"] / p50["pick"])
    return {
        "speedup": statistics.median(ratios),
        "min": min(ratios),
        "max": max(ratios),
        "pairs": ratios,
    }


def other_load() -> float:
    from autotune.measure.load import LoadMonitor

    return LoadMonitor().measure(2.0).other_cores


def verdict_of(data: dict[str, Any]) -> dict[str, Any]:
    """What a benchmark keeps of ``autotune search --json``'s verdict."""
    return {
        "outcome": data["outcome"],
        "pick": data["pick_label"],
        "pick_config": json.dumps(data["pick"]) if data["pick"] else None,
        "pick_is_default": data["pick_is_default"],
        "speedup": data["speedup"],
        "interval": [data["speedup_low"], data["speedup_high"]],
        "aa_spread": data["aa_spread"],
        "reason": data["reason"],
    }


def run_searches(
    model: Path, n: int, trials: int, busy: bool, work: Path, timeout: float
) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        db = work / f"{model.stem}-{'load' if busy else 'quiet'}-{i}.db"
        env = {**os.environ, "AUTOTUNE_DB": str(db), "AUTOTUNE_CACHE_DIR": str(work / "cache")}
        cmd = [sys.executable, "-m", "autotune", "search", str(model), "--trials", str(trials)]
        cmd += ["--json", "--timeout", str(timeout)]
        if busy:
            cmd.append("--allow-busy")
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        wall = time.monotonic() - t0
        if proc.returncode != 0:
            out.append({"error": proc.stderr.strip().splitlines()[-1:], "wall_s": wall})
            continue
        data = json.loads(proc.stdout)
        out.append(
            {
                **verdict_of(data),
                # what other programs used during the head-to-head (cores)
                "h2h_other_cores": (data.get("busy") or {})
                .get("head_to_head", {})
                .get("other_cores"),
                "wall_s": wall,
            }
        )
        print(f"  {model.stem} {'load' if busy else 'quiet'} {i}: {out[-1]}", file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="mlp,mobilenetv2,transformer,resnet50")
    parser.add_argument("--searches", type=int, default=5)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--timeout", type=float, default=240.0)
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=1.0, help="timed runs per process")
    parser.add_argument("--rounds", type=int, default=15, help="rounds per interleaved pair")
    parser.add_argument("--out", default="docs/results/under_load.json")
    parser.add_argument("--recheck", type=Path, help="only check the picks of this results file")
    args = parser.parse_args()
    if args.recheck:
        stored: dict[str, Any] = json.loads(args.recheck.read_text())
        again = Path(tempfile.mkdtemp(prefix="autotune-recheck-"))
        for name, r in stored["models"].items():
            check_model(name, r, again, args)
        Path(args.out).write_text(json.dumps(stored, indent=2))
        print(markdown(stored))
        return

    from autotune.examples import write_example

    work = Path(tempfile.mkdtemp(prefix="autotune-load-"))
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M"), "models": {}}
    results["quiet_load_cores_before"] = other_load()
    psutil_before = bench_machine.others_cores()
    for name in args.models.split(","):
        model = write_example(name, work / f"{name}.onnx")
        quiet = run_searches(model, args.searches, args.trials, False, work, args.timeout)
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(1.0)
            loaded = run_searches(model, args.searches, args.trials, True, work, args.timeout)
        finally:
            hog.kill()
            hog.wait()
        results["models"][name] = {"quiet": quiet, "load": loaded}
        check_model(name, results["models"][name], work, args)
        # after every model: a run cut short keeps what it measured
        results.update(bench_machine.describe(psutil_before))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
    print(markdown(results))


def check_model(name: str, r: dict[str, Any], work: Path, args: argparse.Namespace) -> None:
    """Both independent checks of every stored non-default pick of one model, and of the default
    against itself (the checks' own A/A), written into ``r``."""
    from autotune.config import DEFAULT_CONFIG
    from autotune.examples import write_example

    model = work / f"{name}.onnx"
    if not model.exists():
        write_example(name, model)
    checked: dict[str, Any] = {}
    for entry in r["quiet"] + r["load"]:
        cfg = entry.get("pick_config")
        if entry.get("outcome") == "pick" and cfg and not entry.get("pick_is_default"):
            if cfg not in checked:
                checked[cfg] = {
                    "interleaved": interleaved_check(
                        model, cfg, pairs=args.pairs, rounds=args.rounds
                    ),
                    "sequential": independent_check(model, cfg, args.pairs, args.seconds),
                }
            entry["independent"] = checked[cfg]["interleaved"]
            entry["sequential"] = checked[cfg]["sequential"]
    default = DEFAULT_CONFIG.to_json()
    r["aa_check"] = interleaved_check(model, default, pairs=args.pairs, rounds=args.rounds)
    r["aa_sequential"] = independent_check(model, default, args.pairs, args.seconds)
    print(
        f"{name}: A/A interleaved {r['aa_check']['min']:.3f}-{r['aa_check']['max']:.3f}, "
        f"sequential {r['aa_sequential']['min']:.3f}-{r['aa_sequential']['max']:.3f}",
        file=sys.stderr,
    )


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "| model | machine | searches | picks (non-default) | default kept | inconclusive | "
        "wrong picks | independent speed-up of picks | A/A spread (verdict) | "
        "others' CPU in head-to-head | wall time |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results["models"].items():
        for phase in ("quiet", "load"):
            rows = r[phase]
            picks = [e for e in rows if e.get("outcome") == "pick" and not e["pick_is_default"]]
            wrong = [e for e in picks if e.get("independent", {}).get("speedup", 1.0) < 0.99]
            speeds = [
                f"{e['independent']['speedup']:.3f}"
                + (f" (sequential {e['sequential']['speedup']:.3f})" if "sequential" in e else "")
                for e in picks
                if "independent" in e
            ]
            aa = [e["aa_spread"] for e in rows if e.get("aa_spread") is not None]
            load = [e["h2h_other_cores"] for e in rows if e.get("h2h_other_cores") is not None]
            walls = [e["wall_s"] for e in rows]
            lines.append(
                f"| {name} | {phase} | {len(rows)} | {len(picks)} "
                f"| {sum(1 for e in rows if e.get('outcome') == 'default')} "
                f"| {sum(1 for e in rows if e.get('outcome') == 'inconclusive')} "
                f"| {len(wrong)} | {', '.join(speeds) or '-'} "
                f"| {min(aa, default=0):.1%}–{max(aa, default=0):.1%} "
                f"| {min(load, default=0):.2f}–{max(load, default=0):.2f} cores "
                f"| {statistics.median(walls):.0f} s |"
            )
        for label, key in (("interleaved", "aa_check"), ("sequential", "aa_sequential")):
            if key in r:
                aa_check = r[key]
                lines.append(
                    f"| {name} | A/A of the {label} check | {len(aa_check['pairs'])} pairs | | | "
                    f"| | {aa_check['min']:.3f}–{aa_check['max']:.3f} | | | |"
                )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
