"""kill -9 in the middle of a search: nothing finished is lost, the database is sound, and the
same command resumes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autotune.tuning.search import SearchOptions, run_search
from tests.conftest import FAST


def _count(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db, timeout=10)
    try:
        return int(conn.execute("select count(*) from trials").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


@pytest.mark.slow
def test_kill_9_then_resume(mlp_path: Path, tmp_path: Path) -> None:
    db = tmp_path / "autotune.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "autotune.commands.cli", "search", str(mlp_path), "--trials", "40"],
        env={**os.environ, "AUTOTUNE_DB": str(db)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while _count(db) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = _count(db)
    assert stored >= 3
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    outcome = run_search(mlp_path, SearchOptions(trials=stored + 2, protocol=FAST, db=str(db)))
    assert outcome.resumed == stored
    assert outcome.measured == 2
    assert _count(db) == stored + 2


def _states(db: Path) -> list[tuple[str, str | None, str | None]]:
    conn = sqlite3.connect(db, timeout=10)
    try:
        rows = conn.execute("select state, pick_config, error from searches").fetchall()
        return [(r[0], r[1], r[2]) for r in rows]
    finally:
        conn.close()


@pytest.mark.slow
def test_sigterm_marks_the_search_interrupted_and_leaves_no_pick(
    mlp_path: Path, tmp_path: Path
) -> None:
    db = tmp_path / "autotune.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "autotune.commands.cli", "search", str(mlp_path), "--trials", "40"],
        env={**os.environ, "AUTOTUNE_DB": str(db)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while _count(db) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Interrupted" in err and "Traceback" not in err
    assert _states(db) == [("interrupted", None, None)]


@pytest.mark.slow
def test_a_killed_search_is_marked_interrupted_by_the_next_one(
    mlp_path: Path, tmp_path: Path
) -> None:
    db = tmp_path / "autotune.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "autotune.commands.cli", "search", str(mlp_path), "--trials", "40"],
        env={**os.environ, "AUTOTUNE_DB": str(db)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while _count(db) < 1 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert [s[0] for s in _states(db)] == ["running"]  # kill -9 gives no chance to say more
    run_search(mlp_path, SearchOptions(trials=_count(db) + 1, protocol=FAST, db=str(db)))
    assert sorted(s[0] for s in _states(db)) == ["done", "interrupted"]


@pytest.mark.slow
def test_a_search_that_fails_is_marked_failed_with_its_error(
    mlp_path: Path, tmp_path: Path
) -> None:
    from autotune.tuning.search import Event

    def progress(event: Event) -> None:
        if event.kind == "final":
            raise RuntimeError("the disk is full")

    db = tmp_path / "autotune.db"
    try:
        run_search(mlp_path, SearchOptions(trials=2, protocol=FAST, db=str(db)), progress)
    except RuntimeError:
        pass
    else:
        raise AssertionError("the error was swallowed")
    ((state, pick, error),) = _states(db)
    assert state == "failed" and pick is None
    assert error == "RuntimeError: the disk is full"
