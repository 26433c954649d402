"""The SQLite schema, its migrations and its refusals, on real SQLite files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from autotune.errors import DatabaseError
from autotune.store.database import KNOWN_MIGRATIONS, Store, migrations, open_writable
from autotune.store.records import TrialRecord


def test_blank_database_migrates_to_the_schema(tmp_path: Path) -> None:
    db = open_writable(tmp_path / "new.db")
    assert {m.name for m in migrations.applied(db)} == KNOWN_MIGRATIONS
    trials = db["trials"].columns_dict
    for column, kind in {
        "trial_uid": str,
        "model_digest": str,
        "chip": str,
        "ort_version": str,
        "shapes": str,
        "config": str,
        "status": str,
        "ratio": float,
        "latency_ms_p50": float,
        "session_create_ms": float,
        "first_run_ms": float,
        "peak_rss_mb": float,
        "created_at": str,
        "autotune_version": str,
        "host_id": str,
        "placement": str,
    }.items():
        assert trials[column] is kind, column
    assert "pick_config" in db["searches"].columns_dict
    assert db.journal_mode == "wal"
    # opening again applies nothing twice
    db.conn.close()
    again = open_writable(tmp_path / "new.db")
    assert len(migrations.applied(again)) == len(KNOWN_MIGRATIONS)


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="is a directory"):
        open_writable(tmp_path)


def test_read_only_file_in_read_only_directory(tmp_path: Path) -> None:
    """A team database shipped in a read-only app bundle (WAL mode, where SQLite cannot create
    its -shm file) opens read-only. The file system is really read-only: a read-only bind mount,
    which even root cannot write to."""
    import subprocess

    src, bundle = tmp_path / "src", tmp_path / "bundle"
    src.mkdir()
    bundle.mkdir()
    db = open_writable(src / "team.db")  # a WAL database, as autotune writes them
    db["trials"].insert(  # type: ignore[union-attr]
        {"trial_uid": "u1", "model_digest": "d", "chip": "c", "ort_version": "v",
         "shapes": "x=1", "config_id": "i", "status": "ok"}
    )  # fmt: skip
    db.conn.close()
    mounted = subprocess.run(["mount", "--bind", str(src), str(bundle)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {mounted.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(bundle)], check=True)
        with pytest.raises(OSError):
            (bundle / "probe").write_text("x")
        store = Store([tmp_path / "mine.db", bundle / "team.db"], write=False)
        assert [r.trial_uid for r in store.trials_of_model("d")] == ["u1"]
        store.close()
    finally:
        # fails ("target is busy") if a connection to the file was left open
        unmounted = subprocess.run(["umount", str(bundle)], capture_output=True)
    assert unmounted.returncode == 0, unmounted.stderr
    assert not (tmp_path / "mine.db").exists()  # reading never creates the personal database


def test_layers_read_all_and_write_first(tmp_path: Path) -> None:
    team = open_writable(tmp_path / "team.db")
    team["trials"].insert(  # type: ignore[union-attr]
        {
            "trial_uid": "t1",
            "model_digest": "d",
            "chip": "c",
            "ort_version": "v",
            "shapes": "x=1",
            "config_id": "i",
            "status": "ok",
            "created_at": "2026",
        }
    )
    team.conn.close()
    store = Store([tmp_path / "mine.db", tmp_path / "team.db"], write=True)
    store.record_trial(
        TrialRecord.from_row(
            {
                "trial_uid": "m1",
                "model_digest": "d",
                "chip": "c",
                "ort_version": "v",
                "shapes": "x=1",
                "config_id": "j",
                "status": "ok",
                "created_at": "2026",
            }
        )
    )
    assert {r.trial_uid for r in store.trials_of_model("d")} == {"t1", "m1"}
    store.close()
    conn = sqlite3.connect(tmp_path / "team.db")
    assert conn.execute("select count(*) from trials").fetchone()[0] == 1  # team db untouched
    conn.close()


def test_failed_migration_rolls_back(tmp_path: Path) -> None:
    from autotune.store import database as store_module

    path = tmp_path / "half.db"
    open_writable(path).conn.close()

    @store_module.migrations()  # type: ignore[untyped-decorator]
    def m900_broken(db: sqlite_utils.Database) -> None:
        db["scratch"].insert({"a": 1})  # type: ignore[union-attr]
        raise RuntimeError("boom")

    try:
        with pytest.raises(RuntimeError):
            open_writable(path)
        conn = sqlite3.connect(path)
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
        conn.close()
        assert "scratch" not in tables
    finally:
        store_module.migrations._migrations.pop()


def test_older_database_is_upgraded_on_first_write_keeping_its_rows(tmp_path: Path) -> None:
    import sqlite_utils

    from autotune.store.schema import migrations as schema_migrations

    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    schema_migrations.apply(old, stop_before="m002_cached_load_time")  # as autotune 0.1 left it
    old["trials"].insert(  # type: ignore[union-attr]
        {
            "trial_uid": "u",
            "model_digest": "d",
            "chip": "c",
            "ort_version": "v",
            "shapes": "x=1",
            "config_id": "i",
            "status": "ok",
        }
    )
    old.conn.close()
    # a read does not write
    ro = Store([path], write=False)
    assert len(ro.trials_of_model("d")) == 1
    ro.close()
    conn = sqlite3.connect(path)
    assert "cached_session_create_ms" not in [
        r[1] for r in conn.execute("PRAGMA table_info(trials)")
    ]
    conn.close()
    # the first write migrates, keeping the rows
    db = open_writable(path)
    assert "cached_session_create_ms" in db["trials"].columns_dict
    assert db["trials"].count == 1


def test_schema_names_match_the_store_list() -> None:
    from autotune.store.schema import migrations as schema_migrations

    assert {m.name for m in schema_migrations._migrations} == KNOWN_MIGRATIONS


def test_records_hold_the_schema_columns(tmp_path: Path) -> None:
    """The records' fields (what a read returns for each row, ``COLUMNS``) are exactly the
    schema's columns, in its order, with its types; JSON columns are the schema's text ones."""
    from dataclasses import fields

    from autotune.store.database import COLUMNS
    from autotune.store.records import SearchRecord, TrialRecord, json_columns

    db = open_writable(tmp_path / "new.db")
    for table, record in (("trials", TrialRecord), ("searches", SearchRecord)):
        stored = db[table].columns_dict
        assert COLUMNS[table] == stored, table
        assert [f.name for f in fields(record)] == list(stored), table
        assert all(stored[c] is str for c in json_columns(record)), table
    db.conn.close()


def test_a_stored_verdict_reads_one_way_for_every_output() -> None:
    """Outcome and speed-up of a finished search: as stored, or (rows from before outcomes were
    stored) a pick when one is held, its speed-up from ``pick_ratio``; none while not done."""
    from autotune.store.records import Outcome, SearchRecord

    assert SearchRecord(state="running", pick_config="{}").stored_verdict is None
    new = SearchRecord(state="done", outcome="pick", pick_config="{}", speedup=1.25,
                       speedup_low=1.1, speedup_high=1.4, verdict={"reason": "why"})  # fmt: skip
    v = new.stored_verdict
    assert v is not None and (v.outcome, v.speedup, v.speedup_low, v.reason) == (
        Outcome.PICK,
        1.25,
        1.1,
        "why",
    )
    legacy = SearchRecord(state="done", pick_config="{}", pick_ratio=0.8).stored_verdict
    assert legacy is not None and legacy.outcome == Outcome.PICK and legacy.speedup == 1.25
    empty = SearchRecord(state="done", pick_ratio=0.8).stored_verdict
    assert empty is not None and empty.outcome == Outcome.INCONCLUSIVE and empty.speedup is None
    odd = SearchRecord(state="done", outcome="pick", pick_config="{}", speedup=float("inf"))
    assert odd.stored_verdict is not None and odd.stored_verdict.speedup is None


def test_a_database_in_an_app_bundle_is_read_and_never_written(
    mlp_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/mac.md's recipe for a sandboxed app: ship ``autotune db export`` (a plain SQLite
    file; a WAL database read in place gains -wal and -shm files beside it) and name the app's
    own writable database first in ``AUTOTUNE_DB``, then the shipped one (a signed bundle must
    not change)."""
    import os

    import autotune
    from autotune.config import SessionConfig
    from autotune.store.sharing import export
    from tests.test_resolver import _store_pick

    _store_pick(mlp_path, SessionConfig(graph_optimization_level="ORT_ENABLE_BASIC").canonical())
    bundle = tmp_path / "MyApp.app/Contents/Resources/autotune.db"
    bundle.parent.mkdir(parents=True)
    export(bundle)
    shipped = bundle.read_bytes()
    own = tmp_path / "Containers/app/Data/Library/Application Support/autotune/autotune.db"
    monkeypatch.setenv("AUTOTUNE_DB", f"{own}{os.pathsep}{bundle}")
    session = autotune.best_session(mlp_path)
    level = session.get_session_options().graph_optimization_level
    assert str(level).endswith("ENABLE_BASIC")
    assert bundle.read_bytes() == shipped
    assert [p.name for p in bundle.parent.iterdir()] == ["autotune.db"]  # no journal beside it
