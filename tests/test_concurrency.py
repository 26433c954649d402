"""Several processes writing one database at once: nothing is lost, nothing fails as locked.

Real processes (multiprocessing with spawn, and the real ``autotune`` command), real SQLite in
WAL mode. The database does not exist before the writers start, so they also race to create it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import traceback
import uuid
from pathlib import Path
from typing import Any

import pytest

from autotune.store.database import Store
from autotune.store.records import TrialRecord
from autotune.store.sharing import merge
from tests import models

WRITERS = 4
ROWS = 200


def _trial(writer: str, i: int) -> dict[str, Any]:
    return {
        "trial_uid": uuid.uuid4().hex,
        "search_id": f"search-{writer}",
        "trial_number": i,
        "model_digest": "0" * 64,
        "model_name": "m.onnx",
        "chip": f"chip of {writer}",
        "ort_version": "1.0",
        "shapes": "x=1x16",
        "config_id": f"{writer}-{i}",
        "config": "{}",
        "status": "ok",
        "ratio": 1.0,
        "ratios": [1.0, 1.01],
        "created_at": "2026-01-01T00:00:00+00:00",
    }


def _writer(db: str, writer: str, rows: int, barrier: Any, errors: str) -> None:
    """Child process: wait for the others, then insert ``rows`` trials one by one."""
    try:
        barrier.wait(timeout=60)
        with Store.open(db, write=True) as store:
            for i in range(rows):
                store.record_trial(TrialRecord.from_row(_trial(writer, i)))
    except BaseException:
        Path(errors, f"{writer}.txt").write_text(traceback.format_exc())
        raise


def _start_writers(
    db: Path, tmp_path: Path, n: int, extra_party: bool = False
) -> tuple[list[Any], Any]:
    """Start ``n`` writers; with ``extra_party`` return once they are all at the barrier.
    The barrier is returned too: it must outlive the children's start-up (they unpickle it)."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n + int(extra_party))
    procs = [
        ctx.Process(target=_writer, args=(str(db), f"w{i}", ROWS, barrier, str(tmp_path)))
        for i in range(n)
    ]
    for p in procs:
        p.start()
    if extra_party:
        barrier.wait(timeout=60)
    return procs, barrier


def _join(procs: list[Any], tmp_path: Path) -> None:
    for p in procs:
        p.join(timeout=120)
    errors = {f.name: f.read_text() for f in tmp_path.glob("w*.txt")}
    assert [p.exitcode for p in procs] == [0] * len(procs), errors
    assert not errors


def _check(db: Path, expected: int) -> None:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM trials").fetchone()[0] == expected
        assert conn.execute("SELECT count(DISTINCT trial_uid) FROM trials").fetchone()[0] == (
            expected
        )
        per_writer = conn.execute(
            "SELECT count(*) FROM trials WHERE search_id LIKE 'search-w%' GROUP BY search_id"
        ).fetchall()
        assert {n for (n,) in per_writer} <= {ROWS}
    finally:
        conn.close()


@pytest.mark.slow
def test_four_processes_insert_800_trials(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    procs, _barrier = _start_writers(db, tmp_path, WRITERS)
    _join(procs, tmp_path)
    _check(db, WRITERS * ROWS)


@pytest.mark.slow
def test_merge_while_others_write(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    src = tmp_path / "colleague.jsonl"
    lines = []
    for i in range(300):
        row = _trial("colleague", i)
        row["ratios"] = json.dumps(row["ratios"])
        lines.append(json.dumps({"table": "trials", **row}))
    src.write_text("\n".join(lines) + "\n")
    procs, _barrier = _start_writers(db, tmp_path, 2, extra_party=True)
    (report,) = merge([src], into=db)
    _join(procs, tmp_path)
    assert (report.trials_new, report.trials_skipped) == (300, 0)
    _check(db, 2 * ROWS + 300)


@pytest.mark.slow
def test_two_searches_at_once_into_one_database(tmp_path: Path) -> None:
    db = Path(os.environ["AUTOTUNE_DB"])  # set per test by conftest; the children inherit it
    paths = [
        models.mlp(tmp_path / "narrow.onnx", width=16),
        models.mlp(tmp_path / "wide.onnx", width=96),
    ]
    cmd = [sys.executable, "-m", "autotune.commands.cli", "search"]
    procs = [
        subprocess.Popen(
            [*cmd, str(p), "--trials", "3", "--rounds", "2", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        for p in paths
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert "locked" not in err
        assert json.loads(out)["trials_measured"] == 3
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        per_model = dict(
            conn.execute("SELECT model_name, count(*) FROM trials GROUP BY model_name").fetchall()
        )
        states = conn.execute("SELECT state FROM searches").fetchall()
    finally:
        conn.close()
    assert per_model == {"narrow.onnx": 3, "wide.onnx": 3}
    assert sorted(states) == [("done",), ("done",)]
