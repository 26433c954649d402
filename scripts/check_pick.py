"""An independent check of a stored pick: is it faster than ORT's defaults here, in fresh processes?

    python scripts/check_pick.py MODEL.onnx PICK.json [--pairs 6] [--rounds 15]
    python scripts/check_pick.py MODEL.onnx default          # A/A: the default against itself

None of autotune's measurement code runs: each side is a fresh Python process that builds its
session the way an app does (``autotune.build.build_session``, what ``best_session`` uses) and
times runs with its own ``perf_counter`` loop when told to. A *pair* is one fresh process of the
pick and one of the default, alive together; the harness asks each in turn (random order per
round) for one block of runs (about 0.1 s) and takes the ratio of the two block medians, so both
sides of a ratio see the same moment of the machine. The pair's speed-up is the median ratio
over its rounds; the check's is the median over pairs (each pair new processes), with the
pairs' range. A pick is wrong when that speed-up is below 0.99.

Prints one JSON object: speedup (default p50 / pick p50, higher is better), min, max, pairs.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

SIDE = r"""
import statistics, sys, time
from autotune.build import build_session
from autotune.config import SessionConfig
from autotune.model import load_model_info, resolve_shapes, synthetic_feeds
path, config = sys.argv[1], SessionConfig.from_json(sys.argv[2])
info = load_model_info(path)
feeds = synthetic_feeds(info, resolve_shapes(info, {}))
session = build_session(path, config)
for _ in range(5):
    session.run(None, feeds)
print("ready", flush=True)
for line in sys.stdin:
    runs = int(line)
    if runs <= 0:
        break
    session.run(None, feeds)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1000.0)
    print(statistics.median(times), flush=True)
"""


class Side:
    """One fresh process holding one session, timing a block of runs when asked."""

    def __init__(self, model: Path, config_json: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SIDE, str(model), config_json],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the session process for {config_json[:80]} failed")

    def block(self, runs: int) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{runs}\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.write("0\n")
            self.proc.stdin.close()
        self.proc.wait(30)


def check(model: Path, pick_json: str, *, pairs: int = 6, rounds: int = 15) -> dict[str, Any]:
    from autotune.config import DEFAULT_CONFIG

    default_json = DEFAULT_CONFIG.to_json()
    per_pair = []
    for _ in range(pairs):
        sides = {"pick": Side(model, pick_json), "default": Side(model, default_json)}
        try:
            probe = sides["default"].block(3)
            runs = max(1, min(2000, round(100.0 / max(probe, 1e-3))))  # ~0.1 s blocks
            ratios = []
            for _ in range(rounds):
                order = list(sides)
                random.shuffle(order)
                medians = {name: sides[name].block(runs) for name in order}
                ratios.append(medians["default"] / medians["pick"])
            per_pair.append(statistics.median(ratios))
        finally:
            for side in sides.values():
                side.close()
    return {
        "speedup": statistics.median(per_pair),
        "min": min(per_pair),
        "max": max(per_pair),
        "pairs": per_pair,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("pick", help="a SessionConfig JSON file, or 'default' for an A/A check")
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    from autotune.config import DEFAULT_CONFIG

    pick = DEFAULT_CONFIG.to_json() if args.pick == "default" else Path(args.pick).read_text()
    print(json.dumps(check(args.model, pick, pairs=args.pairs, rounds=args.rounds)))


if __name__ == "__main__":
    main()
