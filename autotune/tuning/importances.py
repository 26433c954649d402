"""Which options mattered: Optuna's parameter importances over stored trials (for the report).
Imports optuna, so it lives beside the search, and the report loads it only when it draws that
section."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from autotune.store.records import Status, TrialRecord
from autotune.tuning.points import stored_point

MIN_IMPORTANCE_TRIALS = 5  # fewer measured trials than this cannot say which option mattered


def param_importances(trials: Sequence[TrialRecord]) -> tuple[dict[str, float] | None, str]:
    """Optuna's parameter importances for the ratio over the measured trials, most important
    first, and a note on how far to trust them; (None, reason) when there are too few."""
    usable: list[tuple[dict[str, Any], dict[str, Any], float]] = []
    for row in trials:
        point = stored_point(row) if row.status == Status.OK and row.ratio is not None else None
        if point is not None and row.ratio is not None:
            usable.append((*point, float(row.ratio)))
    too_few = (
        f"not enough trials to tell: {len(usable)} measured, and Optuna's importances need at "
        f"least {MIN_IMPORTANCE_TRIALS} with different results"
    )
    if len(usable) < MIN_IMPORTANCE_TRIALS or len({v for _, _, v in usable}) < 2:
        return None, too_few
    singles = {k for _, dists, _ in usable for k, d in dists.items() if d.single()}
    with _optuna() as optuna, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # experimental and few-trials notes stay in here
        from optuna.trial import create_trial

        study = optuna.create_study(direction="minimize")
        for params, dists, value in usable:
            try:
                study.add_trial(create_trial(params=params, distributions=dists, value=value))
            except (ValueError, TypeError):
                continue  # a value outside its stored distribution
        try:
            evaluator = optuna.importance.PedAnovaImportanceEvaluator()
            result = optuna.importance.get_param_importances(study, evaluator=evaluator)
        except (ValueError, RuntimeError, ZeroDivisionError):
            return None, too_few
    messages = [str(w.message) for w in caught]
    if any("will be equal" in m for m in messages):
        return None, too_few
    shown = {k: float(v) for k, v in result.items() if k not in singles}
    if not shown or not any(v > 0 for v in shown.values()):
        return None, too_few
    note = f"PED-ANOVA over {len(usable)} measured trials"
    if len(usable) < 20 or any("less than" in m for m in messages):
        note += "; with this few trials, read it as a hint"
    return dict(sorted(shown.items(), key=lambda kv: -kv[1])), note


@contextmanager
def _optuna() -> Iterator[Any]:
    """optuna, with its INFO logging off for the duration (restored afterwards)."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield optuna
    finally:
        optuna.logging.set_verbosity(level)
