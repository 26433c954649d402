"""Models autotune's own examples do not cover: is a stored pick ever slower than ORT's defaults?

    python scripts/bench_unseen.py                      # lstm, ffn, branches; 2 searches each
    python scripts/bench_unseen.py --models branches --searches 3

Three models built here, unlike the four examples: ``lstm`` (one LSTM, 64 steps, hidden 256,
batch 4), ``ffn`` (four pre-norm feed-forward blocks, 128 × 512 → 2048 → 512) and ``branches``
(eight independent chains of twelve 64 × 64 MatMul + Tanh on a 16 × 64 input, concatenated: many
tiny ops, where ORT's intra-op threads cost more than they give). For each, ``--searches``
searches run one after another on one database, as a user who reruns ``autotune search`` after
an inconclusive verdict does (measured trials are kept; each run has its own head-to-head),
following its advice: when an A/A veto names a margin the machine can resolve ("run again with
--min-gain M"), the next search uses it.
Every stored pick that is not ORT's default is then checked by ``scripts/check_pick.py``
(fresh processes of the pick and the default alive together, none of autotune's measurement
code), with the check's own A/A (default against default). A wrong pick: its checked speed-up
is below 0.99. Markdown to stdout, JSON to --out (default docs/results/unseen.json).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).parent))
import bench_machine
from bench_under_load import verdict_of
from check_pick import check as interleaved_check


def _model(nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: list[Any]) -> Any:
    graph = helper.make_graph(nodes, "unseen", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _tensor(rng: np.random.Generator, shape: tuple[int, ...], scale: float, name: str) -> Any:
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def lstm() -> Any:
    rng = np.random.default_rng(0)
    hidden, features, steps, batch = 256, 128, 64, 4
    inits = [
        _tensor(rng, (1, 4 * hidden, features), 1 / 16, "W"),
        _tensor(rng, (1, 4 * hidden, hidden), 1 / 16, "R"),
        numpy_helper.from_array(np.zeros((1, 8 * hidden), np.float32), "B"),
    ]
    node = helper.make_node("LSTM", ["x", "W", "R", "B"], ["y", "yh"], hidden_size=hidden)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [steps, batch, features])
    yh = helper.make_tensor_value_info("yh", TensorProto.FLOAT, [1, batch, hidden])
    return _model([node], [x], [yh], inits)


def ffn() -> Any:
    rng = np.random.default_rng(0)
    width, inner = 512, 2048
    nodes, inits, cur = [], [], "x"
    for k in range(4):
        inits += [
            _tensor(rng, (width, inner), 1 / 32, f"w1_{k}"),
            _tensor(rng, (inner, width), 1 / 64, f"w2_{k}"),
            numpy_helper.from_array(np.ones(width, np.float32), f"s{k}"),
            numpy_helper.from_array(np.zeros(width, np.float32), f"b{k}"),
        ]
        nodes += [
            helper.make_node("LayerNormalization", [cur, f"s{k}", f"b{k}"], [f"ln{k}"], axis=-1),
            helper.make_node("MatMul", [f"ln{k}", f"w1_{k}"], [f"h{k}"]),
            helper.make_node("Relu", [f"h{k}"], [f"r{k}"]),
            helper.make_node("MatMul", [f"r{k}", f"w2_{k}"], [f"o{k}"]),
            helper.make_node("Add", [cur, f"o{k}"], [f"x{k + 1}"]),
        ]
        cur = f"x{k + 1}"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 128, width])
    y = helper.make_tensor_value_info(cur, TensorProto.FLOAT, [1, 128, width])
    return _model(nodes, [x], [y], inits)


def branches() -> Any:
    rng = np.random.default_rng(1)
    nodes, inits, ends = [], [], []
    for b in range(8):
        cur = "x"
        for k in range(12):
            inits.append(_tensor(rng, (64, 64), 1 / 8, f"w{b}_{k}"))
            nodes += [
                helper.make_node("MatMul", [cur, f"w{b}_{k}"], [f"m{b}_{k}"]),
                helper.make_node("Tanh", [f"m{b}_{k}"], [f"t{b}_{k}"]),
            ]
            cur = f"t{b}_{k}"
        ends.append(cur)
    nodes.append(helper.make_node("Concat", ends, ["y"], axis=-1))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [16, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [16, 512])
    return _model(nodes, [x], [y], inits)


MODELS: dict[str, Callable[[], Any]] = {"lstm": lstm, "ffn": ffn, "branches": branches}


def search(
    model: Path, db: Path, trials: int, timeout: float, min_gain: str | None
) -> dict[str, Any]:
    env = {**os.environ, "AUTOTUNE_DB": str(db), "AUTOTUNE_CACHE_DIR": str(db.parent / "cache")}
    cmd = [sys.executable, "-m", "autotune", "search", str(model), "--trials", str(trials)]
    cmd += ["--json", "--timeout", str(timeout)]
    if min_gain:
        cmd += ["--min-gain", min_gain]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:], "wall_s": wall}
    return {
        **verdict_of(json.loads(proc.stdout)),
        "min_gain": min_gain,
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--searches", type=int, default=2)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=180)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("docs/results/unseen.json"))
    args = parser.parse_args()

    from autotune.measure.load import LoadMonitor

    work = Path(tempfile.mkdtemp(prefix="autotune-unseen-"))
    results: dict[str, Any] = {"others_cores_before": LoadMonitor().measure(2.0).other_cores}
    psutil_before = bench_machine.others_cores()
    for name in args.models.split(","):
        path = work / f"{name}.onnx"
        onnx.save(MODELS[name](), str(path))
        runs: list[dict[str, Any]] = []
        for i in range(args.searches):
            advice = (
                re.search(r"--min-gain ([0-9.]+)", runs[-1].get("reason") or "") if runs else None
            )
            margin = advice.group(1) if advice else None
            runs.append(search(path, work / f"{name}.db", args.trials, args.timeout, margin))
            print(f"  {name} search {i}: {runs[-1]}", file=sys.stderr)
        from autotune.config import DEFAULT_CONFIG

        aa = interleaved_check(path, DEFAULT_CONFIG.to_json(), pairs=args.pairs)
        for run in runs:
            if run.get("pick_config") and not run.get("pick_is_default"):
                run["check"] = interleaved_check(path, run["pick_config"], pairs=args.pairs)
        results[name] = {"searches": runs, "check_aa": aa}
    results["others_cores_after"] = LoadMonitor().measure(2.0).other_cores
    results.update(bench_machine.describe(psutil_before))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(markdown(results))


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"others' CPU before / after: {results['others_cores_before']:.2f} / "
        f"{results['others_cores_after']:.2f} cores",
        "",
        "| model | search | --min-gain | outcome | pick | claimed [95%] | A/A in the verdict "
        "| checked (min–max of pairs) | check's A/A | wall |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        if not isinstance(r, dict):
            continue
        aa = r["check_aa"]
        for i, s in enumerate(r["searches"], 1):
            if "error" in s:
                lines.append(f"| {name} | {i} | | error: {s['error']} | | | | | | |")
                continue
            claimed = "-"
            if s["speedup"] and not s["pick_is_default"]:
                low, high = s["interval"]
                claimed = f"{s['speedup']:.3f}× [{low:.3f}–{high:.3f}]"
            check = s.get("check")
            checked = (
                f"{check['speedup']:.3f}× ({check['min']:.3f}–{check['max']:.3f})" if check else "-"
            )
            spread = "-" if s["aa_spread"] is None else f"{s['aa_spread']:.1%}"
            lines.append(
                f"| {name} | {i} | {s.get('min_gain') or '0.03'} | {s['outcome']} | "
                f"{s['pick'] or '-'} | {claimed} | {spread} | "
                f"{checked} | {aa['min']:.3f}–{aa['max']:.3f} | {s['wall_s']:.0f} s |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
