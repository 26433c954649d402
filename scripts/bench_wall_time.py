"""Does the adaptive decision cost search time? The same models searched by this checkout and by
an earlier revision of autotune, in turn, on the same machine, each search as a user runs it
(``autotune search MODEL --json``, fresh database, same trials and timeout).

    python scripts/bench_wall_time.py --before b2bb1fa --models filetype_large,ocr_det_large

The earlier revision is checked out into a temporary git worktree and run with the same
interpreter (its directory first on ``PYTHONPATH``); its database schema is its own. Searches
alternate (before, now, before, now…) so a slow phase of the machine falls on both. JSON to
--out (default docs/results/wall_time.json), markdown to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import onnx

sys.path.insert(0, str(Path(__file__).parent))
import bench_machine
from unseen_models import MODELS

ROOT = Path(__file__).resolve().parent.parent


def search(model: Path, code: Path, work: Path, trials: int, timeout: float) -> dict[str, Any]:
    """One search of ``model`` by the autotune in ``code``, in a fresh database."""
    db = Path(tempfile.mkdtemp(dir=work)) / "autotune.db"
    env = {
        **os.environ,
        "PYTHONPATH": str(code),
        "AUTOTUNE_DB": str(db),
        "AUTOTUNE_CACHE_DIR": str(db.parent / "cache"),
    }
    env.pop("AUTOTUNE_ALLOW_BUSY", None)
    cmd = [sys.executable, "-m", "autotune", "search", str(model), "--trials", str(trials)]
    cmd += ["--json", "--timeout", str(timeout)]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=work, check=False)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1], "wall_s": wall}
    data = json.loads(proc.stdout)
    verdict = data.get("verdict") or {}
    outcome = data.get("outcome") or verdict.get("outcome")
    if outcome is None:  # revisions before outcomes were stored: a pick or nothing
        outcome = "pick" if data.get("pick") else "inconclusive"
    return {"outcome": outcome, "wall_s": wall, "generations": verdict.get("generations")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True, help="the earlier git revision")
    parser.add_argument("--models", default="filetype_large,ocr_det_large")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--out", type=Path, default=Path("docs/results/wall_time.json"))
    parser.add_argument("--render", type=Path, help="Print the markdown of a results file.")
    args = parser.parse_args()
    if args.render:
        print(markdown(json.loads(args.render.read_text())))
        return
    work = Path(tempfile.mkdtemp(prefix="autotune-wall-"))
    before_code = work / "before"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before_code), args.before],
        check=True,
        capture_output=True,
    )
    revision = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    others = bench_machine.others_cores()
    results: dict[str, Any] = {"before": args.before, "now": revision, "models": {}}
    results.update(bench_machine.describe(others))
    try:
        for name in args.models.split(","):
            path = work / f"{name}.onnx"
            onnx.save(MODELS[name](), str(path))
            runs: dict[str, list[dict[str, Any]]] = {"before": [], "now": []}
            for _ in range(args.repeats):
                for side, code in (("before", before_code), ("now", ROOT)):
                    runs[side].append(search(path, code, work, args.trials, args.timeout))
                    print(f"  {name} {side}: {runs[side][-1]}", file=sys.stderr)
            results["models"][name] = runs
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2))
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before_code)],
            check=False,
            capture_output=True,
        )
    results.update(bench_machine.describe(others))
    args.out.write_text(json.dumps(results, indent=2))
    print(markdown(results))


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"| model | wall, {results['before']} (median) | verdicts | "
        f"wall, {results['now']} (median) | verdicts | processes per contender |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in results["models"].items():
        cells = []
        for side in ("before", "now"):
            walls = [r["wall_s"] for r in runs[side]]
            verdicts = ", ".join(r.get("outcome") or "error" for r in runs[side])
            cells += [f"{statistics.median(walls):.0f} s", verdicts]
        generations = ", ".join(str(r.get("generations") or "-") for r in runs["now"])
        lines.append(f"| {name} | {' | '.join(cells)} | {generations} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
