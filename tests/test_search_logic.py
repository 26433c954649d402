"""The search loop's logic, exactly, against a deterministic measurer (tests/deterministic.py):
the stored verdict, patience, the head-to-head's extra processes, resume, the load rules.
Each behaviour is also covered end to end with real processes elsewhere."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import autotune
from autotune.config import DEFAULT_CONFIG, SessionConfig
from autotune.store.database import ResultKey, Store
from autotune.store.records import Outcome, SearchState
from autotune.tuning.search import SearchOptions, run_search
from tests.conftest import FAST
from tests.deterministic import DeterministicMeasurer, SteadyMonitor
from tests.rows import store_finished_search

PROTOCOL = dataclasses.replace(FAST, generations=3, max_generations=12, final_rounds=24)


def basic_is_twice_as_fast(config: SessionConfig) -> float:
    return 0.5 if config.graph_optimization_level == "ORT_ENABLE_BASIC" else 1.0


def one_thread_is_twice_as_fast(config: SessionConfig) -> float:
    return 0.5 if config.intra_op_num_threads == 1 else 1.0


def _options(measurer: DeterministicMeasurer, **change: object) -> SearchOptions:
    options = SearchOptions(
        trials=8, protocol=PROTOCOL, seed=1, patience=None, allow_busy=False, busy_wait=0.0
    )
    options.measurer = measurer.factory
    options.monitor = SteadyMonitor()
    for key, value in change.items():
        setattr(options, key, value)
    return options


def test_a_clear_gain_is_picked_and_stored_with_its_figures(mlp_path: Path) -> None:
    outcome = run_search(mlp_path, _options(DeterministicMeasurer(basic_is_twice_as_fast)))
    assert outcome.outcome == Outcome.PICK, outcome.reason
    assert outcome.pick is not None
    assert outcome.pick.graph_optimization_level == "ORT_ENABLE_BASIC"
    assert outcome.speedup is not None and 1.95 < outcome.speedup < 2.05
    assert outcome.verdict["generations"] == 3  # decided after the planned processes
    with Store.open() as store:
        (row,) = store.searches(outcome.key)
    assert row.state == SearchState.DONE and row.outcome == Outcome.PICK
    assert row.pick_config_id == outcome.pick.config_id
    assert row.speedup == outcome.speedup and row.verdict["load"]["level"] == "quiet"
    served = autotune.best_config(mlp_path)
    assert served is not None and served.config == outcome.pick


def test_nothing_to_gain_gives_the_default_with_its_resolution(mlp_path: Path) -> None:
    outcome = run_search(mlp_path, _options(DeterministicMeasurer(lambda c: 1.0)))
    assert outcome.outcome == Outcome.DEFAULT and outcome.pick == DEFAULT_CONFIG
    resolution = outcome.verdict["resolution"]
    assert resolution is not None and resolution < 0.03
    assert f"none gains more than {resolution:.1%}" in outcome.reason


def test_an_open_decision_adds_processes_until_it_closes(mlp_path: Path) -> None:
    """Processes that differ by about 1.5% and no real gain: three processes per
    configuration leave the question open; more are added until no candidate can gain 3%."""
    measurer = DeterministicMeasurer(lambda c: 1.0, spread=0.015, seed=3)
    outcome = run_search(mlp_path, _options(measurer))
    assert outcome.outcome == Outcome.DEFAULT, outcome.reason
    assert 3 < outcome.verdict["generations"] <= PROTOCOL.max_generations


def test_the_budget_of_processes_ends_an_undecidable_question_as_inconclusive(
    mlp_path: Path,
) -> None:
    """A 1.02x gain under a 7% spread between processes: undecidable at this margin within 4
    processes; the verdict is inconclusive, names the resolution reached, and stores no pick."""
    protocol = dataclasses.replace(PROTOCOL, max_generations=4)
    measurer = DeterministicMeasurer(
        lambda c: 1 / 1.02 if c.graph_optimization_level == "ORT_ENABLE_BASIC" else 1.0,
        spread=0.07,
        seed=1,
    )
    outcome = run_search(mlp_path, _options(measurer, protocol=protocol))
    assert outcome.outcome == Outcome.INCONCLUSIVE and outcome.pick is None
    assert outcome.verdict["generations"] == 4
    assert "no candidate gains more than" in outcome.reason
    assert autotune.best_config(mlp_path) is None


def test_patience_ends_the_loop_once_the_seeds_are_measured(mlp_path: Path) -> None:
    measurer = DeterministicMeasurer(lambda c: 1.0)
    outcome = run_search(mlp_path, _options(measurer, trials=40, patience=3))
    assert outcome.stopped_early is not None and "--patience" in outcome.stopped_early
    assert outcome.measured < 40
    with Store.open() as store:
        assert len(store.trials(outcome.key)) == outcome.measured


def test_an_interrupted_search_resumes_where_it_stopped(mlp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        run_search(
            mlp_path, _options(DeterministicMeasurer(basic_is_twice_as_fast, interrupt_at=4))
        )
    with Store.open() as store:
        (key,) = store.summary()
        assert key.trials == 3  # the three measured before the interrupt
        (search,) = store.searches(
            ResultKey(key.model_digest, key.chip, key.ort_version, key.shapes)
        )
        assert search.state == SearchState.INTERRUPTED
    outcome = run_search(mlp_path, _options(DeterministicMeasurer(basic_is_twice_as_fast)))
    assert outcome.resumed == 3
    assert outcome.resumed + outcome.measured == 8
    assert outcome.outcome == Outcome.PICK


def test_a_thread_pick_measured_under_light_load_is_held(mlp_path: Path) -> None:
    """Other programs use 0.3 of a core on a 2-core machine (light load): one thread's 2x is
    held, not stored as a pick; the same search on the quiet machine picks it."""
    light = SteadyMonitor(other_cores=0.3)
    held = run_search(
        mlp_path, _options(DeterministicMeasurer(one_thread_is_twice_as_fast), monitor=light)
    )
    assert held.outcome == Outcome.INCONCLUSIVE and held.pick is None
    assert held.verdict["held"] is not None and held.verdict["load"]["level"] == "light"
    assert "held until a quieter run confirms it" in held.reason
    assert autotune.best_config(mlp_path) is None
    quiet = run_search(mlp_path, _options(DeterministicMeasurer(one_thread_is_twice_as_fast)))
    assert quiet.outcome == Outcome.PICK and quiet.pick is not None
    assert quiet.pick.intra_op_num_threads == 1


def test_a_provider_pick_under_light_load_stands(mlp_path: Path) -> None:
    light = SteadyMonitor(other_cores=0.3)
    outcome = run_search(
        mlp_path, _options(DeterministicMeasurer(basic_is_twice_as_fast), monitor=light)
    )
    assert outcome.outcome == Outcome.PICK and outcome.verdict["load"]["level"] == "light"


def test_a_pick_from_another_ort_version_is_measured_again_exactly(
    mlp_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stored pick of an older ORT version leads the re-validation. Its search had frozen
    a dead dimension (``free_dimension_overrides``: absent from its parameters, so ORT's
    default): the replay keeps that default, not whatever the sampler would fill in."""
    basic = dataclasses.replace(DEFAULT_CONFIG, graph_optimization_level="ORT_ENABLE_BASIC")
    params = {
        "provider": "CPUExecutionProvider",
        "graph_optimization_level": "ORT_ENABLE_BASIC",
        "intra_op_num_threads": 0,
        "intra_op_spinning": "1",
        "execution_mode": "ORT_SEQUENTIAL",
        "enable_mem_pattern": True,
        "enable_cpu_mem_arena": True,
    }
    for seed in (1, 2, 3, 4):
        monkeypatch.setenv("AUTOTUNE_DB", str(tmp_path / f"seed{seed}.db"))
        store_finished_search(
            mlp_path,
            basic,
            search_id=f"old-{seed}",
            common={"ort_version": "1.0.0"},
            trial={"trial_uid": f"old-{seed}", "params": {"params": params}},
        )
        outcome = run_search(
            mlp_path, _options(DeterministicMeasurer(basic_is_twice_as_fast), trials=2, seed=seed)
        )
        with Store.open() as store:
            rows = sorted(store.trials(outcome.key), key=lambda r: r.trial_number or 0)
        assert [r.config_id for r in rows[:2]] == [
            DEFAULT_CONFIG.config_id,
            basic.config_id,
        ], f"seed {seed}"


def test_each_other_provider_is_first_measured_as_it_comes(mlp_path: Path) -> None:
    """The first trial of each other provider here (a plugin EP's device on an x86 CPU) is that
    provider at its own defaults with every session setting at ORT's: its own gain, before
    the sampler varies its options."""
    from autotune.chip import current_chip
    from autotune.providers import available_spaces
    from autotune.providers.base import SearchContext

    others = [s for s in available_spaces() if s.name != "CPUExecutionProvider"]
    if not others:
        pytest.skip("no other provider here")
    outcome = run_search(
        mlp_path, _options(DeterministicMeasurer(lambda c: 1.0), trials=24, patience=None)
    )
    with Store.open() as store:
        rows = sorted(store.trials(outcome.key), key=lambda r: r.trial_number or 0)
    cores = current_chip().cores
    for space in others:
        first = next(
            r for r in rows if (r.params or {}).get("params", {}).get("provider") == space.name
        )
        params = first.params["params"]
        point = space.default_point(SearchContext(cores=cores))
        asked = [k for k in point if k in params]
        assert asked or not point, (point, params)
        assert all(params[k] == point[k] for k in asked), (point, params)
        config = SessionConfig.from_json(first.config or "")
        assert config.graph_optimization_level == "ORT_ENABLE_ALL"
        assert config.intra_op_num_threads == 0 and config.execution_mode == "ORT_SEQUENTIAL"
        assert config.enable_mem_pattern and config.enable_cpu_mem_arena
