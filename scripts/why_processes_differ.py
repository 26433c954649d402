"""Why do two fresh processes of one configuration run at different speeds? (Linux)

    python scripts/why_processes_differ.py --model mobilenetv2 --processes 8
    python scripts/why_processes_differ.py --model mlp --no-aslr
    python scripts/why_processes_differ.py --config '{"intra_op_num_threads": 2}'

Starts ``--processes`` fresh processes of one configuration (ORT's default unless ``--config``),
all alive together, and asks them in turn (random order each round) for one block of runs
(``--block`` seconds), so every process is timed at the same moments of the machine. Each block
also reports, for each thread that did work during it, the CPU time it used, the CPU it last ran
on (``/proc/self/task/*/stat``) and its affinity. Printed:

- the A/A spread of the processes' median blocks, (max - min) / min;
- the same with every block divided by its round's median block ("paired": a change of the
  machine's speed that lasts longer than a round cancels out);
- the correlation of each process's first-half and second-half medians: near 1 when a process
  is persistently fast or slow, near 0 when the differences come from the machine, not the
  process;
- per process: its median relative to the fastest, its parallelism (CPU time over wall time
  during a block: near the thread count when ORT's threads ran side by side), how often its two
  busiest threads were last seen on one CPU, and the threads' affinities and CPUs.

With ``--out FILE`` the run's figures are added to that results file (docs/benchmarks.md's "Why
two processes of one configuration differ" is rendered from docs/results/processes_differ.json).
A diagnostic, not product code.
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import bench_machine

SIDE = r"""
import json, os, statistics, sys, time
from autotune.build import build_session
from autotune.config import SessionConfig
from autotune.model import load_model_info, resolve_shapes, synthetic_feeds

TICK = os.sysconf("SC_CLK_TCK")

def threads():
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the ")": state is field 3, utime 14, stime 15, processor 39 (1-based in proc(5))
        cpu_s = (int(fields[11]) + int(fields[12])) / TICK
        try:
            aff = sorted(os.sched_getaffinity(int(tid)))
        except OSError:
            aff = []
        out[tid] = (cpu_s, int(fields[36]), aff)
    return out

path, config = sys.argv[1], SessionConfig.from_json(sys.argv[2])
info = load_model_info(path)
feeds = synthetic_feeds(info, resolve_shapes(info, {}))
session = build_session(path, config)
for _ in range(5):
    session.run(None, feeds)
print("ready", flush=True)
main_tid = str(os.getpid())
for line in sys.stdin:
    runs = int(line)
    if runs <= 0:
        break
    session.run(None, feeds)
    before, t_start = threads(), time.perf_counter()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1000.0)
    wall = time.perf_counter() - t_start
    after = threads()
    busy = []
    for tid, (cpu_s, cpu, aff) in after.items():
        used = cpu_s - before.get(tid, (0.0, 0, []))[0]
        if used > 0:
            busy.append({"main": tid == main_tid, "cpu_s": used, "cpu": cpu, "aff": aff})
    busy.sort(key=lambda t: -t["cpu_s"])
    print(json.dumps({"ms": statistics.median(times), "wall": wall, "threads": busy}), flush=True)
"""


class Side:
    def __init__(self, model: Path, config_json: str, prefix: list[str]) -> None:
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-c", SIDE, str(model), config_json],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("a session process failed")

    def block(self, runs: int) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{runs}\n")
        self.proc.stdin.flush()
        result: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return result

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.write("0\n")
            self.proc.stdin.close()
        self.proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mobilenetv2")
    parser.add_argument("--config", default="{}", help="SessionConfig fields as JSON")
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--block", type=float, default=0.1, help="seconds of runs per block")
    parser.add_argument(
        "--no-aslr",
        action="store_true",
        help="start every process with the same address-space layout (setarch -R)",
    )
    parser.add_argument("--out", type=Path, help="add this run's figures to a results file")
    args = parser.parse_args()
    others_before = bench_machine.others_cores()
    prefix = ["setarch", os.uname().machine, "-R"] if args.no_aslr else []

    from autotune.config import SessionConfig
    from autotune.examples import write_example

    model = write_example(args.model, Path(tempfile.mkdtemp()) / f"{args.model}.onnx")
    config_json = SessionConfig(**json.loads(args.config)).to_json()
    sides = [Side(model, config_json, prefix) for _ in range(args.processes)]
    try:
        probe = sides[0].block(3)["ms"]
        runs = max(1, min(2000, round(args.block * 1000.0 / max(probe, 1e-3))))
        blocks: list[list[dict[str, Any]]] = [[] for _ in sides]
        for _ in range(args.rounds):
            order = list(range(len(sides)))
            random.shuffle(order)
            for i in order:
                blocks[i].append(sides[i].block(runs))
    finally:
        for side in sides:
            side.close()

    medians = [statistics.median(b["ms"] for b in bl) for bl in blocks]
    # paired: each block over the median block of its round (all processes timed within about
    # one second), which takes out the machine's slower and faster phases longer than a round
    by_round = [statistics.median(bl[r]["ms"] for bl in blocks) for r in range(args.rounds)]
    paired = [statistics.median(b["ms"] / by_round[r] for r, b in enumerate(bl)) for bl in blocks]
    half = args.rounds // 2
    firsts = [statistics.median(b["ms"] for b in bl[:half]) for bl in blocks]
    seconds = [statistics.median(b["ms"] for b in bl[half:]) for bl in blocks]
    fastest = min(medians)
    ranks = statistics.correlation(firsts, seconds) if len(firsts) > 2 else float("nan")
    print(
        f"{args.model} {config_json}: {args.processes} processes, {args.rounds} rounds of "
        f"{runs} runs; A/A spread {max(medians) / fastest - 1:.1%}, paired within rounds "
        f"{max(paired) / min(paired) - 1:.1%}; correlation of the "
        f"processes' first and second halves {ranks:.2f}{' (no ASLR)' if args.no_aslr else ''}"
    )
    for i, bl in enumerate(blocks):
        par = statistics.median(sum(t["cpu_s"] for t in b["threads"]) / b["wall"] for b in bl)
        shared = sum(
            1
            for b in bl
            if len(b["threads"]) >= 2 and b["threads"][0]["cpu"] == b["threads"][1]["cpu"]
        ) / len(bl)
        last = bl[-1]["threads"][:3]
        desc = ", ".join(
            f"{'main' if t['main'] else 'worker'} aff={t['aff']} cpu={t['cpu']}" for t in last
        )
        print(
            f"  process {i}: {medians[i] / fastest:.3f}x ({medians[i]:.2f} ms; halves "
            f"{firsts[i] / min(firsts):.3f} {seconds[i] / min(seconds):.3f})  "
            f"parallelism {par:.2f}  same-cpu {shared:.0%}  [{desc}]"
        )
    if args.out:
        caller_worker_shared = sum(
            1
            for bl in blocks
            for b in bl
            if len(b["threads"]) >= 2 and b["threads"][0]["cpu"] == b["threads"][1]["cpu"]
        )
        record = {
            "model": args.model,
            "config": SessionConfig.from_json(config_json).describe(),
            "aslr": not args.no_aslr,
            "processes": args.processes,
            "rounds": args.rounds,
            "ms": round(statistics.median(medians), 4),
            "spread": max(medians) / fastest - 1,
            "paired": max(paired) / min(paired) - 1,
            "halves_correlation": ranks,
            "blocks_sharing_a_cpu": caller_worker_shared,
            "blocks": sum(len(bl) for bl in blocks),
        }
        found = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
        found["runs"].append(record)
        found.update(bench_machine.describe(others_before))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(found, indent=2))


if __name__ == "__main__":
    main()
