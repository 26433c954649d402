"""How far apart do fresh processes of one configuration run, and does ORT's thread pinning
explain it?

    python scripts/bench_process_spread.py                    # four example models, 8 processes
    python scripts/bench_process_spread.py --models transformer --processes 12

For each model and each of two configurations that run the same number of intra-op threads,
ORT's default (``intra_op_num_threads=0``: on Linux ORT pins each intra-op worker thread to a
core) and the explicit count (``tN``, N = usable cores: unpinned), start fresh processes one
after another, each timing the model for ``--seconds`` after a warm-up; report each
configuration's median p50 and the spread of the processes' p50s ((max - min) / min). Done on a
quiet machine and again while a background process keeps one core busy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import bench_machine
from bench_under_load import timed_process


def spread(values: list[float]) -> float:
    return max(values) / min(values) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="mlp,mobilenetv2,transformer,resnet50")
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument(
        "--out", type=Path, default=Path(bench_machine.RESULTS) / "process_spread.json"
    )
    args = parser.parse_args()

    from autotune.chip import usable_cores
    from autotune.config import DEFAULT_CONFIG, SessionConfig
    from autotune.examples import write_example

    cores = usable_cores()
    configs = {
        "t0 (ORT default, pinned)": DEFAULT_CONFIG.to_json(),
        f"t{cores} (explicit, unpinned)": SessionConfig(intra_op_num_threads=cores).to_json(),
    }
    work = Path(tempfile.mkdtemp(prefix="autotune-spread-"))
    others_before = bench_machine.others_cores()
    rows: list[dict[str, Any]] = []
    print("| model | machine | configuration | median p50 | process spread |")
    print("|---|---|---|---|---|")
    for name in args.models.split(","):
        model = write_example(name, work / f"{name}.onnx")
        for phase in ("quiet", "one core busy"):
            hog = None
            if phase != "quiet":
                hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                time.sleep(1.0)
            try:
                p50s: dict[str, list[float]] = {label: [] for label in configs}
                for _ in range(args.processes):  # alternate, so drift hits both alike
                    for label, cfg in configs.items():
                        p50s[label].append(timed_process(model, cfg, args.seconds))
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
            for label, values in p50s.items():
                rows.append({"model": name, "phase": phase, "config": label, "p50_ms": values})
                print(
                    f"| {name} | {phase} | {label} | {statistics.median(values):.3f} ms "
                    f"| {spread(values):.1%} |",
                    flush=True,
                )
    results = {**bench_machine.describe(others_before), "processes": args.processes, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
