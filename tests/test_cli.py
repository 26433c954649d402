"""Every error a user can hit: one line naming the fix, exit 1, no traceback, database intact."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from autotune.commands.cli import cli
from tests import models


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def populated_db(tmp_path: Path, mlp_path: Path) -> Path:
    """A database with one real (tiny) search in it: its verdict is what best serves. The
    margin is so wide that the default stays and even a loaded test machine's A/A spread (up to
    76% measured for this 10 µs model on 2 rounds per process) does not veto it."""
    code, out = run("search", str(mlp_path), "--trials", "2", "--rounds", "2", "--min-gain", "0.99")
    assert code == 0, out
    db = tmp_path / "autotune.db"
    assert db.exists()
    return db


def _assert_one_error_line(code: int, out: str, expected: str) -> None:
    assert code == 1, out
    assert "Traceback" not in out
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert lines[0].startswith("Error: ")
    assert expected in lines[0], lines[0]


def _bad_model_cases(tmp_path: Path, mlp_path: Path) -> list[tuple[list[str], str]]:
    not_onnx = tmp_path / "notes.onnx"
    not_onnx.write_text("this is not a model\n" * 20)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(mlp_path.read_bytes()[: mlp_path.stat().st_size // 2])
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    dyn = models.dynamic(tmp_path / "dyn.onnx")
    wrong_npz = tmp_path / "wrong.npz"
    np.savez(wrong_npz, x=np.ones((1, 3), dtype=np.float32))
    wrong_names = tmp_path / "names.npz"
    np.savez(wrong_names, other=np.ones((1, 16), dtype=np.float32))
    m = str(mlp_path)
    return [
        (["search", str(tmp_path / "missing.onnx")], "no such file"),
        (["search", str(tmp_path)], "is a directory"),
        (["search", str(not_onnx)], "is not an ONNX model or is truncated"),
        (["search", str(truncated)], "is not an ONNX model or is truncated"),
        (["search", str(empty)], "is empty"),
        (["search", str(dyn)], "--shape tokens=1xN"),
        (["search", m, "--shape", "x=1by16"], "write it like --shape input=1x3x224x224"),
        (["search", m, "--shape", "nope=1x16"], "unknown input(s) nope; the model's inputs are x"),
        (["search", m, "--shape", "x=1x16x2"], "has rank 3 but the input has rank 2"),
        (["search", m, "--shape", "x=1x17"], "conflicts with the model's fixed shape"),
        (["search", m, "--inputs", str(wrong_npz)], "has shape 1x3 but the input is batchx16"),
        (["search", m, "--inputs", str(wrong_names)], "missing x; unknown other"),
        (["search", m, "--inputs", str(tmp_path / "none.npz")], "no such file"),
        (["search", m, "--trials", "0"], "--trials must be at least 1, not 0"),
        (["search", m, "--trials", "-3"], "--trials must be at least 1, not -3"),
        (["best", str(tmp_path / "missing.onnx")], "no such file"),
        (["show", str(tmp_path)], "is a directory"),
    ]


@pytest.mark.slow
def test_bad_inputs_leave_the_database_as_it_was(
    tmp_path: Path, mlp_path: Path, populated_db: Path
) -> None:
    before = _digest(populated_db)
    for args, expected in _bad_model_cases(tmp_path, mlp_path):
        code, out = run(*args)
        _assert_one_error_line(code, out, expected)
    assert _digest(populated_db) == before


def test_not_sqlite_database(tmp_path: Path, mlp_path: Path) -> None:
    bogus = tmp_path / "bogus.db"
    bogus.write_text("hello, not a database\n")
    for args in (["search", str(mlp_path)], ["best", str(mlp_path)], ["list"]):
        code, out = run(*args, "--db", str(bogus))
        _assert_one_error_line(code, out, "is not a SQLite database")
    assert bogus.read_text() == "hello, not a database\n"


@pytest.mark.slow
def test_newer_schema_is_refused_untouched(populated_db: Path, mlp_path: Path) -> None:
    conn = sqlite3.connect(populated_db)
    with conn:
        conn.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
            "VALUES ('autotune', 'm999_from_the_future', 'x')"
        )
    conn.close()
    before = _digest(populated_db)
    for args in (["search", str(mlp_path)], ["best", str(mlp_path)], ["list"]):
        code, out = run(*args)
        _assert_one_error_line(code, out, "written by a newer autotune")
    assert _digest(populated_db) == before


def test_foreign_sqlite_database_is_refused(tmp_path: Path, mlp_path: Path) -> None:
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.commit()
    conn.close()
    before = _digest(foreign)
    code, out = run("search", str(mlp_path), "--db", str(foreign))
    _assert_one_error_line(code, out, "is not an autotune database")
    assert _digest(foreign) == before


@pytest.mark.slow
def test_search_best_show_list_chip(populated_db: Path, mlp_path: Path) -> None:
    code, out = run("best", str(mlp_path), "--json")
    assert code == 0, out
    best = json.loads(out)
    assert best["shapes"] == "x=1x16" and best["source"] == "verdict"
    code, out = run("best", str(mlp_path))
    assert code == 0 and "speed-up:" in out and "graph_optimization_level" in out
    code, out = run("show", str(mlp_path))
    assert code == 0 and "CPU ALL t0" in out and "CPU:3" in out
    code, out = run("list")
    assert code == 0 and "mlp.onnx" in out and "x=1x16" in out
    code, out = run("chip")
    assert code == 0 and "cores)" in out and "CPUExecutionProvider" in out


def test_best_without_results(mlp_path: Path) -> None:
    code, out = run("best", str(mlp_path))
    _assert_one_error_line(code, out, f"run: autotune search {mlp_path}")


@pytest.mark.slow
def test_search_json_output(mlp_path: Path) -> None:
    code, out = run(
        "search", str(mlp_path), "--trials", "2", "--rounds", "2", "--min-gain", "0.99", "--json"
    )
    assert code == 0, out
    data = json.loads(out)
    assert data["trials_measured"] == 2
    assert data["compared"][0]["label"] == "CPU ALL t0"
    assert data["outcome"] in ("pick", "default"), data["reason"]
    assert data["speedup"] >= 1.0
    assert data["speedup_low"] <= data["speedup"] <= data["speedup_high"]


def test_every_command_has_help() -> None:
    for name, command in cli.commands.items():
        assert command.help, name
        code, out = run(name, "--help")
        assert code == 0 and "Usage:" in out


@pytest.mark.slow
def test_best_format_snippets(populated_db: Path, mlp_path: Path) -> None:
    code, out = run("best", str(mlp_path), "--format", "python")
    assert code == 0 and "import onnxruntime as ort" in out and "InferenceSession(" in out
    code, out = run("best", str(mlp_path), "--format", "swift")
    assert code == 0 and "ORTSessionOptions()" in out
    code, out = run("best", str(mlp_path), "--format", "json")
    assert code == 0 and json.loads(out)["providers"][-1][0] == "CPUExecutionProvider"


@pytest.mark.slow
def test_report_command(populated_db: Path, mlp_path: Path, tmp_path: Path) -> None:
    code, out = run("report", str(mlp_path), "-o", str(tmp_path / "r.html"))
    assert code == 0, out
    assert "<svg" in (tmp_path / "r.html").read_text()


def test_usage_errors_are_one_line(mlp_path: Path) -> None:
    for args, expected in (
        (["search", str(mlp_path), "--objective", "fast"], "Invalid value for '--objective'"),
        (["search", str(mlp_path), "--trials", "x"], "'x' is not a valid integer"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["db", "merge"], "Missing argument"),
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0]
        assert "--help)" in lines[0]
