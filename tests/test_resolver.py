"""best_session / best_config: what an app gets, with and without stored results."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

import autotune
from autotune.config import SessionConfig
from autotune.errors import SessionBuildError
from autotune.store.database import Store
from autotune.store.records import SearchRecord, TrialRecord
from tests.rows import store_finished_search


def _store_pick(
    mlp_path: Path,
    config: SessionConfig,
    *,
    ort_version: str | None = None,
    finished_at: str = "2026-11-23T00:00:00+00:00",
    **search: object,
) -> None:
    """Write a finished search whose verdict is ``config`` (as a search on this chip would)."""
    store_finished_search(
        mlp_path,
        config,
        search_id=config.config_id + (ort_version or ""),
        ratio=0.9,
        common={"ort_version": ort_version} if ort_version else None,
        search={"finished_at": finished_at, **search},
    )


def test_no_database_gives_defaults_and_one_warning(
    mlp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="autotune"):
        session = autotune.best_session(mlp_path)
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert session.get_session_options().intra_op_num_threads == 0
    assert len(caplog.records) == 1
    assert "no tuned configuration" in caplog.records[0].getMessage()
    assert autotune.best_config(mlp_path) is None
    with pytest.raises(SessionBuildError, match="run: autotune search"):
        autotune.best_session(mlp_path, strict=True)


def test_stored_pick_is_applied(mlp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = SessionConfig(
        graph_optimization_level="ORT_ENABLE_BASIC", intra_op_num_threads=1
    ).canonical()
    _store_pick(mlp_path, config)
    best = autotune.best_config(mlp_path)
    assert best is not None and best.config == config and not best.stale
    assert best.source == "verdict" and best.speedup == pytest.approx(1 / 0.9)
    with caplog.at_level(logging.WARNING, logger="autotune"):
        session = autotune.best_session(mlp_path, warmup=True)
    assert not caplog.records
    options = session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert str(options.graph_optimization_level).endswith("ORT_ENABLE_BASIC")


def test_config_for_another_build_falls_back(
    mlp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a valid CUDA configuration (e.g. merged from a GPU machine) cannot build with this wheel
    cuda = SessionConfig(
        providers=(("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"}),)
    ).canonical()
    _store_pick(mlp_path, cuda)
    with caplog.at_level(logging.WARNING, logger="autotune"):
        session = autotune.best_session(mlp_path)
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert any("failed to build here" in r.getMessage() for r in caplog.records)
    with pytest.raises(SessionBuildError, match="failed to build here"):
        autotune.best_session(mlp_path, strict=True)


def test_unsafe_stored_config_is_refused(mlp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    older = SessionConfig(intra_op_num_threads=1).canonical()
    _store_pick(mlp_path, older, finished_at="2026-11-01T00:00:00+00:00")
    newer = SessionConfig(intra_op_num_threads=2).canonical()
    _store_pick(mlp_path, newer, finished_at="2026-11-23T00:00:00+00:00")
    db = Path(Store.open().paths[0])
    conn = sqlite3.connect(db)
    hostile = json.dumps(
        {
            "providers": [["CPUExecutionProvider", {}]],
            "session_entries": {"session.debug_layout_transformation": "1"},
        }
    )
    with conn:
        conn.execute("UPDATE searches SET pick_config = ? WHERE search_id = ?",
                     (hostile, newer.config_id))  # fmt: skip
    conn.close()
    with caplog.at_level(logging.WARNING, logger="autotune"):
        best = autotune.best_config(mlp_path)
    # the hostile (newest) verdict is refused; the older valid verdict is used instead
    assert best is not None and best.config == older and best.source == "verdict"
    (record,) = caplog.records
    assert "refused 1 stored configuration (session entry" in record.getMessage()


def test_stale_result_from_another_ort_version(mlp_path: Path) -> None:
    config = SessionConfig(intra_op_num_threads=1).canonical()
    _store_pick(mlp_path, config, ort_version="0.0.1")
    best = autotune.best_config(mlp_path)
    assert best is not None and best.stale and best.key.ort_version == "0.0.1"


def test_corrupt_database_does_not_break_the_app(
    mlp_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "broken.db"
    bad.write_bytes(b"garbage" * 100)
    with caplog.at_level(logging.WARNING, logger="autotune"):
        session = autotune.best_session(mlp_path, db=str(bad))
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert "is not a SQLite database" in caplog.records[0].getMessage()


# -- what is served (issue 13): only concluded searches' verdicts, of the objective asked -----

FAST_ONE = SessionConfig(intra_op_num_threads=1).canonical()
QUICK_LOAD = SessionConfig(graph_optimization_level="ORT_DISABLE_ALL").canonical()


def _search(mlp_path: Path, search_id: str, pick: SessionConfig | None, **row: object) -> None:
    from autotune.chip import current_chip
    from autotune.digest import model_digest

    chip = current_chip()
    key = {"model_digest": model_digest(mlp_path), "chip": chip.chip_id,
           "ort_version": chip.ort_version, "shapes": "x=1x16", "default_shapes": 1}  # fmt: skip
    with Store.open(write=True) as store:
        store.upsert_search(SearchRecord.from_row(
            {**key, "search_id": search_id, "objective": "latency",
                             "finished_at": "2026-11-23T00:00:00+00:00",
                             "pick_config": pick.to_json() if pick else None, "pick_ratio": 0.9,
                             **row}))  # fmt: skip
        for uid, cfg, ratio, create in (
            ("default", SessionConfig().canonical(), 1.0, 50.0),
            ("fast", FAST_ONE, 0.5, 60.0),
            ("quick", QUICK_LOAD, 1.05, 5.0),
        ):
            store.record_trial(TrialRecord.from_row(
                {**key, "trial_uid": f"{search_id}-{uid}", "search_id": search_id,
                                "config_id": cfg.config_id, "config": cfg.to_json(),
                                "status": "ok", "ratio": ratio, "session_create_ms": create,
                                "first_run_ms": 1.0, "session_rss_mb": 5.0}))  # fmt: skip


@pytest.mark.parametrize(
    "row",
    [
        {"state": "running"},
        {"state": "interrupted"},  # stopped before its head-to-head: no pick
        {"state": "failed", "error": "boom"},
        {"state": "done", "outcome": "inconclusive", "aa_spread": 0.2},
    ],
    ids=["running", "interrupted", "failed", "inconclusive"],
)
def test_only_concluded_searches_are_served(
    row: dict[str, object], mlp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # even with a pick_config in the row, and trials that measured faster than the default
    _search(mlp_path, "s1", FAST_ONE, **row)
    for prefer in ("latency", "load", "memory", "balanced"):
        assert autotune.best_config(mlp_path, prefer=prefer) is None, prefer
    with caplog.at_level(logging.WARNING, logger="autotune"):
        session = autotune.best_session(mlp_path)
    assert session.get_session_options().intra_op_num_threads == 0  # ORT's defaults
    assert "no tuned configuration" in caplog.records[0].getMessage()


@pytest.mark.parametrize("outcome", [None, "pick", "default"])
def test_a_concluded_search_is_served(outcome: str | None, mlp_path: Path) -> None:
    _search(mlp_path, "s1", FAST_ONE, state="done", outcome=outcome)
    best = autotune.best_config(mlp_path)
    # a default verdict serves ORT's defaults, whatever configuration the row holds
    served = SessionConfig().canonical() if outcome == "default" else FAST_ONE
    assert best is not None and best.config == served and best.source == "verdict"


def test_single_trials_are_never_served(mlp_path: Path) -> None:
    from autotune.chip import current_chip
    from autotune.digest import model_digest

    chip = current_chip()
    with Store.open(write=True) as store:  # a trial without any search: never won a head-to-head
        store.record_trial(TrialRecord.from_row(
            {"trial_uid": "lonely", "model_digest": model_digest(mlp_path),
                            "chip": chip.chip_id, "ort_version": chip.ort_version,
                            "shapes": "x=1x16", "default_shapes": 1,
                            "config_id": FAST_ONE.config_id, "config": FAST_ONE.to_json(),
                            "status": "ok", "ratio": 0.1}))  # fmt: skip
    assert autotune.best_config(mlp_path) is None
    # the head-to-head kept the default: its faster-looking trial stays a trial
    _search(mlp_path, "s1", SessionConfig().canonical(), state="done", outcome="default")
    best = autotune.best_config(mlp_path)
    assert best is not None and best.config.is_default()


def test_latency_never_gets_another_objectives_pick(mlp_path: Path) -> None:
    _search(mlp_path, "s-load", QUICK_LOAD, state="done", outcome="pick", objective="load",
            finished_at="2026-11-30T00:00:00+00:00")  # fmt: skip
    assert autotune.best_config(mlp_path) is None  # prefer="latency": no latency search
    session = autotune.best_session(mlp_path)
    assert str(session.get_session_options().graph_optimization_level).endswith("ENABLE_ALL")
    load = autotune.best_config(mlp_path, prefer="load")
    assert load is not None and load.config == QUICK_LOAD and load.source == "verdict"
    # with a latency search too, each preference gets its own objective's verdict first
    _search(mlp_path, "s-lat", FAST_ONE, state="done", outcome="pick")
    latency = autotune.best_config(mlp_path)
    assert latency is not None and latency.config == FAST_ONE
    memory = autotune.best_config(mlp_path, prefer="memory")  # no memory search: the Pareto set
    assert memory is not None and memory.source == "pareto:memory"


def test_pareto_set_only_from_concluded_searches(mlp_path: Path) -> None:
    _search(mlp_path, "s-open", FAST_ONE, state="interrupted")
    _search(mlp_path, "s-inc", None, state="done", outcome="inconclusive")
    assert autotune.best_config(mlp_path, prefer="load") is None
    _search(mlp_path, "s-done", FAST_ONE, state="done", outcome="pick")
    chosen = autotune.best_config(mlp_path, prefer="load")
    assert chosen is not None and chosen.config == QUICK_LOAD and chosen.source == "pareto:load"
