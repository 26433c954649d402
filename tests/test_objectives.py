"""Latency is not all: load time and memory, the Pareto set, and choosing by objective."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import autotune
from autotune.config import DEFAULT_CONFIG, SessionConfig
from autotune.errors import SearchError
from autotune.store.database import Store
from autotune.store.records import SearchRecord, TrialRecord
from autotune.tuning import objectives
from autotune.tuning.search import SearchOptions, run_search
from tests.conftest import FAST


def _row(cid: str, ratio: float, load: float, mem: float) -> TrialRecord:
    return TrialRecord(config_id=cid, ratio=ratio, session_create_ms=load - 1, first_run_ms=1.0,
                       session_rss_mb=mem)  # fmt: skip


def test_pareto_and_choice() -> None:
    fast = _row("fast", 0.8, 300, 50)
    light = _row("light", 1.1, 40, 10)
    both_worse = _row("worse", 1.2, 400, 60)
    default = _row("default", 1.0, 100, 20)
    rows = [fast, light, both_worse, default]
    assert {r.config_id for r in objectives.pareto(rows)} == {"fast", "light", "default"}
    # on latency and load time alone, a row kept only for its memory drops out
    lean = _row("lean", 1.05, 120, 5)
    assert lean in objectives.pareto([*rows, lean])
    assert lean not in objectives.pareto([*rows, lean], memory=False)
    assert {r.config_id for r in objectives.pareto(rows, memory=False)} == {
        "fast", "light", "default"
    }  # fmt: skip
    assert objectives.choose(rows, "latency", default)[0] is fast
    assert objectives.choose(rows, "load", default)[0] is light
    assert objectives.choose(rows, "memory", default)[0] is light
    # balanced: 0.8 * sqrt(3) = 1.39 > 1.1 * sqrt(0.4) = 0.70
    assert objectives.choose(rows, "balanced", default)[0] is light
    assert objectives.score(light, "load", default) == pytest.approx(0.4)
    with pytest.raises(SearchError, match="not one of latency, load, memory, balanced"):
        objectives.check("speed")


def test_best_session_prefers_load_when_asked(
    mlp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from autotune.chip import current_chip
    from autotune.digest import model_digest

    quick_load = SessionConfig(graph_optimization_level="ORT_DISABLE_ALL").canonical()
    fast_run = SessionConfig(intra_op_num_threads=1).canonical()
    base = {"model_digest": model_digest(mlp_path), "chip": current_chip().chip_id,
            "ort_version": current_chip().ort_version, "shapes": "x=1x16", "default_shapes": 1,
            "status": "ok", "first_run_ms": 1.0, "session_rss_mb": 5.0}  # fmt: skip
    with Store.open(write=True) as store:
        # the trials of a finished latency search whose head-to-head picked fast_run
        store.upsert_search(SearchRecord.from_row(
            {**{k: base[k] for k in ("model_digest", "chip", "ort_version",
                             "shapes", "default_shapes")}, "search_id": "s1", "state": "done",
                             "objective": "latency", "pick_config": fast_run.to_json(),
                             "pick_ratio": 0.85}))  # fmt: skip
        for uid, cfg, ratio, create in (
            ("a", DEFAULT_CONFIG, 1.0, 50.0),
            ("b", quick_load, 1.05, 5.0),
            ("c", fast_run, 0.85, 60.0),
        ):
            store.record_trial(TrialRecord.from_row(
                {**base, "trial_uid": uid, "config_id": cfg.config_id,
                                "search_id": "s1", "config": cfg.to_json(), "ratio": ratio,
                                "session_create_ms": create}))  # fmt: skip
    assert autotune.best_config(mlp_path).config == fast_run  # type: ignore[union-attr]
    chosen = autotune.best_config(mlp_path, prefer="load")
    assert chosen is not None and chosen.config == quick_load and chosen.source == "pareto:load"
    with caplog.at_level(logging.WARNING, logger="autotune"):
        session = autotune.best_session(mlp_path, prefer="load")
    assert str(session.get_session_options().graph_optimization_level).endswith("DISABLE_ALL")
    assert not caplog.records


def test_search_for_load_time(mlp_path: Path) -> None:
    outcome = run_search(mlp_path, SearchOptions(trials=6, protocol=FAST, objective="load"))
    with Store.open() as store:
        search = store.searches(outcome.key)[0]
        rows = store.trials(outcome.key)
    assert search.objective == "load"
    assert all(r.status != "pruned" for r in rows)  # no pruning on latency for load
    if outcome.pick is not None and not outcome.pick.is_default():  # None: inconclusive
        default = next(r for r in rows if r.config_id == DEFAULT_CONFIG.config_id)
        picked = next(r for r in rows if r.config_id == outcome.pick.config_id)
        assert picked.load_ms < default.load_ms  # type: ignore[operator]
