"""End-to-end searches on a real (small) model with the real onnxruntime, optuna and SQLite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from autotune.config import DEFAULT_CONFIG, SessionConfig
from autotune.errors import SearchError, ShapeError
from autotune.store.database import ResultKey, Store
from autotune.store.records import TrialRecord
from autotune.tuning.search import SearchOptions, run_search
from tests import faults
from tests.conftest import FAST


def _options(**kw: object) -> SearchOptions:
    base: dict[str, object] = {"trials": 5, "protocol": FAST, "seed": 1}
    base.update(kw)
    return SearchOptions(**base)  # type: ignore[arg-type]


def _trials(outcome_key: ResultKey) -> list[TrialRecord]:
    with Store.open() as store:
        return store.trials(outcome_key)


@pytest.mark.slow
def test_search_stores_every_trial_with_default_first(mlp_path: Path) -> None:
    outcome = run_search(mlp_path, _options())
    rows = _trials(outcome.key)
    assert len(rows) == 5 == outcome.measured
    first = min(rows, key=lambda r: r.trial_number)  # type: ignore[arg-type, return-value]
    assert first.config_id == DEFAULT_CONFIG.config_id
    assert len({r.config_id for r in rows}) == 5  # no configuration measured twice
    for row in rows:
        assert row.status in ("ok", "pruned")
        assert row.chip == outcome.key.chip
        assert row.shapes == "x=1x16"
        assert row.autotune_version
        assert row.session_create_ms is not None and row.first_run_ms is not None
        config = SessionConfig.from_json(row.config)  # type: ignore[arg-type]
        # every node on the configuration's provider (a plugin EP's device on an x86 CPU)
        assert row.placement["nodes"] == {config.primary_provider: 3}
    ok = [r for r in rows if r.status == "ok"]
    assert all(0.2 < r.ratio < 5 for r in ok)  # type: ignore[operator]
    assert outcome.compared[0]["config_id"] == DEFAULT_CONFIG.config_id
    # the verdict never reports something slower than the default as the pick
    assert outcome.outcome == "inconclusive" or outcome.speedup >= 1.0  # type: ignore[operator]


@pytest.mark.slow
def test_search_resumes_without_measuring_again(mlp_path: Path) -> None:
    first = run_search(mlp_path, _options(trials=3))
    second = run_search(mlp_path, _options(trials=6, seed=2))
    assert second.resumed == 3
    assert second.measured == 3
    rows = _trials(first.key)
    assert len(rows) == 6
    assert len({r.config_id for r in rows}) == 6
    # a third run with the same budget measures nothing new, and still gives a verdict
    third = run_search(mlp_path, _options(trials=6))
    assert third.measured == 0 and len(_trials(first.key)) == 6


@pytest.mark.slow
def test_crashing_trial_is_recorded_and_search_goes_on(mlp_path: Path) -> None:
    # injected fault (tests/faults.py): configurations with one intra-op thread segfault
    options = _options(trials=8, worker_target=faults.crashing_worker)
    outcome = run_search(mlp_path, options)
    rows = _trials(outcome.key)
    crashed = [r for r in rows if r.status == "crashed"]
    assert crashed, "the sampler should have proposed a one-thread configuration in 8 trials"
    assert all("SIGSEGV" in r.error for r in crashed)  # type: ignore[operator]
    assert all(json.loads(r.config or "")["intra_op_num_threads"] == 1 for r in crashed)
    assert len([r for r in rows if r.status in ("ok", "pruned")]) == len(rows) - len(crashed)
    assert outcome.measured == 8
    # resumed: the crashed configurations are known and never tried again
    again = run_search(mlp_path, _options(trials=12, worker_target=faults.crashing_worker))
    rows = _trials(outcome.key)
    ids = [r.config_id for r in rows]
    assert len(ids) == len(set(ids)) == 12
    assert again.resumed == 8


@pytest.mark.slow
def test_hanging_trial_times_out(mlp_path: Path) -> None:
    # injected fault (tests/faults.py): configurations with one intra-op thread hang
    options = _options(
        trials=8,
        trial_timeout=3.0,
        worker_target=faults.hanging_worker,
        providers=("CPUExecutionProvider",),  # the one-thread variant comes within the budget
    )
    outcome = run_search(mlp_path, options)
    rows = _trials(outcome.key)
    timeouts = [r for r in rows if r.status == "timeout"]
    assert timeouts
    assert "no answer within 3 s" in timeouts[0].error  # type: ignore[operator]
    assert outcome.measured == 8


def test_symbolic_dims_need_shapes(dynamic_path: Path) -> None:
    with pytest.raises(ShapeError) as info:
        run_search(dynamic_path, _options())
    message = str(info.value)
    assert "--shape tokens=1xN" in message and "--shape x=1xNx8" in message
    assert not Path(Store.open().paths[0]).exists()  # nothing written for bad input


@pytest.mark.slow
def test_shapes_key_results(dynamic_path: Path) -> None:
    a = run_search(dynamic_path, _options(trials=2, shapes={"tokens": (1, 8), "x": (1, 3, 8)}))
    b = run_search(dynamic_path, _options(trials=2, shapes={"tokens": (1, 32), "x": (1, 3, 8)}))
    assert a.key.shapes == "tokens=1x8;x=1x3x8" and b.key.shapes == "tokens=1x32;x=1x3x8"
    assert b.resumed == 0  # another shape is another result
    rows = _trials(a.key)
    configs = [json.loads(r.config or "") for r in rows]
    # free-dimension overrides are part of the space when dims were given with --shape
    assert all("free_dimension_overrides" in c for c in configs)


def test_same_model_twice_at_once_is_refused(mlp_path: Path) -> None:
    from autotune.digest import model_digest
    from autotune.tuning.lock import ModelLock

    lock = ModelLock(model_digest(mlp_path))
    try:
        with pytest.raises(SearchError, match="already running"):
            run_search(mlp_path, _options())
    finally:
        lock.release()


def test_trials_must_be_positive(mlp_path: Path) -> None:
    with pytest.raises(SearchError, match="--trials must be at least 1"):
        run_search(mlp_path, _options(trials=0))


@pytest.mark.slow
def test_results_from_another_ort_version_are_revalidated_first(mlp_path: Path) -> None:
    import sqlite3

    first = run_search(mlp_path, _options(trials=4))
    db = Store.open().paths[0]
    conn = sqlite3.connect(db)
    with conn:  # as if measured with an older onnxruntime
        conn.execute("UPDATE trials SET ort_version = '1.0.0'")
        conn.execute("UPDATE searches SET ort_version = '1.0.0'")
    best_old = conn.execute(
        "SELECT config_id FROM trials WHERE status = 'ok' AND config_id != ? "
        "ORDER BY ratio LIMIT 1",
        [DEFAULT_CONFIG.config_id],
    ).fetchone()
    conn.close()
    again = run_search(mlp_path, _options(trials=3, seed=9))
    rows = sorted(_trials(again.key), key=lambda r: r.trial_number)  # type: ignore[arg-type, return-value]
    assert again.resumed == 0 and first.key.ort_version == again.key.ort_version
    assert rows[0].config_id == DEFAULT_CONFIG.config_id
    # the old verdict's pick leads the re-validation, else the best old trial
    picked = first.pick.config_id if first.pick and not first.pick.is_default() else None
    if picked or best_old:
        assert rows[1].config_id == (picked or best_old[0])


@pytest.mark.slow
def test_show_filters_by_provenance(mlp_path: Path) -> None:
    from click.testing import CliRunner

    from autotune.chip import provenance
    from autotune.commands.cli import cli

    run_search(mlp_path, _options(trials=2))
    me = provenance()
    out = CliRunner().invoke(cli, ["show", str(mlp_path), "--host", me["host_id"], "--json"])
    assert len(json.loads(out.output)["trials"]) == 2
    out = CliRunner().invoke(cli, ["show", str(mlp_path), "--user", "somebody-else", "--json"])
    assert json.loads(out.output)["trials"] == []


def test_dead_dimensions_are_frozen_at_the_default(mlp_path: Path) -> None:
    """A setting whose one-knob variants measured within 1.5% of the default stops being
    searched; one that mattered stays."""
    from autotune.providers import SearchContext, available_spaces
    from autotune.tuning.search import _Search
    from autotune.tuning.space import graph_levels, one_knob_variants, suggest_config

    ctx = SearchContext(cores=2)
    levels = graph_levels()
    variants = one_knob_variants(ctx, levels)
    assert {d for d, _ in variants} >= {
        "graph_optimization_level", "intra_op_num_threads", "intra_op_spinning",
        "execution_mode", "enable_mem_pattern", "enable_cpu_mem_arena",
    }  # fmt: skip
    store = Store.open(write=True)
    search = _Search(mlp_path, "m", ResultKey("d", "c", "v", "x=1"), True, {}, store, _options(),
                     lambda e: None, 0.0)  # fmt: skip
    search.known[DEFAULT_CONFIG.config_id] = TrialRecord(status="ok", ratio=1.0)
    for dimension, params in variants:
        cfg = suggest_config(optuna_fixed(params), ctx, available_spaces(), levels=levels)
        search.variant_dims[cfg.config_id] = dimension
        ratio = 1.004 if dimension in ("enable_mem_pattern", "enable_cpu_mem_arena") else 1.3
        search.known[cfg.config_id] = TrialRecord(status="ok", ratio=ratio)
    search._freeze_dead_dimensions()
    store.close()
    assert search.frozen == {"enable_mem_pattern": True, "enable_cpu_mem_arena": True}


def optuna_fixed(params: dict[str, object]) -> Any:
    from optuna.trial import FixedTrial

    return FixedTrial(params)


@pytest.mark.slow
def test_stale_result_of_another_build_is_not_replayed_here(mlp_path: Path) -> None:
    """A team database may hold results of a build with other providers (here an OpenVINO
    trial from the onnxruntime-openvino wheel): the search skips them instead of failing."""
    from autotune.chip import current_chip
    from autotune.digest import model_digest

    ov = SessionConfig(
        providers=(("OpenVINOExecutionProvider", {"device_type": "CPU", "precision": "FP32"}),)
    )
    with Store.open(write=True) as store:
        store.record_trial(TrialRecord.from_row(
            {
                "trial_uid": "ov-1", "model_digest": model_digest(mlp_path),
                "chip": current_chip().chip_id, "ort_version": "1.24.1", "shapes": "x=1x16",
                "config_id": ov.config_id, "config": ov.to_json(), "status": "ok", "ratio": 0.5,
                "params": json.dumps({"params": {"provider": "OpenVINOExecutionProvider"},
                                      "distributions": {}}),
            }
        ))  # fmt: skip
    outcome = run_search(mlp_path, _options(trials=3))
    assert outcome.measured == 3
    assert ov.config_id not in {r.config_id for r in _trials(outcome.key)}
