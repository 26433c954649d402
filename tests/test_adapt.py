"""adapt: borrowed results raced against ORT's defaults on this machine, stored as its own."""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import autotune
from autotune import adapt as adapt_module
from autotune import background
from autotune.chip import current_chip
from autotune.config import SessionConfig
from autotune.store.database import Store
from tests.conftest import FAST
from tests.rows import store_finished_search
from tests.test_ladder import sibling_chip


def _relabel_to_sibling(db: Path, model: Path) -> str:
    """Store a verdict measured on this chip, then relabel every row to a sibling chip (this
    chip's model with another core count), as if the database came from that machine."""

    config = SessionConfig(
        graph_optimization_level="ORT_ENABLE_BASIC", intra_op_num_threads=1
    ).canonical()
    store_finished_search(model, config, db=str(db), search_id="s1")
    sibling, desc = sibling_chip()
    conn = sqlite3.connect(db)
    for table in ("trials", "searches"):
        conn.execute(f"UPDATE {table} SET chip = ?, chip_descriptor = ?", [sibling, desc.to_json()])
    conn.commit()
    conn.close()
    return sibling


@pytest.mark.slow
def test_adapt_stores_a_local_verdict_for_a_relabelled_database(
    mlp_path: Path, tmp_path: Path
) -> None:
    db = tmp_path / "autotune.db"
    sibling = _relabel_to_sibling(db, mlp_path)
    before = autotune.best_config(mlp_path)
    assert before is not None and before.borrowed and before.key.chip == sibling
    result = adapt_module.adapt(mlp_path, budget_s=25, protocol=FAST, min_gain=0.99)
    assert result.status == "adapted", result.message
    assert result.borrowed_from == [sibling]
    assert [c["borrowed_from"] for c in result.compared] == [None, sibling]
    assert result.compared[0]["ratio"] == pytest.approx(1.0)
    assert all(c["ratio"] and c["ratio"] > 0 for c in result.compared)
    assert result.pick is not None and result.rounds >= 3
    # the verdict is this chip's own now: the next lookup is exact, whichever won
    after = autotune.best_config(mlp_path)
    assert after is not None and not after.borrowed and after.source == "verdict"
    assert after.key.chip == current_chip().chip_id and after.config == result.pick
    with Store.open(write=False) as store:
        searches = [
            s for s in store.searches(after.key) if (s.search_id or "").startswith("adapt-")
        ]
    assert len(searches) == 1
    verdict = searches[0].verdict
    assert verdict["kind"] == "adapt" and verdict["adapted_from"] == [sibling]
    # a pick only if it beat the default by the margin, measured here
    if not result.pick.is_default():
        assert result.pick_ratio is not None and result.pick_ratio <= 0.97
    again = adapt_module.adapt(mlp_path, budget_s=25, protocol=FAST, min_gain=0.99)
    assert again.status == "exact"


def test_adapt_with_nothing_to_borrow_and_the_cli(mlp_path: Path) -> None:
    from autotune.commands.cli import cli

    out = CliRunner().invoke(cli, ["adapt", str(mlp_path), "--json", "--nice", "0"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["status"] == "nothing"


@pytest.mark.slow
def test_best_session_adapts_in_the_background(
    mlp_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _relabel_to_sibling(tmp_path / "autotune.db", mlp_path)
    started: list[Any] = []
    original = background.start_background

    def spy(*args: Any, **kwargs: Any) -> Any:
        # a wide margin: the A/A control of a loaded test machine does not veto the verdict
        proc = functools.partial(original, budget_s=20, nice=0, min_gain=0.99)(*args, **kwargs)
        started.append(proc)
        return proc

    monkeypatch.setattr(background, "start_background", spy)
    session = autotune.best_session(mlp_path, adapt="background")
    # returned at once, with the borrowed configuration
    assert str(session.get_session_options().graph_optimization_level).endswith("BASIC")
    assert len(started) == 1 and started[0] is not None
    assert started[0].wait(timeout=240) == 0
    after = autotune.best_config(mlp_path)
    assert after is not None and not after.borrowed
    # measured here now: no second background run
    autotune.best_session(mlp_path, adapt="background")
    assert len(started) == 1
    with pytest.raises(ValueError):
        autotune.best_session(mlp_path, adapt="now")


def test_adapt_stops_at_its_budget_and_stores_nothing(mlp_path: Path, tmp_path: Path) -> None:
    sibling = _relabel_to_sibling(tmp_path / "autotune.db", mlp_path)
    # far too little time for the head-to-head's processes to start: stopped, nothing stored
    result = adapt_module.adapt(mlp_path, budget_s=0.01, protocol=FAST)
    assert result.status == "failed" and "budget" in result.message, result.message
    after = autotune.best_config(mlp_path)
    assert after is not None and after.borrowed and after.key.chip == sibling


def test_a_frozen_app_is_never_relaunched_to_adapt(
    mlp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # sys.frozen is what py2app, PyInstaller and Briefcase set; this interpreter is not one, so
    # the attribute is injected, and Popen is watched to prove nothing is started
    started: list[Any] = []
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: started.append(a))
    with caplog.at_level(logging.WARNING, logger="autotune"):
        assert background.start_background(mlp_path) is None
    assert started == []
    assert "skipped in a frozen app" in caplog.text
