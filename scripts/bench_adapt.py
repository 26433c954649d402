"""What ``autotune adapt`` costs and decides on the example models.

For each example model, a fresh database holds results relabelled to a sibling chip (this
machine's chip with other core counts), so this machine has no result of its own and
``best_config`` borrows; then ``autotune adapt`` runs (its own process, as an app's background
adapt would) and the script reports its wall time, its outcome (the pick and its ratio to ORT's
defaults measured here) and whether the next lookup is exact.

The borrowed results are either a real database's (``--from-db PATH``: this chip's results in
it, relabelled) or, by default, three stated candidates: graph optimizations at BASIC, one
intra-op thread, spinning off, each stored as a trial and a finished search's pick (what apps
borrow) with a made-up ratio of 0.9 (adapt never trusts a stored ratio: it re-measures).

    python scripts/bench_adapt.py [--example mlp --example transformer] [--budget 30]
                                  [--from-db PATH] [--json] [--out docs/results/adapt.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import bench_machine
from check_pick import check as interleaved_check

from autotune.chip import current_chip, current_descriptor
from autotune.config import DEFAULT_CONFIG, SessionConfig
from autotune.digest import model_digest
from autotune.examples import EXAMPLES, write_example
from autotune.store.database import Store
from autotune.store.records import Outcome, SearchRecord, SearchState, Status, TrialRecord

CANDIDATES = [
    SessionConfig(graph_optimization_level="ORT_ENABLE_BASIC"),
    SessionConfig(intra_op_num_threads=1),
    SessionConfig(session_entries={"session.intra_op.allow_spinning": "0"}),
]


def _sibling() -> tuple[str, str]:
    chip, desc = current_chip(), current_descriptor()
    cores = chip.cores + 6
    text = f"{chip.cpu} ({cores} cores)" + "".join(f" + {a}" for a in chip.accelerators)
    p = (desc.performance_cores or chip.cores) + 6
    from dataclasses import replace

    return text, replace(desc, cores=cores, performance_cores=p).to_json()


def _seed(db: Path, model: Path, source: Path | None) -> None:
    chip = current_chip()
    if source is not None:
        shutil.copy(source, db)
    else:
        from autotune.model import load_model_info, resolve_shapes, shape_signature

        signature = shape_signature(resolve_shapes(load_model_info(model)))
        key: dict[str, Any] = {
            "model_digest": model_digest(model),
            "model_name": model.name,
            "chip": chip.chip_id,
            "ort_version": chip.ort_version,
            "shapes": signature,
            "default_shapes": 1,
        }
        with Store.open(str(db), write=True) as store:
            for i, cfg in enumerate(c.canonical() for c in CANDIDATES):
                ratio = 0.9 + i * 0.01
                store.record_trial(
                    TrialRecord(
                        **key,
                        trial_uid=f"bench-{i}",
                        config_id=cfg.config_id,
                        config=cfg.to_json(),
                        status=Status.OK,
                        ratio=ratio,
                    )
                )
                # apps (and adapt) borrow verdicts, never single trials: one search per candidate
                store.upsert_search(
                    SearchRecord(
                        **key,
                        search_id=f"bench-s{i}",
                        state=SearchState.DONE,
                        finished_at=f"2026-11-2{i}T00:00:00+00:00",
                        objective="latency",
                        outcome=Outcome.PICK,
                        pick_config_id=cfg.config_id,
                        pick_config=cfg.to_json(),
                        pick_label=cfg.describe(),
                        pick_ratio=ratio,
                        speedup=1 / ratio,
                    )
                )
    sibling, desc = _sibling()
    conn = sqlite3.connect(db)
    for table in ("trials", "searches"):
        conn.execute(
            f"UPDATE {table} SET chip = ?, chip_descriptor = ? WHERE chip = ?",
            [sibling, desc, chip.chip_id],
        )
    conn.commit()
    conn.close()


def run_one(
    name: str, budget: float, source: Path | None, work: Path, pairs: int = 0
) -> dict[str, Any]:
    model = write_example(name, work / f"{name}.onnx")
    db = work / f"{name}.db"
    _seed(db, model, source)
    env = {**os.environ, "AUTOTUNE_DB": str(db)}
    started = time.monotonic()
    command = ["adapt", str(model), "--budget", str(budget), "--json"]
    out = subprocess.run(
        [sys.executable, "-m", "autotune.commands.cli", *command],
        capture_output=True,
        text=True,
        env=env,
        timeout=budget * 10 + 120,
        check=False,
    )
    wall = time.monotonic() - started
    if out.returncode != 0:
        return {"example": name, "error": out.stdout.strip() + out.stderr.strip()[-400:]}
    result = json.loads(out.stdout)
    check = subprocess.run(
        [sys.executable, "-m", "autotune.commands.cli", "best", str(model), "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    after = json.loads(check.stdout) if check.returncode == 0 else None
    picked = SessionConfig.from_dict(result["pick"]) if result.get("pick") else None
    independent = aa = None
    if pairs and picked is not None and picked.config_id != DEFAULT_CONFIG.config_id:
        # the stored pick against ORT's defaults in fresh processes, none of autotune's timing;
        # and the defaults against themselves: the check's A/A
        independent = interleaved_check(model, picked.to_json(), pairs=pairs)
        aa = interleaved_check(model, DEFAULT_CONFIG.to_json(), pairs=pairs)
    return {
        "example": name,
        "process_wall_s": round(wall, 1),
        "adapt_wall_s": round(result["wall_s"], 1),
        "status": result["status"],
        "message": result["message"],
        "pick": result["pick_label"],
        "pick_ratio": result["pick_ratio"],
        "rounds": result["rounds"],
        "compared": [(c["label"], c["ratio"]) for c in result["compared"]],
        "next_lookup_exact": bool(after and not after["borrowed"]),
        "check": independent,
        "check_aa": aa,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", action="append", choices=sorted(EXAMPLES))
    parser.add_argument("--budget", type=float, default=30.0)
    parser.add_argument("--from-db", type=Path)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--pairs", type=int, default=6, help="check a stored pick in this many fresh pairs (0: no)"
    )
    parser.add_argument("--out", type=Path, help="write the rows with the machine and load (JSON)")
    args = parser.parse_args()
    names = args.example or sorted(EXAMPLES)
    others_before = bench_machine.others_cores()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            rows.append(run_one(name, args.budget, args.from_db, Path(tmp), args.pairs))
            if not args.json:
                print(json.dumps(rows[-1]), flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        found = {**bench_machine.describe(others_before), "budget_s": args.budget, "runs": rows}
        args.out.write_text(json.dumps(found, indent=2))


if __name__ == "__main__":
    main()
