"""A shared database you can trust (issue 8): damaged or hostile layers never break an app, lose
a verdict or slow a session. Every case is a crafted database built here, on real SQLite files,
looked up by the real ``best_session`` building real onnxruntime sessions."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

import autotune
from autotune.chip import current_chip, current_descriptor, usable_cores
from autotune.commands.cli import cli
from autotune.config import DEFAULT_CONFIG, SessionConfig
from autotune.digest import model_digest
from autotune.errors import DatabaseError
from autotune.store.database import Store
from autotune.store.records import SearchRecord, TrialRecord

MINE = SessionConfig(graph_optimization_level="ORT_ENABLE_BASIC").canonical()
TEAMS = SessionConfig(graph_optimization_level="ORT_ENABLE_EXTENDED").canonical()
ESCAPES = "\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b[2J\x1b[31m\u202e"


def _key(model: Path) -> dict[str, Any]:
    chip = current_chip()
    return {
        "model_digest": model_digest(model),
        "model_name": model.name,
        "chip": chip.chip_id,
        "ort_version": chip.ort_version,
        "shapes": "x=1x16",
        "default_shapes": 1,
    }


def verdict(
    db: Path,
    model: Path,
    config: SessionConfig,
    *,
    search_id: str = "s-1",
    finished_at: str = "2026-11-20T00:00:00+00:00",
    **extra: Any,
) -> None:
    """A finished latency search picking ``config``, and its trial, as a search writes them."""
    key = _key(model)
    with Store.open(str(db), write=True) as store:
        store.upsert_search(SearchRecord.from_row({**key, "search_id": search_id, "state": "done",
                             "objective": "latency", "outcome": "pick",
                             "started_at": finished_at, "finished_at": finished_at,
                             "pick_config": config.to_json(), "pick_ratio": 0.9,
                             "speedup": 1 / 0.9, **extra}))  # fmt: skip
        store.record_trial(TrialRecord.from_row(
            {**key, "trial_uid": f"t-{search_id}-{config.config_id}",
                            "search_id": search_id, "config_id": config.config_id,
                            "config": config.to_json(), "status": "ok", "ratio": 0.9,
                            "label": config.describe(), "created_at": finished_at,
                            "session_create_ms": 5.0, "first_run_ms": 1.0,
                            "session_rss_mb": 2.0}))  # fmt: skip


def layered(*paths: Path) -> str:
    return os.pathsep.join(str(p) for p in paths)


def level(session: Any) -> str:
    return str(session.get_session_options().graph_optimization_level).split(".")[-1]


def runs(session: Any) -> bool:
    x = np.ones((1, 16), dtype=np.float32)
    return bool(session.run(None, {"x": x})[0].shape == (1, 4))


def one_warning(caplog: pytest.LogCaptureFixture) -> str:
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(records) == 1, [r.getMessage() for r in records]
    return records[0].getMessage()


def cli_run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def no_traceback(result: Result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output


# -- 1. a broken layer is skipped, with one warning; the other layers are still used ------------


def _damaged_page(path: Path, model: Path) -> None:
    """A real database whose data pages are overwritten: SQLite opens it (page 1 and the small
    tables are intact) and fails reading searches with "database disk image is malformed"."""
    with Store.open(str(path), write=True) as store:
        for i in range(300):
            store.upsert_search(SearchRecord.from_row(
                {**_key(model), "search_id": f"s{i}", "state": "done",
                                 "pick_config": TEAMS.to_json(),
                                 "verdict": "x" * 300}))  # fmt: skip
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()
    data = bytearray(path.read_bytes())
    for start in range(3 * 4096, len(data), 4096):  # from page 4: trials, searches, indexes
        data[start : start + 4096] = b"\x0d" + b"\xff" * 4095
    path.write_bytes(bytes(data))
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(sqlite3.DatabaseError, match="malformed"):
        digest = _key(model)["model_digest"]
        conn.execute("SELECT * FROM searches WHERE model_digest = ?", [digest]).fetchall()
    conn.close()


def _plain_tables(
    path: Path, trials_sql: str, searches_sql: str | None = None
) -> sqlite3.Connection:
    """An autotune-looking database (its migrations recorded) with hand-written tables."""
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE _sqlite_migrations (id INTEGER PRIMARY KEY, migration_set TEXT, name TEXT,
                                         applied_at TEXT);
        INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES
            ('autotune', 'm001_initial', 'x'), ('autotune', 'm002_cached_load_time', 'x'),
            ('autotune', 'm003_verdict', 'x');
        """
    )
    conn.execute(trials_sql)
    if searches_sql:
        conn.execute(searches_sql)
    return conn


def _no_status(path: Path, model: Path) -> None:
    conn = _plain_tables(path, "CREATE TABLE trials (id INTEGER PRIMARY KEY, trial_uid TEXT, "
                         "model_digest TEXT, chip TEXT, ort_version TEXT, shapes TEXT, "
                         "config_id TEXT, config TEXT, ratio REAL)")  # fmt: skip
    k = _key(model)
    values = [k["model_digest"], k["chip"], k["ort_version"], k["shapes"], TEAMS.to_json()]
    conn.execute("INSERT INTO trials VALUES (1, 'u', ?, ?, ?, ?, 'c', ?, 0.5)", values)
    conn.commit()
    conn.close()


def _no_id(path: Path, model: Path) -> None:
    """trials without an ``id`` column (and no searches table): readable, nothing to serve."""
    conn = _plain_tables(path, "CREATE TABLE trials (trial_uid TEXT, model_digest TEXT, chip TEXT, "
                         "ort_version TEXT, shapes TEXT, config_id TEXT, config TEXT, "
                         "status TEXT, ratio REAL)")  # fmt: skip
    k = _key(model)
    values = [k["model_digest"], k["chip"], k["ort_version"], k["shapes"], TEAMS.to_json()]
    conn.execute("INSERT INTO trials VALUES ('u', ?, ?, ?, ?, 'c', ?, 'ok', 0.5)", values)
    conn.commit()
    conn.close()


def _text_in_numbers(path: Path, model: Path) -> None:
    """Text where numbers belong: ratio, pick_ratio, speed-up, load figures, default_shapes."""
    verdict(path, model, TEAMS, finished_at="2026-11-30T00:00:00+00:00")
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE trials SET ratio = 'fast', session_create_ms = 'soon', "
                     "default_shapes = '{not json'")  # fmt: skip
        conn.execute("UPDATE searches SET pick_ratio = 'x', speedup = 'y', "
                     "default_shapes = '[1'")  # fmt: skip
        row = conn.execute("SELECT * FROM trials").fetchone()
        for i, ratio in enumerate(("1.0", "zzz", "0.1")):  # mixed types for the Pareto sort
            values = list(row)
            values[0] = None
            values[1] = f"extra-{i}"
            conn.execute(f"INSERT INTO trials VALUES ({', '.join('?' * len(values))})", values)
            conn.execute("UPDATE trials SET ratio = ? WHERE trial_uid = ?", [ratio, f"extra-{i}"])
    conn.close()


def _virtual_table(path: Path, model: Path) -> None:
    """``trials`` as a virtual table of a module this SQLite does not have."""
    conn = _plain_tables(path, "CREATE TABLE placeholder (x)")
    with conn:
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute("INSERT INTO sqlite_master (type, name, tbl_name, rootpage, sql) VALUES "
                     "('table', 'trials', 'trials', 0, "
                     "'CREATE VIRTUAL TABLE trials USING no_such_module(a, b)')")  # fmt: skip
    conn.close()


def _not_sqlite(path: Path, model: Path) -> None:
    path.write_bytes(b"not a database\n" * 100)


BROKEN = {
    "damaged page": (_damaged_page, "malformed"),
    "trials without status": (_no_status, "trials has no status column"),
    "virtual table of an unknown module": (_virtual_table, "trials is a virtual table"),
    "not SQLite": (_not_sqlite, "is not a SQLite database"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_team_layer_keeps_your_pick(
    case: str, mlp_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make, reason = BROKEN[case]
    mine, team = tmp_path / "mine.db", tmp_path / "team.db"
    verdict(mine, mlp_path, MINE)
    make(team, mlp_path)
    with caplog.at_level(logging.WARNING, logger="autotune"):
        session = autotune.best_session(mlp_path, db=layered(mine, team))
    assert level(session) == "ORT_ENABLE_BASIC" and runs(session)  # your pick, still used
    message = one_warning(caplog)
    assert str(team) in message and reason in message
    assert "run: autotune search" not in message
    with pytest.raises(DatabaseError, match=reason):
        autotune.best_session(mlp_path, db=layered(mine, team), strict=True)


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_personal_layer_keeps_the_teams_pick(
    case: str, mlp_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make, reason = BROKEN[case]
    mine, team = tmp_path / "mine.db", tmp_path / "team.db"
    make(mine, mlp_path)
    verdict(team, mlp_path, TEAMS)
    with caplog.at_level(logging.WARNING, logger="autotune"):
        session = autotune.best_session(mlp_path, db=layered(mine, team))
    assert level(session) == "ORT_ENABLE_EXTENDED" and runs(session)
    assert reason in one_warning(caplog)


@pytest.mark.parametrize("case", list(BROKEN))
def test_cli_reads_around_a_broken_layer(case: str, mlp_path: Path, tmp_path: Path) -> None:
    make, reason = BROKEN[case]
    mine, team = tmp_path / "mine.db", tmp_path / "team.db"
    verdict(mine, mlp_path, MINE)
    make(team, mlp_path)
    db = layered(mine, team)
    for args in (
        ("best", mlp_path, "--db", db),
        ("show", mlp_path, "--db", db),
        ("list", "--db", db),
        ("report", mlp_path, "--db", db, "-o", tmp_path / "r.html"),
    ):
        result = cli_run(*args)
        no_traceback(result)
        assert result.exit_code == 0, (args, result.output)
        assert reason in result.stderr, (args, result.stderr)
        assert "run: autotune search" not in result.stderr
    assert "ORT_ENABLE_BASIC" in cli_run("best", mlp_path, "--db", db).stdout
    # only a broken layer: one Error line, no traceback, and no advice to search
    result = cli_run("best", mlp_path, "--db", team)
    no_traceback(result)
    assert result.exit_code == 1 and "run: autotune search" not in result.output


@pytest.mark.parametrize("make", [_no_id, _text_in_numbers], ids=["no id", "text in numbers"])
def test_odd_values_never_raise(
    make: Any, mlp_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    team = tmp_path / "team.db"
    make(team, mlp_path)
    for prefer in ("latency", "load", "memory", "balanced"):
        session = autotune.best_session(mlp_path, db=str(team), prefer=prefer)
        assert runs(session)
        autotune.best_config(mlp_path, db=str(team), prefer=prefer)
    if make is _text_in_numbers:  # the verdict itself is fine: served, without a speed-up
        best = autotune.best_config(mlp_path, db=str(team))
        assert best is not None and best.config == TEAMS and best.ratio is None
    for args in (("show", mlp_path), ("list",), ("best", mlp_path)):
        result = cli_run(*args, "--db", team)
        no_traceback(result)


# -- 2. merge never replaces or erases a stored verdict ------------------------------------


def test_merge_keeps_a_stored_verdict(mlp_path: Path, tmp_path: Path) -> None:
    team = tmp_path / "team.db"
    verdict(team, mlp_path, TEAMS, search_id="s-team")
    # a rejected trial of that search, faster in its own (noisy) round than the pick
    rejected = SessionConfig(intra_op_num_threads=1).canonical()
    with Store.open(str(team), write=True) as store:
        store.record_trial(TrialRecord.from_row(
            {**_key(mlp_path), "trial_uid": "t-rejected", "search_id": "s-team",
                            "config_id": rejected.config_id, "config": rejected.to_json(),
                            "status": "ok", "ratio": 0.5}))  # fmt: skip
    before = dict(sqlite3.connect(team).execute("SELECT search_id, pick_config FROM searches"))
    # a hostile source: the same search id, finished later, with its verdict erased
    hostile = tmp_path / "hostile.jsonl"
    hostile.write_text(json.dumps({"table": "searches", **_key(mlp_path), "search_id": "s-team",
                                   "state": "done", "finished_at": "2999-01-01T00:00:00+00:00",
                                   "pick_config": None}) + "\n")  # fmt: skip
    result = cli_run("db", "merge", hostile, "--into", team)
    assert result.exit_code == 0 and "kept 1 search rows beside" in result.output
    conn = sqlite3.connect(team)
    rows = dict(conn.execute("SELECT search_id, pick_config FROM searches"))
    conn.close()
    assert rows["s-team"] == before["s-team"]  # the verdict is still there, unchanged
    assert len(rows) == 2  # and the conflicting row beside it
    best = autotune.best_config(mlp_path, db=str(team))
    assert best is not None and best.config == TEAMS and best.source == "verdict"
    assert level(autotune.best_session(mlp_path, db=str(team))) == "ORT_ENABLE_EXTENDED"


# -- 3. layer order: yours first, the team's fills gaps; newest within a layer ---------------


def test_your_verdict_beats_a_newer_team_verdict(mlp_path: Path, tmp_path: Path) -> None:
    mine, team = tmp_path / "mine.db", tmp_path / "team.db"
    verdict(mine, mlp_path, MINE, finished_at="2026-01-01T00:00:00+00:00")
    verdict(team, mlp_path, TEAMS, finished_at="2026-11-30T00:00:00+00:00")
    best = autotune.best_config(mlp_path, db=layered(mine, team))
    assert best is not None and best.config == MINE and best.layer == 0
    assert level(autotune.best_session(mlp_path, db=layered(mine, team))) == "ORT_ENABLE_BASIC"
    # the team layer fills a gap: nothing of yours for this model
    other = tmp_path / "other.onnx"
    shutil.copy(mlp_path, other)
    with open(other, "ab") as f:
        f.write(b"\n")  # another file, another digest: your database has nothing for it
    verdict(team, other, TEAMS, search_id="s-other")
    best = autotune.best_config(other, db=layered(mine, team))
    assert best is not None and best.config == TEAMS and best.layer == 1
    # within a layer, the newest verdict wins
    newest = SessionConfig(graph_optimization_level="ORT_DISABLE_ALL").canonical()
    verdict(mine, mlp_path, newest, search_id="s-2", finished_at="2026-06-01T00:00:00+00:00")
    best = autotune.best_config(mlp_path, db=layered(mine, team))
    assert best is not None and best.config == newest


def test_list_show_and_the_report_name_the_verdict_apps_get(mlp_path: Path, tmp_path: Path) -> None:
    """A newer team verdict does not outrank yours anywhere: ``list``, ``show`` and the report
    name the pick ``best_session()`` builds (your layer first, then the newest)."""
    from autotune.output.html_report import load_report_data

    mine, team = tmp_path / "mine.db", tmp_path / "team.db"
    verdict(mine, mlp_path, MINE, finished_at="2026-01-01T00:00:00+00:00",
            pick_label=MINE.describe())  # fmt: skip
    verdict(team, mlp_path, TEAMS, finished_at="2026-11-30T00:00:00+00:00",
            pick_label=TEAMS.describe())  # fmt: skip
    db = layered(mine, team)
    best = autotune.best_config(mlp_path, db=db)
    assert best is not None and best.config == MINE
    listed = json.loads(cli_run("list", "--json", "--db", db).output)
    assert [row["pick"] for row in listed] == [MINE.describe()]
    shown = cli_run("show", mlp_path, "--db", db).output
    assert f"* {MINE.describe()}," in shown and TEAMS.describe() + "," not in shown
    report = load_report_data(mlp_path, db=db)
    assert report.search is not None and report.search.pick_config == MINE.to_json()


# -- 4. validated but harmful values ---------------------------------------------------------


def test_thread_counts_are_bounded_by_this_machine(
    mlp_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    team = tmp_path / "team.db"
    greedy = SessionConfig(execution_mode="ORT_PARALLEL", intra_op_num_threads=1024,
                           inter_op_num_threads=1024).canonical()  # fmt: skip
    verdict(team, mlp_path, greedy)
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="autotune"):
        session = autotune.best_session(mlp_path, db=str(team))
    assert time.monotonic() - start < 10  # 1024 + 1024 threads took 72 s to build
    options = session.get_session_options()
    cores = usable_cores()
    assert options.intra_op_num_threads == cores and options.inter_op_num_threads == cores
    assert runs(session)
    assert f"re-derived for this machine's {cores} cores" in one_warning(caplog)
    best = autotune.best_config(mlp_path, db=str(team))
    assert best is not None and best.config.intra_op_num_threads == cores
    # within 2x the cores, a stored count is kept as measured
    fine = SessionConfig(intra_op_num_threads=2 * cores).canonical()
    verdict(team, mlp_path, fine, search_id="s-fine", finished_at="2026-11-30T00:00:00+00:00")
    best = autotune.best_config(mlp_path, db=str(team))
    assert best is not None and best.config == fine


def test_free_dimension_overrides_must_fit_this_model_and_shapes(
    mlp_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    team = tmp_path / "team.db"
    wrong = SessionConfig(free_dimension_overrides={"batch": 7}).canonical()
    unknown = SessionConfig(free_dimension_overrides={"nope": 1}).canonical()
    right = SessionConfig(free_dimension_overrides={"batch": 1}).canonical()
    for i, cfg in enumerate((right, unknown, wrong)):  # the wrong one is the newest
        verdict(team, mlp_path, cfg, search_id=f"s{i}", finished_at=f"2026-0{i + 1}-01T00:00:00")
    with caplog.at_level(logging.WARNING, logger="autotune"):
        session = autotune.best_session(mlp_path, db=str(team))
    assert runs(session)  # at batch 1, as asked
    message = one_warning(caplog)
    assert "refused 2 stored configurations" in message
    assert "free dimension override batch=7 does not match the shapes asked for (x=1x16)" in message
    best = autotune.best_config(mlp_path, db=str(team))
    assert best is not None and best.config == right
    # asked for batch 7, the same stored override is the right one
    verdict(team, mlp_path, wrong, search_id="s-b7", shapes="x=7x16")
    best = autotune.best_config(mlp_path, db=str(team), shapes={"x": (7, 16)})
    assert best is not None and best.config == wrong


# -- 5. cost at lookup -----------------------------------------------------------------------


@pytest.mark.slow
def test_many_rows_for_one_key_stay_fast(mlp_path: Path, tmp_path: Path) -> None:
    team = tmp_path / "team.db"
    verdict(team, mlp_path, TEAMS)
    conn = sqlite3.connect(team)
    row = dict(
        zip(
            [d[1] for d in conn.execute("PRAGMA table_info(trials)")],
            conn.execute("SELECT * FROM trials").fetchone(),
            strict=True,
        )
    )
    rng = np.random.default_rng(0)
    rows = []
    for i in range(20_000):
        cfg = SessionConfig(intra_op_num_threads=1 + i % 8, inter_op_num_threads=i // 8 % 4,
                            execution_mode="ORT_PARALLEL").canonical()  # fmt: skip
        rows.append({**row, "id": None, "trial_uid": f"u{i}", "config_id": cfg.config_id,
                     "config": cfg.to_json(), "ratio": float(rng.uniform(0.5, 2)),
                     "session_create_ms": float(rng.uniform(1, 100)),
                     "session_rss_mb": float(rng.uniform(1, 100))})  # fmt: skip
    names = list(row)
    with conn:
        conn.executemany(
            f"INSERT INTO trials ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
            [[r[n] for n in names] for r in rows],
        )
    conn.close()
    start = time.monotonic()
    session = autotune.best_session(mlp_path, db=str(team), prefer="load")
    assert time.monotonic() - start < 10  # was 355 s: O(n^2) front over every row
    assert runs(session)


@pytest.mark.slow
def test_huge_values_cost_no_memory(mlp_path: Path, tmp_path: Path) -> None:
    """1 MiB text values in every row, and a generated column of 300 MB blobs: the lookup reads
    neither (measured as the peak RSS of a fresh process)."""
    texts, blobs = tmp_path / "texts.db", tmp_path / "blobs.db"
    verdict(texts, mlp_path, TEAMS)
    conn = sqlite3.connect(texts)
    with conn:
        big = "x" * (1 << 20)
        conn.execute("UPDATE searches SET verdict = ?, pick_label = ?", [big, big])
        for i in range(100):
            conn.execute(
                "INSERT INTO trials (trial_uid, search_id, model_digest, chip, ort_version, "
                "shapes, config_id, config, status, ratio, label, error) SELECT ?, search_id, "
                "model_digest, chip, ort_version, shapes, config_id, ?, 'ok', 0.9, ?, ? "
                "FROM trials LIMIT 1",
                [f"big-{i}", '{"providers": "' + big + '"}', big, big],
            )
    conn.close()
    verdict(blobs, mlp_path, TEAMS)
    conn = sqlite3.connect(blobs)
    conn.execute("ALTER TABLE trials ADD COLUMN huge BLOB GENERATED ALWAYS AS "
                 "(zeroblob(300000000)) VIRTUAL")  # fmt: skip
    conn.close()
    code = (
        "import resource, sys, autotune\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "for prefer in ('latency', 'load'):\n"
        "    autotune.best_session(sys.argv[1], db=sys.argv[2], prefer=prefer)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)\n"
    )
    for db in (texts, blobs):
        out = subprocess.run([sys.executable, "-c", code, str(mlp_path), str(db)],
                             capture_output=True, text=True, check=True)  # fmt: skip
        grown_mb = int(out.stdout.split()[-1])
        assert grown_mb < 150, (db.name, grown_mb)  # was 2.7-2.9 GB
    # the 1 MiB values read as nothing; the verdict is still served
    best = autotune.best_config(mlp_path, db=str(texts))
    assert best is not None and best.config == TEAMS
    with Store.open(str(texts)) as store:
        rows = store.trials_of_model(model_digest(mlp_path))
        assert len(rows) == 101 and all(
            r.label is None for r in rows if (r.trial_uid or "").startswith("big-")
        )
    with Store.open(str(blobs)) as store:  # generated columns: the layer is not read at all
        assert not store.layers and "huge is a generated column" in store.problems[0]


def test_merge_caps_sizes(mlp_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from autotune.store import sharing

    src = tmp_path / "src.db"
    verdict(src, mlp_path, TEAMS)
    conn = sqlite3.connect(src)
    with conn:
        conn.execute("UPDATE trials SET label = ?", ["x" * (sharing.MAX_TEXT_CHARS + 1)])
    conn.close()
    result = cli_run("db", "merge", src, "--into", tmp_path / "team.db")
    assert result.exit_code == 0
    assert "(0 new, 0 already present, 1 skipped)" in result.output  # over the per-value cap
    monkeypatch.setattr(sharing, "MAX_SOURCE_BYTES", 1000)
    result = cli_run("db", "merge", src, "--into", tmp_path / "team2.db")
    assert result.exit_code == 1 and "more than the 0 MiB a source may hold" in result.output
    assert not (tmp_path / "team2.db").exists()
    conn = sqlite3.connect(src)
    conn.execute("ALTER TABLE trials ADD COLUMN g BLOB GENERATED ALWAYS AS (zeroblob(300000000))")
    conn.close()
    monkeypatch.setattr(sharing, "MAX_SOURCE_BYTES", 1 << 30)
    result = cli_run("db", "merge", src, "--into", tmp_path / "team3.db")
    assert result.exit_code == 1 and "trials.g is a generated column" in result.output


# -- 6. search poisoning: team rows inform, they do not veto ---------------------------------


@pytest.mark.slow
def test_team_rows_cannot_poison_a_search(mlp_path: Path, tmp_path: Path) -> None:
    from autotune.tuning.search import SearchOptions, run_search
    from tests.conftest import FAST

    scratch, team, mine = tmp_path / "scratch.db", tmp_path / "team.db", tmp_path / "mine.db"
    run_search(mlp_path, SearchOptions(trials=3, protocol=FAST, seed=1, db=str(scratch)))
    conn = sqlite3.connect(scratch)
    with conn:  # as if measured elsewhere: every configuration "crashed", an absurd floor
        conn.execute("UPDATE trials SET status = 'crashed', floor_ms = 1e-6, ratio = NULL, "
                     "host_id = 'elsewhere', host = 'elsewhere'")  # fmt: skip
        poisoned = {r[0] for r in conn.execute("SELECT config_id FROM trials")}
    conn.close()
    shutil.copy(scratch, team)
    assert DEFAULT_CONFIG.config_id in poisoned
    outcome = run_search(mlp_path, SearchOptions(trials=3, protocol=FAST, seed=1,
                                                  db=layered(mine, team)))  # fmt: skip
    assert outcome.resumed == 0  # the team's rows did not count as measured here
    conn = sqlite3.connect(mine)
    rows = conn.execute("SELECT config_id, status, floor_ms, rounds_kept FROM trials").fetchall()
    conn.close()
    measured = {cid for cid, status, _, _ in rows if status in ("ok", "pruned")}
    assert DEFAULT_CONFIG.config_id in measured  # measured here, despite "crashed" elsewhere
    assert poisoned & measured
    assert all(floor is None or floor > 1e-3 for _, _, floor, _ in rows)  # not copied
    assert all(kept for _, status, _, kept in rows if status == "ok")  # rounds were kept


# -- 7. terminal injection -------------------------------------------------------------------


def test_control_characters_never_reach_the_terminal(mlp_path: Path, tmp_path: Path) -> None:
    team = tmp_path / "team.db"
    verdict(team, mlp_path, TEAMS)
    conn = sqlite3.connect(team)
    with conn:
        conn.execute("UPDATE trials SET label = ?, error = ?, status = 'failed', model_name = ?",
                     [f"label{ESCAPES}", f"error{ESCAPES}", f"m{ESCAPES}.onnx"])  # fmt: skip
        conn.execute("UPDATE searches SET model_name = ?", [f"m{ESCAPES}"])
        conn.execute("UPDATE trials SET chip = ? WHERE 0", [ESCAPES])
    conn.close()
    for args in (("show", mlp_path), ("list",), ("db", "stats"), ("best", mlp_path)):
        result = cli_run(*args, "--db", team)
        no_traceback(result)
        assert "\x1b" not in result.output and "\u202e" not in result.output, args
        assert "\x07" not in result.output, args
    assert "label?]52;c;" in cli_run("show", mlp_path, "--db", team).output


# -- 8. exact claims and messages ------------------------------------------------------------


def test_refused_rows_give_one_warning(
    mlp_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    team = tmp_path / "team.db"
    for i, entry in enumerate(("session.debug_layout_transformation", "session.save_model",
                               "ep.context_file_path")):  # fmt: skip
        verdict(team, mlp_path, TEAMS, search_id=f"s{i}")
        conn = sqlite3.connect(team)
        with conn:
            hostile = json.dumps({"session_entries": {entry: "1"}})
            sql = "UPDATE searches SET pick_config = ? WHERE search_id = ?"
            conn.execute(sql, [hostile, f"s{i}"])
        conn.close()
    with caplog.at_level(logging.WARNING, logger="autotune"):
        session = autotune.best_session(mlp_path, db=str(team))
    assert level(session) == "ORT_ENABLE_ALL"  # ORT's defaults
    message = one_warning(caplog)
    assert message.startswith("autotune: refused 3 stored configurations (session entry")
    assert "and 2 more" in message and message.endswith(
        f"using ORT defaults (run: autotune search {mlp_path})"
    )


@pytest.mark.slow
def test_a_line_of_unknown_keys_prints_a_short_summary(tmp_path: Path) -> None:
    line = {"table": "trials", "trial_uid": "u1", **{f"k{i:07d}": 1 for i in range(1_000_000)}}
    src = tmp_path / "keys.jsonl"
    src.write_text(json.dumps(line) + "\n")
    assert src.stat().st_size > 10 << 20
    result = cli_run("db", "merge", src, "--into", tmp_path / "team.db")
    no_traceback(result)
    assert len(result.output) < 2000
    assert "dropped unknown columns: trials.k0000000" in result.output
    assert "and 999990 more" in result.output


def test_the_trust_page_names_the_check_that_runs() -> None:
    root = Path(__file__).parent.parent
    trust = (root / "docs" / "trust.md").read_text(encoding="utf-8")
    source = (root / "autotune" / "store" / "rows.py").read_text()
    assert "PRAGMA quick_check" in source and "integrity_check" not in source
    assert "quick_check" in trust and "integrity check" not in trust.lower().replace(
        "`pragma integrity_check`", ""
    )
    assert "(docs/trust.md)" in (root / "README.md").read_text(encoding="utf-8")


# -- issue 21: the manifest and merges are hostile input too -----------------------------------


def _manifest(model: Path, *entries: dict[str, Any], **top: Any) -> str:
    """A manifest written by hand, as an attacker would: entries measured on ``chip``."""
    return json.dumps({"format": "autotune-manifest", "version": 1,
                       "model_digest": model_digest(model), "entries": list(entries),
                       **top})  # fmt: skip


def _entry(config: SessionConfig, chip: str | None = None, **fields: Any) -> dict[str, Any]:
    from autotune import ladder
    from autotune.chip import current_descriptor

    desc = fields.pop("descriptor", current_descriptor())
    return {"chip": chip or current_chip().chip_id, "descriptor": desc.to_dict(),
            "shapes": "x=1x16", "default_shapes": True, "ort_version": current_chip().ort_version,
            "config": config.to_dict(), "thread_roles": ladder.roles_of(config, desc),
            "ratio": 0.9, "source": "verdict", "measured_at": None, **fields}  # fmt: skip


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


GREEDY = SessionConfig(execution_mode="ORT_PARALLEL", intra_op_num_threads=1024,
                       inter_op_num_threads=1024).canonical()  # fmt: skip


def test_manifest_thread_counts_are_bounded_by_this_machine(
    mlp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """1024 + 1024 threads in parallel mode built in 53.7 s from a manifest entry as stored."""
    from autotune import manifest
    from autotune.build import build_session

    loaded = manifest.parse(_manifest(mlp_path, _entry(GREEDY)))
    with caplog.at_level(logging.WARNING, logger="autotune"):
        choice = loaded.resolve()
    cores = usable_cores()
    assert choice is not None and choice.rung == "exact"
    assert (choice.config.intra_op_num_threads, choice.config.inter_op_num_threads) == (
        cores,
        cores,
    )
    assert _warnings(caplog) == [
        f"autotune: thread counts of {GREEDY.describe()} re-derived for this machine's {cores} "
        f"cores: {choice.config.describe()}"
    ]
    options = build_session(mlp_path, choice.config).get_session_options()
    assert options.intra_op_num_threads == cores == options.inter_op_num_threads


def test_manifest_export_bounds_a_team_verdicts_threads(mlp_path: Path, tmp_path: Path) -> None:
    """``autotune manifest`` copied a team verdict into the manifest an app ships as stored."""
    verdict(Path(os.environ["AUTOTUNE_DB"]), mlp_path, GREEDY)
    out = tmp_path / "m.json"
    result = cli_run("manifest", mlp_path, "-o", out)
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(out.read_text())["entries"]
    cores = current_chip().cores  # the cores of the chip it was measured on (its chip id)
    assert entry["config"]["intra_op_num_threads"] == cores
    assert entry["config"]["inter_op_num_threads"] == cores


def test_manifest_free_dims_fit_the_model_and_shapes(
    mlp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``{"batch": 7}`` for an entry measured at batch 1 made the first inference fail: it is
    skipped, with a warning, for the next entry on the ladder."""
    from autotune import manifest
    from tests.test_ladder import sibling_chip

    wrong = SessionConfig(free_dimension_overrides={"batch": 7}).canonical()
    right = SessionConfig(free_dimension_overrides={"batch": 1}).canonical()
    sibling, desc = sibling_chip()
    entries = (_entry(wrong), _entry(TEAMS, sibling, descriptor=desc))
    for inputs, model in (({"x": ["batch", 16]}, None), (None, mlp_path)):
        top = {"inputs": inputs} if inputs else {}
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="autotune"):
            choice = manifest.parse(_manifest(mlp_path, *entries, **top)).resolve(model=model)
        assert choice is not None and choice.chip == sibling and choice.config == TEAMS
        (warning,) = _warnings(caplog)
        assert "free dimension override batch=7 does not match the shapes asked for (x=1x16)" in (
            warning
        )
        assert warning.startswith("autotune: skipping the manifest's entry for ")
    # without the model or its inputs, an override cannot be checked: never applied
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="autotune"):
        choice = manifest.parse(_manifest(mlp_path, _entry(right))).resolve()
    assert choice is None and "cannot be checked without the model" in _warnings(caplog)[0]
    # the right override, checked against the model, is used as measured
    choice = manifest.parse(_manifest(mlp_path, _entry(right))).resolve(model=mlp_path)
    assert choice is not None and choice.config == right
    # an export writes the model's inputs, so the check needs no model file
    verdict(Path(os.environ["AUTOTUNE_DB"]), mlp_path, right)
    data = manifest.build(mlp_path)
    assert data["inputs"] == {"x": ["batch", 16]}
    choice = manifest.parse(json.dumps(data)).resolve()
    assert choice is not None and choice.config == right


def test_manifest_messages_never_carry_escape_sequences(
    mlp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from autotune import manifest
    from autotune.errors import ConfigError

    hostile_config = {**TEAMS.to_dict(), f"k{ESCAPES}": 1}
    free = SessionConfig(free_dimension_overrides={"batch": 7}).canonical()
    text = _manifest(
        mlp_path,
        {**_entry(TEAMS), f"field{ESCAPES}": 1},  # an unknown entry field
        {**_entry(TEAMS), "config": hostile_config},  # an unknown configuration field
        _entry(free, f"chip{ESCAPES}"),  # skipped at resolve: no model to check it against
    )
    messages = []
    with caplog.at_level(logging.INFO, logger="autotune"):
        loaded = manifest.parse(text)
        loaded.resolve(chip_id=f"chip{ESCAPES}", descriptor=current_descriptor())
    messages += [r.getMessage() for r in caplog.records]
    assert loaded.dropped == 2 and len(messages) == 3, messages
    for bad in (text[:-1] + f', "top{ESCAPES}": 1}}', json.dumps({"format": ESCAPES})):
        with pytest.raises(ConfigError) as raised:
            manifest.parse(bad)
        messages.append(str(raised.value))
    # the CLI's one Error line, whatever stored or given text an error quotes
    messages.append(cli_run("best", f"missing{ESCAPES}.onnx").output)
    for message in messages:
        assert not any(ch in message for ch in "\x1b\x07\u202e"), repr(message)
    assert "chip?]52;c;" in messages[2]


def _poison_lines(model: Path) -> list[dict[str, Any]]:
    """Four forged ``crashed`` rows carrying this host's id (every export carries it), with an
    absurd slow-phase floor: as own rows they made the next search measure 0 trials."""
    from autotune.chip import provenance

    configs = [DEFAULT_CONFIG, MINE, TEAMS, SessionConfig(intra_op_num_threads=1).canonical()]
    return [{"table": "trials", **_key(model), "trial_uid": f"forged-{i}",
             "search_id": "forged", "config_id": c.config_id, "config": c.to_json(),
             "status": "crashed", "floor_ms": 1e-6, "host_id": provenance()["host_id"],
             "host": provenance()["host"], "created_at": "2026-11-20T00:00:00+00:00"}
            for i, c in enumerate(configs)]  # fmt: skip


@pytest.mark.slow
def test_merged_rows_are_never_this_machines_own(mlp_path: Path, tmp_path: Path) -> None:
    from autotune.store.database import ResultKey
    from autotune.tuning.search import SearchOptions, run_search
    from tests.conftest import FAST

    forged = tmp_path / "forged.jsonl"
    forged.write_text("".join(json.dumps(line) + "\n" for line in _poison_lines(mlp_path)))
    mine = Path(os.environ["AUTOTUNE_DB"])
    assert cli_run("db", "merge", forged).exit_code == 0  # no --into: the personal database
    k = _key(mlp_path)
    key = ResultKey(k["model_digest"], k["chip"], k["ort_version"], k["shapes"])
    with Store.open(str(mine)) as store:
        assert len(store.trials(key)) == 4 and store.trials(key, own=True) == []
        assert all((t.host_id or "").startswith("merged:") for t in store.trials(key))
    # still found by the host id they were exported with
    host_id = _poison_lines(mlp_path)[0]["host_id"]
    shown = json.loads(cli_run("show", mlp_path, "--host", host_id, "--json").stdout)
    assert len(shown["trials"]) == 4
    outcome = run_search(mlp_path, SearchOptions(trials=3, protocol=FAST, seed=1, db=str(mine)))
    assert outcome.resumed == 0 and outcome.measured >= 1
    conn = sqlite3.connect(mine)
    rows = conn.execute("SELECT status, floor_ms, rounds_kept FROM trials "
                        "WHERE trial_uid NOT LIKE 'forged-%'").fetchall()  # fmt: skip
    conn.close()
    assert any(status == "ok" for status, _, _ in rows)
    assert all(floor is None or floor > 1e-3 for _, floor, _ in rows)
    assert all(kept for status, _, kept in rows if status == "ok")


def _served_everywhere(model: Path, db: Path) -> dict[str, Any]:
    """What apps get and what ``best``, ``show``, ``list`` and the report say, from one
    database."""
    from autotune.output.html_report import load_report_data, render_html

    best = autotune.best_config(model, db=str(db))
    report = load_report_data(model, db=str(db))
    listed = json.loads(cli_run("list", "--json", "--db", db).stdout)
    shown = cli_run("show", model, "--db", db).stdout
    return {
        "best": best.config.describe() if best else None,
        "session": level(autotune.best_session(model, db=str(db))),
        "cli best": json.loads(cli_run("best", model, "--json", "--db", db).stdout)["label"],
        "list": (listed[0]["outcome"], listed[0]["pick"]),
        "show": shown.splitlines()[0],
        "show *": [line.split()[-1] for line in shown.splitlines() if line.startswith("* ")],
        "report": report.pick_config_id,
        "report html": render_html(report),
    }


def test_show_list_best_and_apps_agree_on_crafted_verdicts(
    mlp_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    default_label = DEFAULT_CONFIG.describe()
    # a default verdict holding a non-default pick: ORT's defaults are what apps get
    lying = tmp_path / "lying.db"
    verdict(lying, mlp_path, TEAMS, outcome="default", pick_label=TEAMS.describe(), speedup=3.0)
    verdict(lying, mlp_path, DEFAULT_CONFIG, search_id="s-0", finished_at="2026-11-01T00:00:00")
    seen = _served_everywhere(mlp_path, lying)
    assert seen["best"] == seen["cli best"] == default_label and seen["session"] == "ORT_ENABLE_ALL"
    assert seen["list"] == ("default", default_label)
    assert "ORT's defaults stay" in seen["show"]
    assert seen["report"] == DEFAULT_CONFIG.config_id
    best = autotune.best_config(mlp_path, db=str(lying))
    assert best is not None and best.ratio == 1.0  # not the row's 3x: defaults against defaults
    assert "Keep ORT's default configuration" in seen["report html"]
    # a merged row of the stored search, "finished" in 9999 with another pick under the
    # stored pick's label: kept beside the verdict, never served, never shown
    future = tmp_path / "future.db"
    verdict(future, mlp_path, MINE, pick_label=MINE.describe())
    hostile = tmp_path / "hostile.jsonl"
    hostile.write_text(json.dumps({"table": "searches", **_key(mlp_path), "search_id": "s-1",
                                   "state": "done", "outcome": "pick", "objective": "latency",
                                   "finished_at": "9999-01-01T00:00:00+00:00",
                                   "pick_config": TEAMS.to_json(), "pick_label": MINE.describe(),
                                   "speedup": 3.0}) + "\n")  # fmt: skip
    assert "kept 1 search rows beside" in cli_run("db", "merge", hostile, "--into", future).output
    seen = _served_everywhere(mlp_path, future)
    assert seen["best"] == seen["cli best"] == MINE.describe()
    assert seen["session"] == "ORT_ENABLE_BASIC"
    assert seen["list"] == ("pick", MINE.describe()) and f"* {MINE.describe()}," in seen["show"]
    assert seen["report"] == MINE.config_id and TEAMS.describe() not in seen["report html"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="autotune"):
        autotune.best_config(mlp_path, db=str(future))
    assert "finished in the future (9999-01-01T00:00:00+00:00); not served" in one_warning(caplog)
    # a finish time that sorts last as text ("z...") but is no time: never "the newest"
    text_time = tmp_path / "text_time.db"
    verdict(text_time, mlp_path, TEAMS, search_id="s-a", finished_at="2026-11-25T00:00:00+00:00")
    verdict(text_time, mlp_path, MINE, search_id="s-b", finished_at="zzz")
    seen = _served_everywhere(mlp_path, text_time)
    assert seen["best"] == seen["cli best"] == TEAMS.describe()
    assert seen["session"] == "ORT_ENABLE_EXTENDED" and seen["list"] == ("pick", TEAMS.describe())
    assert f"* {TEAMS.describe()}," in seen["show"] and seen["report"] == TEAMS.config_id


def test_install_advice_names_only_packages_autotune_knows(
    mlp_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stored plugin configuration made the warning say ``pip install
    onnxruntime-ep-<any name>==<any version>``."""
    from autotune import plugins

    def advice(package: str, version: str) -> str:
        monkeypatch.setattr(plugins, "_warned", set())
        db = tmp_path / f"{package}-{version}.db"
        config = SessionConfig(providers=(("EvilExecutionProvider", {}),),
                               plugin={"package": package, "version": version,
                                       "device": "GPU/1/2"}).canonical()  # fmt: skip
        verdict(db, mlp_path, config)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="autotune"):
            assert runs(autotune.best_session(mlp_path, db=str(db)))  # ORT's defaults
        return next(m for m in _warnings(caplog) if "is not installed here" in m)

    evil = advice("onnxruntime-ep-evil", "6.6.6")
    assert "pip install" not in evil and "a plugin this machine lacks" in evil
    assert "pip install onnxruntime-ep-mlx==0.31.0)" in advice("onnxruntime-ep-mlx", "0.31.0")
    odd = advice("onnxruntime-ep-mlx", "0.31.0+local")
    assert "pip install onnxruntime-ep-mlx)" in odd and "+local" not in odd.split("(")[1]


@pytest.mark.slow
def test_merge_refuses_a_fifo_without_reading_it(tmp_path: Path) -> None:
    """A FIFO ``.jsonl`` blocked ``db merge`` forever; a FIFO manifest blocked ``load``. Run in a
    fresh process so that a regression fails the test (the timeout) instead of hanging it."""
    for name in ("x.jsonl", "x.db", "m.json"):
        os.mkfifo(tmp_path / name)
    for name in ("x.jsonl", "x.db"):
        result = subprocess.run([sys.executable, "-m", "autotune", "db", "merge",
                                 str(tmp_path / name), "--into", str(tmp_path / "team.db")],
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr == (
            f"Error: {tmp_path / name} is not a regular file (a FIFO or a device); give an "
            "autotune database or a .jsonl\n"
        )
        assert not (tmp_path / "team.db").exists()
    code = "import sys; from autotune import manifest; manifest.load(sys.argv[1])"
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.json")],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "ConfigError: manifest" in result.stderr and "is not a regular file" in result.stderr
