"""Long runs with varying shapes: which configurations' memory grows? (``autotune soak``'s flags)

    python scripts/bench_soak.py                        # 3 soaks of 8 s per configuration
    python scripts/bench_soak.py --seconds 30 --repeats 2

The model is the soak test's (``tests/models.py::sequence``: x[batch, seq, 64] -> MatMul 256 ->
Relu -> MatMul 64 -> Softmax), each run's shape drawn from batch 1..16 x seq 1..512. Each
configuration is soaked ``--repeats`` times, each in a fresh process (``autotune.serving.soak``,
windows of 0.5 s, the first 20% warm-up): ORT's defaults (arena and memory patterns), the arena
without memory patterns, no arena (every buffer through malloc), and, when its plugin registers a
CPU device here, the OpenVINO plugin EP with its defaults. JSON to --out (default
docs/results/soak.json), which docs/serving.md renders.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.models
import bench_machine

RANGES = "x=1..16x1..512x64"


def configurations() -> dict[str, Any]:
    from autotune.config import DEFAULT_CONFIG
    from tests.models import openvino_plugin_config

    found = {
        "ORT's defaults (arena, memory patterns)": DEFAULT_CONFIG,
        "arena, no memory patterns": replace(DEFAULT_CONFIG, enable_mem_pattern=False),
        "no arena": replace(DEFAULT_CONFIG, enable_cpu_mem_arena=False),
    }
    plugin = openvino_plugin_config()
    if plugin is not None:
        found["OpenVINO plugin EP, its defaults"] = plugin
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(bench_machine.RESULTS) / "soak.json")
    args = parser.parse_args()

    from autotune.serving.soak import parse_shape_ranges, soak
    from tests.models import sequence

    others_before = bench_machine.others_cores()
    model = sequence(Path(tempfile.mkdtemp(prefix="autotune-soak-")) / "sequence.onnx")
    ranges = parse_shape_ranges([RANGES])
    rows = []
    for label, config in configurations().items():
        for i in range(args.repeats):
            result = soak(model, config, args.seconds, ranges, window_s=0.5, seed=i)
            found = {k: v for k, v in result.to_dict().items() if k != "windows"}
            found.update(label=label, config=config.describe(), runs=result.windows[-1].total_runs)
            rows.append(found)
            print(json.dumps(found), flush=True)
    results = {
        **bench_machine.describe(others_before),
        "shapes": RANGES,
        "seconds": args.seconds,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
