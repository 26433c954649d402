"""A trial's stored Optuna point (its ``params`` column: the parameters and their distributions
as Optuna's JSON), read back in one place for the search's replay and the importances."""

from __future__ import annotations

from typing import Any

from autotune.store.records import TrialRecord


def stored_point(row: TrialRecord) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(parameters, distributions as Optuna objects) of the row, or None for a row from another
    space version or one that holds no Optuna point (imports optuna)."""
    from optuna.distributions import json_to_distribution

    stored = row.params
    try:
        dists = {k: json_to_distribution(v) for k, v in stored["distributions"].items()}
        params = dict(stored["params"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return params, dists


def stored_params(row: TrialRecord) -> dict[str, Any] | None:
    """Only the parameters of the row's Optuna point (no optuna import), or None."""
    stored = row.params
    params = stored.get("params") if isinstance(stored, dict) else None
    return params if isinstance(params, dict) else None
