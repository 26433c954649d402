"""The trial loop (as optuna's ``study/_optimize.py`` is to its ``Study``): ask the sampler,
measure what was never measured, tell the study, until the budget, the time limit or patience
ends it. The search (``autotune.tuning.search``) holds the state; the loop reads and updates it
through :class:`TrialHost`."""

from __future__ import annotations

import typing
from typing import Any

from autotune.config import SessionConfig
from autotune.errors import ConfigError
from autotune.figures import ratio_text
from autotune.measure.load import LoadSource
from autotune.measure.manager import TrialResult
from autotune.providers import validate_config
from autotune.store.records import Status, TrialRecord
from autotune.tuning.options import IMPROVEMENT, Event, EventKind, Progress, SearchOptions


class TrialHost(typing.Protocol):
    """What the loop needs of the search."""

    options: SearchOptions
    known: dict[str, TrialRecord]
    frozen: dict[str, Any]
    measured: int
    failures: int
    best: tuple[float, str] | None
    monitor: LoadSource
    emit: Progress

    def _time_left(self) -> float | None: ...
    def _h2h_reserve(self) -> float: ...
    def _suggest(self, trial: Any, frozen: dict[str, Any] | None = None) -> SessionConfig: ...
    def _learn_from(self, study: Any, current: int) -> None: ...
    def _measure(self, trial: Any, config: SessionConfig) -> TrialResult: ...
    def _value(self, row: TrialRecord) -> float | None: ...
    def _update_best(self) -> None: ...
    def _freeze_dead_dimensions(self) -> None: ...
    def _elapsed(self) -> float: ...
    def _record(
        self,
        number: int,
        config: SessionConfig,
        result: TrialResult,
        params: dict[str, Any],
        load: Any = None,
    ) -> TrialRecord: ...


def run_trials(search: TrialHost, study: Any, budget: int, seeds: int, shared: bool) -> str | None:
    """Ask, measure, record, tell until the budget, the time limit or patience ends it.
    Returns why it ended early (None when it measured the budget)."""
    from optuna.distributions import distribution_to_json
    from optuna.trial import TrialState

    options = search.options
    stale_asks = 0
    since_best = 0
    while (_finished(study) < options.trials) if shared else (search.measured < budget):
        left = search._time_left()
        if left is not None and left <= search._h2h_reserve():
            return f"--timeout {options.timeout:g} s: the time left is for the head-to-head"
        if options.patience and search.measured > seeds and since_best >= options.patience:
            return f"{options.patience} trials in a row brought no 1% gain (--patience)"
        trial = study.ask()
        try:
            config = search._suggest(trial, frozen=search.frozen)
            validate_config(config)
        except (ConfigError, ValueError):
            # ValueError: an enqueued point this space cannot take (another ORT build)
            study.tell(trial, state=TrialState.FAIL)
            continue
        if shared:
            search._learn_from(study, trial.number)
        known = search.known.get(config.config_id)
        if known is not None:
            # measured before (this run or an earlier one): never measure it again
            _tell_known(search, study, trial, known)
            stale_asks += 1
            if stale_asks > 200:
                return "every configuration of the space is measured"
            continue
        stale_asks = 0
        params = {
            "params": trial.params,
            "distributions": {k: distribution_to_json(d) for k, d in trial.distributions.items()},
        }
        result = search._measure(trial, config)
        if result.status == Status.TIMEOUT and search._time_left() is not None and result.bounded:
            # cut short by --timeout, not by the trial's own limit: nothing to record
            study.tell(trial, state=TrialState.FAIL)
            return f"--timeout {options.timeout:g} s reached during a trial"
        improved = _tell_measured(search, study, trial, config, result, params, budget)
        since_best = 0 if improved else since_best + 1
    return None


def _tell_known(search: TrialHost, study: Any, trial: Any, row: TrialRecord) -> None:
    """Tell the study what a configuration measured before gave, without measuring it."""
    from optuna.trial import TrialState

    value = search._value(row)
    if row.status in (Status.OK, "elsewhere") and value is not None:
        for step, ratio in enumerate(stored_ratios(row)):
            trial.report(ratio, step)
        study.tell(trial, value)
    else:
        study.tell(trial, state=TrialState.FAIL)


def _tell_measured(
    search: TrialHost,
    study: Any,
    trial: Any,
    config: SessionConfig,
    result: TrialResult,
    params: dict[str, Any],
    budget: int,
) -> bool:
    """Record a measured trial, tell the study and the progress line; whether it improved
    on the best by 1%."""
    from optuna.trial import TrialState

    load = search.monitor.sample()
    search._record(trial.number, config, result, params, load)
    search.measured += 1
    before = search.best
    value = search._value(search.known[config.config_id])
    if result.status == Status.OK and value is not None:
        study.tell(trial, value)
    elif result.status == Status.PRUNED:
        study.tell(trial, state=TrialState.PRUNED)
    else:
        search.failures += 1
        study.tell(trial, state=TrialState.FAIL)
    search._update_best()
    search._freeze_dead_dimensions()
    search.emit(
        Event(
            EventKind.TRIAL,
            done=search.measured,
            total=budget,
            elapsed=search._elapsed(),
            best_ratio=search.best[0] if search.best else None,
            best_label=search.best[1] if search.best else None,
            message=f"{config.describe()}: {_result_text(result)}",
            load_cores=load.other_cores if load.loaded else None,
        )
    )
    return search.best is not None and (
        before is None or search.best[0] < before[0] * (1 - IMPROVEMENT)
    )


def _finished(study: Any) -> int:
    from optuna.trial import TrialState

    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return len(study.get_trials(deepcopy=False, states=done))


def stored_ratios(row: TrialRecord) -> list[float]:
    """A stored trial's kept round ratios (wrong types dropped)."""
    values = row.ratios if isinstance(row.ratios, list) else []
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]


def _result_text(result: TrialResult) -> str:
    if result.status == Status.OK and result.ratio is not None:
        return f"speed-up {ratio_text(result.ratio, digits=3)} (estimate)"
    if result.status == Status.PRUNED and result.ratio is not None:
        return f"pruned: slower than the default (about {ratio_text(result.ratio)})"
    return f"{result.status}: {result.error or ''}".strip()
