"""Does the decision resolve where users run? Every model of ``scripts/unseen_models.py`` searched
once on the quiet machine and once while another program uses about 0.3 of a core; every pick
that is not ORT's default checked independently.

    python scripts/bench_decisions.py                         # all models, 12 trials each
    python scripts/bench_decisions.py --models vad,crnn --trials 8
    python scripts/bench_decisions.py --render docs/results/decisions.json

Each search runs as a user runs it (``autotune search MODEL --json``, fresh database, no
``--allow-busy``). The light load is a separate program that is busy 30 ms of every 100 ms.
Every pick that is not ORT's default is then checked by ``scripts/check_pick.py`` on the quiet
machine (fresh processes of the pick and of ORT's default alive together, ~0.1 s blocks in
turn; none of autotune's measurement code), beside the check's own A/A (default against
default). A wrong pick: checked below 0.99. Decisive: the verdict is a pick or ORT's defaults.
JSON to --out (default docs/results/decisions.json), markdown to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import onnx

sys.path.insert(0, str(Path(__file__).parent))
import bench_machine
from bench_under_load import verdict_of
from check_pick import check as interleaved_check
from unseen_models import MODELS

DUTY_CYCLE = (
    "import time\n"
    "while True:\n"
    "    t = time.perf_counter()\n"
    "    while time.perf_counter() - t < 0.1 * BUSY: pass\n"
    "    time.sleep(0.1 * (1 - BUSY))\n"
)


def start_light_load(share: float) -> subprocess.Popen[bytes]:
    """A program busy ``share`` of every 100 ms (0.3: a third of a core, if it gets it)."""
    return subprocess.Popen([sys.executable, "-c", f"BUSY = {share}\n" + DUTY_CYCLE])


def search(model: Path, db: Path, trials: int, timeout: float) -> dict[str, Any]:
    env = {**os.environ, "AUTOTUNE_DB": str(db), "AUTOTUNE_CACHE_DIR": str(db.parent / "cache")}
    env.pop("AUTOTUNE_ALLOW_BUSY", None)
    cmd = [sys.executable, "-m", "autotune", "search", str(model), "--trials", str(trials)]
    cmd += ["--json", "--timeout", str(timeout)]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1], "wall_s": wall}
    data = json.loads(proc.stdout)
    h2h = (data.get("busy") or {}).get("head_to_head") or {}
    verdict = data.get("verdict") or {}
    return {
        **verdict_of(data),
        "resolution": verdict.get("resolution"),
        "generations": verdict.get("generations"),
        "level": h2h.get("level"),
        "h2h_other_cores": h2h.get("other_cores"),
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--timeout", type=float, default=150)
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--load", type=float, default=0.3, help="busy share of the load program")
    parser.add_argument(
        "--conditions", default="quiet,light", help="quiet, light or both (comma-separated)"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/results/decisions.json"))
    parser.add_argument("--render", type=Path, help="Print the markdown of a results file.")
    args = parser.parse_args()
    if args.render:
        print(markdown(json.loads(args.render.read_text())))
        return

    from autotune.config import DEFAULT_CONFIG

    work = Path(tempfile.mkdtemp(prefix="autotune-decisions-"))
    before = bench_machine.others_cores()
    results: dict[str, Any] = {"models": {}, **bench_machine.describe(before)}
    for name in args.models.split(","):
        path = work / f"{name}.onnx"
        onnx.save(MODELS[name](), str(path))
        runs: dict[str, Any] = {}
        for condition in args.conditions.split(","):
            load = start_light_load(args.load) if condition == "light" else None
            try:
                time.sleep(0.5 if load else 0.0)
                db = work / f"{name}-{condition}.db"
                runs[condition] = search(path, db, args.trials, args.timeout)
            finally:
                if load is not None:
                    load.send_signal(signal.SIGKILL)
                    load.wait()
            print(f"  {name} {condition}: {runs[condition]}", file=sys.stderr)
        picks = [r for r in runs.values() if r.get("pick_config") and not r["pick_is_default"]]
        if picks:
            runs["check_aa"] = interleaved_check(path, DEFAULT_CONFIG.to_json(), pairs=args.pairs)
        for r in picks:
            r["check"] = interleaved_check(path, r["pick_config"], pairs=args.pairs)
        results["models"][name] = runs
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))  # what is done so far survives
    results.update(bench_machine.describe(before))  # the load after the run, too
    args.out.write_text(json.dumps(results, indent=2))
    print(markdown(results))


def _row(name: str, condition: str, r: dict[str, Any], aa: dict[str, Any] | None) -> str:
    if "error" in r:
        return f"| {name} | {condition} | error: {r['error']} | | | | | | {r['wall_s']:.0f} s |"
    claimed = "-"
    if r["speedup"] and not r["pick_is_default"]:
        low, high = r["interval"]
        claimed = f"{r['speedup']:.2f}× [{low:.2f}–{high:.2f}]"
    check = r.get("check")
    checked = f"{check['speedup']:.2f}× ({check['min']:.2f}–{check['max']:.2f})" if check else "-"
    if check and aa:
        checked += f", A/A {aa['min']:.2f}–{aa['max']:.2f}"
    resolution = "-" if r.get("resolution") is None else f"≤ {r['resolution']:.1%}"
    load = r.get("level") or "-"
    if r.get("h2h_other_cores") is not None:
        load += f" ({r['h2h_other_cores']:.2f})"
    pick = r["pick"] if r["pick"] and not r["pick_is_default"] else "-"
    return (
        f"| {name} | {condition} | {r['outcome']} | {pick} | {claimed} | {checked} | "
        f"{resolution} | {r.get('generations') or '-'} | {load} | {r['wall_s']:.0f} s |"
    )


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "| model | load | verdict | pick | claimed [95%] | checked (pairs' range) | largest gain "
        "still possible | processes | head-to-head load (others' cores) | wall |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    tally: dict[str, list[int]] = {"quiet": [0, 0], "light": [0, 0]}
    wrong = 0
    for name, runs in results["models"].items():
        for condition in ("quiet", "light"):
            r = runs.get(condition)
            if r is None:
                continue
            lines.append(_row(name, condition, r, runs.get("check_aa")))
            tally[condition][1] += 1
            tally[condition][0] += r.get("outcome") in ("pick", "default")
            check = r.get("check")
            wrong += bool(check and check["speedup"] < 0.99)
    lines.append("")
    for condition, (decisive, total) in tally.items():
        if total:
            lines.append(f"- {condition}: {decisive} of {total} decisive ({decisive / total:.0%})")
    lines.append(f"- wrong picks (checked below 0.99×): {wrong}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
