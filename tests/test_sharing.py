"""Export, merge and stats (``autotune db``) on real SQLite files holding real trials.

Two "machines" are two databases filled by real (tiny) searches; the second one's chip, host
and user are rewritten with plain SQL, as if it came from a colleague's laptop.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
import sqlite_utils
from click.testing import CliRunner, Result

from autotune.commands.cli import _Group
from autotune.commands.cli_db import db
from autotune.digest import model_digest
from autotune.errors import AutotuneError, DatabaseError
from autotune.store.database import JSON_COLUMNS, open_readonly, open_writable
from autotune.store.records import MERGED
from autotune.store.sharing import expected_schema
from autotune.tuning.search import SearchOptions, run_search
from tests import models
from tests.conftest import FAST

CHIP_B = "Other CPU (8 cores) + Some NPU"


@dataclass(frozen=True)
class Machines:
    a: Path  # mlp.onnx, 3 trials, this machine's chip
    b: Path  # mlp.onnx (2 trials) and small.onnx (2 trials), chip CHIP_B
    mlp: Path
    small: Path
    chip_a: str


@pytest.fixture(scope="module")
def machines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machines]:
    root = tmp_path_factory.mktemp("machines")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTOTUNE_CACHE_DIR", str(root / "cache"))
        mp.setenv("AUTOTUNE_DB", str(root / "unused.db"))
        # module scope runs before the per-test isolation: a busy test machine must not stop it
        mp.setenv("AUTOTUNE_ALLOW_BUSY", "1")
        mlp = models.mlp(root / "mlp.onnx")
        small = models.mlp(root / "small.onnx", width=32)
        a, b = root / "a.db", root / "b.db"
        run_search(mlp, SearchOptions(trials=3, protocol=FAST, seed=1, db=str(a)))
        run_search(mlp, SearchOptions(trials=2, protocol=FAST, seed=1, db=str(b)))
        run_search(small, SearchOptions(trials=2, protocol=FAST, seed=1, db=str(b)))
    with sqlite3.connect(b) as conn:
        for table in ("trials", "searches"):
            conn.execute(
                f"UPDATE {table} SET chip = ?, host = 'laptop-b', host_id = 'b0b0b0b0b0b0', "
                "user = 'bob'",
                [CHIP_B],
            )
    conn.close()
    chip_a = _rows(a, "trials")[0]["chip"]
    assert chip_a != CHIP_B
    yield Machines(a, b, mlp, small, chip_a)


# -- helpers ------------------------------------------------------------------------------


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(db, [str(a) for a in args])


def run_top(*args: str | Path) -> Result:
    """Through the ``autotune`` group class: errors become one ``Error:`` line."""
    group = _Group(commands={"db": db})
    return CliRunner().invoke(group, ["db", *map(str, args)])


def ok(*args: str | Path) -> str:
    result = run(*args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def refused(kind: type[Exception], match: str, *args: str | Path) -> None:
    result = run(*args)
    assert result.exit_code == 1
    assert isinstance(result.exception, kind), repr(result.exception)
    assert re.search(match, str(result.exception)), str(result.exception)
    assert "\n" not in str(result.exception)


def _rows(path: Path, table: str) -> list[dict[str, Any]]:
    """Every row but the local id, in key order; a merged row's host id as it was exported
    (merge marks it ``merged:``: test_trust.py, test_merged_rows_are_never_this_machines_own)."""
    key = "trial_uid" if table == "trials" else "search_id"
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        rows = [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY {key}")]
    finally:
        conn.close()
    for r in rows:
        r.pop("id", None)
        if isinstance(r.get("host_id"), str):
            r["host_id"] = r["host_id"].removeprefix(MERGED)
    return rows


def dump(path: Path) -> dict[str, Any] | None:
    """The whole database: schema and every row of every table, local ids included."""
    if not path.exists():
        return None
    conn = sqlite3.connect(path)
    try:
        objects = conn.execute(
            "SELECT type, name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
        tables = [n for t, n, _ in objects if t == "table" and not n.startswith("sqlite_")]
        data = {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall() for t in tables}
    finally:
        conn.close()
    return {"schema": objects, "data": data}


def count(path: Path, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


def target() -> Path:
    """The default merge target: AUTOTUNE_DB of this test (set by conftest)."""
    return Path(os.environ["AUTOTUNE_DB"])


def populated_target(tmp_path: Path, machines: Machines) -> Path:
    ok("merge", machines.b)
    return target()


# -- export and merge ---------------------------------------------------------------------


@pytest.mark.slow
def test_export_then_merge_adds_up_without_duplicates(tmp_path: Path, machines: Machines) -> None:
    a_out, b_out = tmp_path / "share" / "a.db", tmp_path / "share" / "b.jsonl"
    (tmp_path / "share").mkdir()  # export never creates directories (like report -o)
    assert "exported 3 trials and 1 searches" in ok("export", "--db", machines.a, a_out)
    assert "exported 4 trials and 2 searches" in ok("export", "--db", machines.b, b_out)
    out = ok("merge", a_out, b_out).splitlines()
    assert out == [
        f"merged 3 trials (3 new, 0 already present, 0 skipped) and 1 searches from {a_out}",
        f"merged 4 trials (4 new, 0 already present, 0 skipped) and 2 searches from {b_out}",
    ]
    merged = target()
    trials = _rows(merged, "trials")
    assert len(trials) == 7 == len({t["trial_uid"] for t in trials})
    assert trials == sorted(
        _rows(machines.a, "trials") + _rows(machines.b, "trials"), key=lambda r: r["trial_uid"]
    )
    assert _rows(merged, "searches") == sorted(
        _rows(machines.a, "searches") + _rows(machines.b, "searches"),
        key=lambda r: r["search_id"],
    )
    # the same configuration measured on both chips is two results, both kept
    conn = sqlite3.connect(merged)
    shared = conn.execute(
        "SELECT config_id FROM trials GROUP BY config_id HAVING count(DISTINCT chip) = 2"
    ).fetchall()
    conn.close()
    assert shared


@pytest.mark.slow
def test_merge_twice_changes_nothing(tmp_path: Path, machines: Machines) -> None:
    b_out = tmp_path / "b.jsonl"
    ok("export", "--db", machines.b, b_out)
    ok("merge", machines.a, b_out)
    merged = target()
    before = dump(merged)
    again = ok("merge", machines.a, b_out, machines.b).splitlines()
    assert dump(merged) == before
    assert again[0].startswith("merged 3 trials (0 new, 3 already present, 0 skipped)")
    assert again[1].startswith("merged 4 trials (0 new, 4 already present, 0 skipped)")
    assert again[2].startswith("merged 4 trials (0 new, 4 already present, 0 skipped)")
    # and a database merged into a copy of itself
    copy = tmp_path / "copy.db"
    shutil.copy(merged, copy)
    ok("merge", copy)
    assert dump(merged) == before


@pytest.mark.slow
def test_jsonl_round_trip_keeps_every_row_identical(tmp_path: Path, machines: Machines) -> None:
    first = tmp_path / "b.jsonl"
    ok("export", "--db", machines.b, first)
    lines = [json.loads(line) for line in first.read_text(encoding="utf-8").splitlines()]
    assert all(next(iter(obj)) == "table" for obj in lines)  # "table" leads every line
    order = [
        (
            o["table"],
            o.get("started_at") or o.get("created_at"),
            o.get("search_id") or o["trial_uid"],
        )
        for o in lines
    ]
    assert order == sorted(order)  # searches first, then trials, oldest first: stable
    merged = tmp_path / "round.db"
    ok("merge", first, "--into", merged)
    for table in ("trials", "searches"):
        assert _rows(merged, table) == _rows(machines.b, table)
    # the merged database's export differs only by the merge mark; merged and exported again,
    # it gives the same bytes: no diff in git
    second, third = tmp_path / "again.jsonl", tmp_path / "third.jsonl"
    ok("export", "--db", merged, second)
    assert second.read_bytes() != first.read_bytes()
    assert second.read_text().replace(f'"host_id": "{MERGED}', '"host_id": "') == first.read_text()
    ok("merge", second, "--into", tmp_path / "round2.db")
    ok("export", "--db", tmp_path / "round2.db", third)
    assert third.read_bytes() == second.read_bytes()


@pytest.mark.slow
def test_jsonl_is_strict_json_even_for_infinite_errors(tmp_path: Path, machines: Machines) -> None:
    # an inaccurate trial stores an infinite error (shape mismatch, NaNs): SQLite keeps inf
    src = tmp_path / "inaccurate.db"
    shutil.copy(machines.a, src)
    with sqlite3.connect(src) as conn:
        conn.execute(
            "UPDATE trials SET status = 'inaccurate', max_abs_err = 9e999, err_to_tol = -9e999 "
            "WHERE rowid = (SELECT min(rowid) FROM trials)"
        )
    conn.close()
    out = tmp_path / "inaccurate.jsonl"
    ok("export", "--db", src, out)

    def strict(constant: str) -> None:
        raise AssertionError(f"not strict JSON: {constant}")

    for line in out.read_text(encoding="utf-8").splitlines():
        json.loads(line, parse_constant=strict)
    assert '"max_abs_err": "Infinity"' in out.read_text(encoding="utf-8")
    ok("merge", out, "--into", tmp_path / "back.db")
    assert _rows(tmp_path / "back.db", "trials") == _rows(src, "trials")
    (row,) = [r for r in _rows(src, "trials") if r["status"] == "inaccurate"]
    assert row["max_abs_err"] == float("inf") and row["err_to_tol"] == float("-inf")


@pytest.mark.slow
def test_export_filters_by_model_and_chip(tmp_path: Path, machines: Machines) -> None:
    ok("merge", machines.a, machines.b)
    small_digest = model_digest(machines.small)

    def exported(*filters: str) -> tuple[int, int]:
        out = tmp_path / "f.jsonl"
        ok("export", out, "--force", *filters)
        lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
        return (
            sum(1 for x in lines if x["table"] == "trials"),
            sum(1 for x in lines if x["table"] == "searches"),
        )

    assert exported() == (7, 3)
    assert exported("--model", "mlp.onnx") == (5, 2)
    assert exported("--model", str(machines.small)) == (2, 1)  # a path: its file name
    assert exported("--model", small_digest[:10]) == (2, 1)
    assert exported("--model", small_digest[:10].upper()) == (2, 1)
    assert exported("--chip", "Some NPU") == (4, 2)
    assert exported("--chip", machines.chip_a) == (3, 1)
    assert exported("--chip", "Other CPU", "--model", "mlp.onnx") == (2, 1)
    nothing = tmp_path / "nothing.jsonl"
    refused(AutotuneError, r"no results match --model 'resnet50.onnx'", "export", nothing,
            "--model", "resnet50.onnx")  # fmt: skip
    assert not nothing.exists()


@pytest.mark.slow
def test_export_refuses_to_overwrite_without_force(tmp_path: Path, machines: Machines) -> None:
    for name in ("out.jsonl", "out.db"):
        out = tmp_path / name
        out.write_text("keep me\n")
        refused(AutotuneError, r"exists; give --force", "export", "--db", machines.a, out)
        assert out.read_text() == "keep me\n"
        ok("export", "--db", machines.a, out, "--force")
        assert out.read_bytes() != b"keep me\n"
    refused(AutotuneError, r"is the database being exported", "export", "--db", machines.a,
            machines.a, "--force")  # fmt: skip
    refused(AutotuneError, r"is a directory", "export", "--db", machines.a, tmp_path)
    refused(DatabaseError, r"no database at", "export", "--db", tmp_path / "none.db", "x.db")
    assert not list(tmp_path.glob(".*.tmp*"))  # no temporary file left behind


@pytest.mark.slow
def test_exported_database_is_plain_sqlite(tmp_path: Path, machines: Machines) -> None:
    out = tmp_path / "team.db"
    ok("export", "--db", machines.b, out)
    assert not Path(f"{out}-wal").exists() and not Path(f"{out}-shm").exists()
    plain = sqlite_utils.Database(out)
    assert plain["trials"].count == 4
    assert plain["searches"].count == 2
    assert plain.journal_mode == "delete"  # one self-contained file
    seen = set()
    for table in ("trials", "searches"):
        for row in plain[table].rows:
            for column in JSON_COLUMNS & set(row):
                if row[column] is not None:
                    json.loads(row[column])
                    seen.add(column)
    plain.close()
    # pick_config too, unless every search of the fixture was inconclusive (a busy machine)
    picked = any(r["pick_config"] for r in _rows(machines.b, "searches"))
    expected = {"config", "placement", "params", "ratios", "verdict"} | (
        {"pick_config"} if picked else set()
    )
    assert expected <= seen
    readonly = open_readonly(out)
    assert readonly is not None
    readonly.conn.close()


# -- searches -----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_finished_search_wins_over_a_running_one(tmp_path: Path, machines: Machines) -> None:
    running = tmp_path / "running.db"
    shutil.copy(machines.a, running)
    with sqlite3.connect(running) as conn:
        conn.execute(
            "UPDATE searches SET state = 'running', finished_at = NULL, pick_config = NULL"
        )
    conn.close()
    done = _rows(machines.a, "searches")
    ok("merge", running)
    assert _rows(target(), "searches")[0]["state"] == "running"
    assert "and 1 searches" in ok("merge", machines.a)
    assert _rows(target(), "searches") == done
    before = dump(target())
    ok("merge", running)  # the older, unfinished row never replaces the finished one
    assert dump(target()) == before
    # of two different finished rows, neither replaces the other: the later one goes beside
    later = tmp_path / "later.db"
    shutil.copy(machines.a, later)
    with sqlite3.connect(later) as conn:
        conn.execute("UPDATE searches SET finished_at = '2999-01-01T00:00:00+00:00'")
    conn.close()
    assert "kept 1 search rows beside a different stored row" in ok("merge", later)
    stored, beside = _rows(target(), "searches")
    assert stored == done[0] and beside["search_id"].startswith(done[0]["search_id"] + "~")
    assert beside["finished_at"].startswith("2999")
    again = dump(target())
    assert "(0 new, 3 already present" in ok("merge", later)  # beside rows are found again
    assert dump(target()) == again


# -- hostile and broken sources ------------------------------------------------------------


def _trial_lines(machines: Machines) -> list[dict[str, Any]]:
    return [{"table": "trials", **r} for r in _rows(machines.a, "trials")]


@pytest.mark.slow
def test_malformed_jsonl_line_is_refused_naming_file_and_line(
    tmp_path: Path, machines: Machines
) -> None:
    merged = populated_target(tmp_path, machines)
    before = dump(merged)
    good = jsonl(tmp_path / "good.jsonl", _trial_lines(machines))
    bad = tmp_path / "bad.jsonl"
    lines = [json.dumps(x) for x in _trial_lines(machines)[:2]]
    bad.write_text(lines[0] + "\n" + lines[1] + "\n" + '{"table": "trials", "trial_uid": \n')
    refused(DatabaseError, rf"{re.escape(str(bad))}, line 3: malformed JSON", "merge", good, bad)
    assert dump(merged) == before  # the good source before it was not merged either
    for content, message in (
        (b"[1, 2]\n", "line 1: not a JSON object"),
        (b"\n\n\xff\xfe\n", "line 3: not UTF-8"),
    ):
        bad.write_bytes(content)
        refused(DatabaseError, message, "merge", bad)
    assert dump(merged) == before
    result = run_top("merge", good, bad)
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and result.output.startswith("Error: ")
    assert "line 3: not UTF-8" in result.output


@pytest.mark.slow
def test_malformed_rows_are_skipped_and_counted(tmp_path: Path, machines: Machines) -> None:
    valid = _trial_lines(machines)[0]
    broken: list[dict[str, Any]] = [
        {"trial_uid": 12345},
        {"trial_uid": None},
        {"trial_uid": ["a", "list"]},
        {"trial_uid": {"an": "object"}},
        {"trial_uid": ""},
        {"trial_uid": "x" * 1000},
        {"trial_uid": "u-no-digest", "model_digest": None},
        {"trial_uid": "u-chip-number", "chip": 7},
        {"trial_uid": "u-ratio-text", "ratio": "fast"},
        {"trial_uid": "u-number-bool", "runs": True},
        {"trial_uid": "u-number-float", "trial_number": 1.5},
        {"trial_uid": "u-huge-int", "runs": 2**70},
        {"trial_uid": "u-config-not-json", "config": "{not json"},
    ]
    rows = [valid] + [{**valid, **change} for change in broken]
    rows.append({"table": "searches", "search_id": 7, "state": "done"})
    rows.append({"table": "searches", "search_id": "s-ok", "state": "done", "wall_s": 3})
    src = jsonl(tmp_path / "broken.jsonl", rows)
    out = ok("merge", src)
    assert out.startswith(
        f"merged 14 trials (1 new, 0 already present, 13 skipped) and 1 searches from {src}"
    )
    assert "skipped 1 malformed search rows" in out
    merged = target()
    assert [r["trial_uid"] for r in _rows(merged, "trials")] == [valid["trial_uid"]]
    assert _rows(merged, "searches")[0]["wall_s"] == 3.0  # an int in a float column: a float


@pytest.mark.slow
def test_sql_in_text_columns_is_stored_verbatim(tmp_path: Path, machines: Machines) -> None:
    valid = _trial_lines(machines)[0]
    evil = {
        **valid,
        "trial_uid": "x'); DROP TABLE trials; --",
        "label": "Robert'); DROP TABLE searches; --",
        "chip": 'c"; DELETE FROM trials; --',
        "model_name": "m.onnx'; ATTACH DATABASE '/tmp/pwned.db' AS p; --",
        "error": "\x00\n\r\t'\"`;",
    }
    search = {
        "table": "searches",
        "search_id": "s'; UPDATE trials SET status='ok'; --",
        "state": "done",
        "verdict": json.dumps({"sql": "DROP TABLE searches"}),
    }
    ok("merge", jsonl(tmp_path / "evil.jsonl", [evil, search]))
    merged = target()
    (row,) = _rows(merged, "trials")
    assert {k: row[k] for k in evil if k != "table"} == {
        k: v for k, v in evil.items() if k != "table"
    }
    assert _rows(merged, "searches")[0]["search_id"] == search["search_id"]
    assert not Path("/tmp/pwned.db").exists()
    # exported and merged again, it is still the same string, and still one row
    out = tmp_path / "again.jsonl"
    ok("export", out)
    ok("merge", out)
    assert _rows(merged, "trials") == [row]


@pytest.mark.slow
def test_unknown_tables_and_columns_are_dropped(tmp_path: Path, machines: Machines) -> None:
    # a .db from "elsewhere": an extra column, table, view and trigger around real trials
    src = tmp_path / "extra.db"
    shutil.copy(machines.a, src)
    conn = sqlite3.connect(src)
    conn.executescript(
        """
        ALTER TABLE trials ADD COLUMN evil TEXT DEFAULT 'x';
        ALTER TABLE searches ADD COLUMN "weird name;--" INTEGER;
        CREATE TABLE payload (cmd TEXT);
        INSERT INTO payload VALUES ('rm -rf /');
        CREATE VIEW v_evil AS SELECT * FROM payload;
        CREATE TRIGGER t_evil AFTER INSERT ON trials BEGIN DELETE FROM searches; END;
        """
    )
    conn.close()
    out = ok("merge", src)
    assert out.startswith("merged 3 trials (3 new, 0 already present, 0 skipped) and 1 searches")
    assert "dropped unknown columns: searches.weird name;--, trials.evil" in out
    assert "ignored unknown tables: payload, v_evil" in out
    merged = target()
    assert _rows(merged, "trials") == _rows(machines.a, "trials")
    fresh = tmp_path / "fresh.db"
    open_writable(fresh).conn.close()
    assert dump(merged)["schema"] == dump(fresh)["schema"]  # type: ignore[index]
    # the same in JSON lines
    lines = [{**x, "evil": "x"} for x in _trial_lines(machines)]
    lines.append({"table": "payload", "cmd": "rm -rf /"})
    lines.append({"cmd": "no table at all"})
    out = ok("merge", jsonl(tmp_path / "extra.jsonl", lines))
    assert "(0 new, 3 already present, 0 skipped)" in out
    assert "dropped unknown columns: trials.evil" in out
    assert "ignored unknown tables: None, payload" in out


@pytest.mark.slow
def test_foreign_and_broken_databases_are_refused(tmp_path: Path, machines: Machines) -> None:
    merged = populated_target(tmp_path, machines)
    before = dump(merged)
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE users (name TEXT, password TEXT)")
    conn.commit()
    conn.close()
    text = tmp_path / "notes.db"
    text.write_text("not a database\n" * 10)
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    view = tmp_path / "view.db"
    conn = sqlite3.connect(view)
    conn.executescript(
        """
        CREATE TABLE _sqlite_migrations (id INTEGER PRIMARY KEY, migration_set TEXT, name TEXT,
                                         applied_at TEXT);
        INSERT INTO _sqlite_migrations VALUES (1, 'autotune', 'm001_initial', 'now');
        CREATE VIEW trials AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n)
            SELECT i AS trial_uid FROM n;
        """
    )
    conn.close()
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(machines.a.read_bytes()[:5000])
    good = jsonl(tmp_path / "good.jsonl", _trial_lines(machines))
    for src, message in (
        (foreign, r"is not an autotune database \(tables: users\)"),
        (text, r"is not a SQLite database"),
        (empty, r"holds no autotune results"),
        (view, r"holds no autotune results|not a plain table"),
        (truncated, r"damaged|cannot be read|malformed"),
        (tmp_path / "missing.db", r"no such file"),
        (tmp_path / "missing.jsonl", r"no such file"),
        (tmp_path, r"is a directory"),
    ):
        refused(DatabaseError, message, "merge", good, src)
        assert dump(merged) == before, src
    result = run_top("merge", foreign)
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and result.output.startswith("Error: ")
    # a refused source leaves a target that did not exist still missing
    fresh = tmp_path / "new" / "team.db"
    refused(DatabaseError, "not a SQLite database", "merge", good, text, "--into", fresh)
    assert not fresh.exists()


@pytest.mark.slow
def test_newer_schema_is_refused(tmp_path: Path, machines: Machines) -> None:
    merged = populated_target(tmp_path, machines)
    before = dump(merged)
    newer = tmp_path / "newer.db"
    shutil.copy(machines.a, newer)
    with sqlite3.connect(newer) as conn:
        conn.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
            "VALUES ('autotune', 'm999_from_the_future', '2030-01-01')"
        )
    conn.close()
    refused(DatabaseError, r"written by a newer autotune .*m999_from_the_future", "merge", newer)
    assert dump(merged) == before
    refused(DatabaseError, r"newer autotune", "export", "--db", newer, tmp_path / "x.jsonl")
    refused(DatabaseError, r"newer autotune", "merge", machines.a, "--into", newer)
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.slow
def test_merge_into_something_else_is_refused(tmp_path: Path, machines: Machines) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    refused(DatabaseError, "is not a SQLite database", "merge", machines.a, "--into", notes)
    assert notes.read_text() == "mine\n"
    result = run("merge")
    assert result.exit_code == 2  # click: SRC is required


# -- stats --------------------------------------------------------------------------------


@pytest.mark.slow
def test_stats_counts_models_chips_and_statuses(tmp_path: Path, machines: Machines) -> None:
    ok("merge", machines.a, machines.b)
    data = json.loads(ok("stats", "--json"))
    conn = sqlite3.connect(target())
    statuses = dict(conn.execute("SELECT status, count(*) FROM trials GROUP BY status").fetchall())
    conn.close()
    assert data["trials"] == 7 and data["searches"] == 3 and data["models"] == 2
    assert data["chips"] == sorted([machines.chip_a, CHIP_B])
    assert data["statuses"] == statuses
    assert len(data["ort_versions"]) == 1
    cells = {(r["model"], r["chip"]): (r["trials"], r["searches"]) for r in data["rows"]}
    assert cells == {
        ("mlp.onnx", machines.chip_a): (3, 1),
        ("mlp.onnx", CHIP_B): (2, 1),
        ("small.onnx", CHIP_B): (2, 1),
    }
    text = ok("stats")
    header = text.splitlines()[0].split()
    assert header[:4] == ["model", "digest", "chip", "trials"] and header[-2:] == [
        "searches",
        "ort",
    ]
    assert "2 models, 2 chips, 7 trials, 3 searches" in text
    # layers (personal first, team after it) count each trial once
    layered = os.pathsep.join([str(machines.a), str(target())])
    assert json.loads(ok("stats", "--json", "--db", layered))["trials"] == 7
    empty = ok("stats", "--db", tmp_path / "nothing.db")
    assert "no results yet" in empty


def test_stats_refuses_a_foreign_layer(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()
    refused(DatabaseError, "not an autotune database", "stats", "--db", foreign)


def test_db_group_is_a_click_group() -> None:
    assert isinstance(db, click.Group) and db.name == "db"
    assert set(db.commands) == {"export", "merge", "stats"}
    assert set(expected_schema()) == {"trials", "searches"}
