"""A study spanning several workers through Optuna's journal-file storage (as on a shared file
system), each worker measuring in its own processes, every trial landing in the results database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from autotune.store import Store


def test_three_workers_share_one_journal_study(mlp_path: Path, tmp_path: Path) -> None:
    journal = tmp_path / "study.log"
    env = {**os.environ, "AUTOTUNE_DB": str(tmp_path / "autotune.db")}
    cmd = [
        sys.executable,
        "-m",
        "autotune.cli",
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
    assert 9 <= rows[0]["trials"] <= 12
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    studies = optuna.get_all_study_summaries(JournalStorage(JournalFileBackend(str(journal))))
    assert len(studies) == 1 and studies[0].n_trials >= 9


def test_bad_storage_url(mlp_path: Path) -> None:
    from click.testing import CliRunner

    from autotune.cli import cli

    result = CliRunner().invoke(cli, ["search", str(mlp_path), "--storage", "nowhere"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: --storage 'nowhere' is not a storage URL; use journal:/path/to/file or an RDB "
        "URL such as postgresql://user@host/db"
    ]
