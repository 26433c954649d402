"""A study spanning several workers through Optuna's journal-file storage (as on a shared file
system), each worker measuring in its own processes, every trial landing in the results database."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from autotune.store.database import Store


@pytest.mark.slow
def test_three_workers_share_one_journal_study(mlp_path: Path, tmp_path: Path) -> None:
    journal = tmp_path / "study.log"
    env = {**os.environ, "AUTOTUNE_DB": str(tmp_path / "autotune.db")}
    cmd = [
        sys.executable,
        "-m",
        "autotune.commands.cli",
        "search",
        str(mlp_path),
        "--trials",
        "9",
        "--rounds",
        "2",
        "--storage",
        f"journal:{journal}",
        "--json",
    ]
    workers = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [w.communicate(timeout=600) for w in workers]
    for w, (out, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, err
        json.loads(out)
    with Store.open() as store:
        rows = store.summary()
    assert len(rows) == 1
    # the study stops at 9 finished trials; workers finishing at once may add one or two more
    assert 9 <= rows[0].trials <= 12
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    studies = optuna.get_all_study_summaries(JournalStorage(JournalFileBackend(str(journal))))
    assert len(studies) == 1 and studies[0].n_trials >= 9


def test_bad_storage_url(mlp_path: Path) -> None:
    from click.testing import CliRunner

    from autotune.commands.cli import cli

    result = CliRunner().invoke(cli, ["search", str(mlp_path), "--storage", "nowhere"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: --storage 'nowhere' is not a storage URL; use journal:/path/to/file or an RDB "
        "URL such as postgresql://user@host/db"
    ]


# -- the same on a real PostgreSQL server ------------------------------------------------------

POSTGRES = os.environ.get("AUTOTUNE_TEST_POSTGRES")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database on the server AUTOTUNE_TEST_POSTGRES names (a superuser URL, as
    scripts/postgres_local.sh starts one), dropped afterwards."""
    if not POSTGRES:
        pytest.skip(
            "no PostgreSQL server: AUTOTUNE_TEST_POSTGRES is not set (.ci/run installs and "
            "starts one with scripts/postgres_local.sh)"
        )
    import psycopg  # the test extra's driver: a missing one is a failure, not a skip

    name = f"autotune_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    base, _, _ = POSTGRES.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.slow
def test_three_workers_share_one_postgres_study(
    mlp_path: Path, tmp_path: Path, postgres_url: str
) -> None:
    """Three workers of one study on PostgreSQL, each with its own results database (as on three
    machines): every trial is measured once, lands in the study and in one results database with
    the same outcome, and the three databases merge without loss."""
    dbs = [tmp_path / f"worker{i}.db" for i in range(3)]
    cmd = [sys.executable, "-m", "autotune.commands.cli", "search", str(mlp_path), "--trials", "6",
           "--rounds", "2", "--storage", postgres_url, "--json"]  # fmt: skip
    workers = [
        subprocess.Popen(
            cmd,
            env={**os.environ, "AUTOTUNE_DB": str(db)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for db in dbs
    ]
    outputs = [w.communicate(timeout=600) for w in workers]
    for w, (out, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, err
        assert json.loads(out)["trials_measured"] >= 0
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(postgres_url)
    try:
        (summary,) = optuna.get_all_study_summaries(storage)
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    finally:
        storage.engine.dispose()
    assert not [t for t in trials.values() if t.state == TrialState.RUNNING]  # none left behind
    finished = [t for t in trials.values() if t.state.is_finished()]
    assert len(finished) >= 6
    rows = []
    for db in dbs:
        conn = sqlite3.connect(db)
        rows += conn.execute("SELECT trial_number, config_id, status, ratio FROM trials").fetchall()
        conn.close()
    numbers = [n for n, *_ in rows]
    configs = [c for _, c, *_ in rows]
    assert len(set(numbers)) == len(numbers)  # no trial recorded twice
    assert len(set(configs)) == len(configs)  # no configuration measured twice
    assert len(rows) >= 3
    expected = {"ok": TrialState.COMPLETE, "pruned": TrialState.PRUNED}
    for number, _, status, ratio in rows:  # every measured trial reached the study as it ended
        trial = trials[number]
        assert trial.state == expected.get(status, TrialState.FAIL), (number, status)
        if status == "ok":
            assert trial.value == pytest.approx(ratio)
    # the three results databases merge cleanly: every trial and search, nothing skipped
    merged = tmp_path / "merged.db"
    from click.testing import CliRunner

    from autotune.commands.cli import cli

    result = CliRunner().invoke(cli, ["db", "merge", *map(str, dbs), "--into", str(merged)])
    assert result.exit_code == 0, result.output
    assert "skipped" not in result.output.replace("0 skipped", "")
    conn = sqlite3.connect(merged)
    assert conn.execute("SELECT count(*) FROM trials").fetchone()[0] == len(rows)
    assert conn.execute("SELECT count(DISTINCT search_id) FROM searches").fetchone()[0] == 3
    conn.close()
