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

from autotune.search import SearchOptions, run_search
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


def test_kill_9_then_resume(mlp_path: Path, tmp_path: Path) -> None:
    db = tmp_path / "autotune.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "autotune.cli", "search", str(mlp_path), "--trials", "40"],
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
