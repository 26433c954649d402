"""What "best" means: latency, load time, memory, or a balance, over stored trials.

Latency is the paired ratio to ORT's default configuration (``ratio``); load time is session
creation plus the first run; memory is the resident memory the session added. A compiling EP
(CoreML compiles for seconds) is ranked by its load from autotune's compile cache, measured in a
fresh process: an app pays the cold compile once per model, configuration and ORT version.
Lower is better for all three. No optuna here: the resolver uses it too.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from typing import Any

from autotune.errors import SearchError
from autotune.store.records import TrialRecord

OBJECTIVES = ("latency", "load", "memory", "balanced")


def check(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise SearchError(f"objective {objective!r} is not one of {', '.join(OBJECTIVES)}")
    return objective


def _relative(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference <= 0:
        return None
    return max(value, 1e-9) / reference


def load_ms(row: TrialRecord) -> float | None:
    """The load time an app pays at each launch: from the compile cache where the trial filled
    one (``cached_session_create_ms``), else the cold ``row.load_ms``."""
    if row.cached_session_create_ms is not None and row.first_run_ms is not None:
        return row.cached_session_create_ms + row.first_run_ms
    return row.load_ms


def score(row: TrialRecord, objective: str, default: TrialRecord | None) -> float | None:
    """The row's figure for ``objective`` relative to the default configuration's (lower is
    better), or None if it was not measured."""
    ratio = row.ratio
    if objective == "latency":
        return None if ratio is None else float(ratio)
    ref = default
    if objective == "load":
        return _relative(load_ms(row), load_ms(ref) if ref else None)
    if objective == "memory":
        # a floor of 1 MB: a session that adds nothing measurable ties with the others
        value, base = row.session_rss_mb, ref.session_rss_mb if ref else None
        if value is None or base is None:
            return None
        return max(value, 1.0) / max(base, 1.0)
    load = _relative(load_ms(row), load_ms(ref) if ref else None)
    if ratio is None or load is None:
        return None
    return float(ratio) * math.sqrt(load)  # balanced: latency first, load time counts half


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and value >= 0 else None


def pareto(rows: Iterable[TrialRecord], *, memory: bool = True) -> list[TrialRecord]:
    """Rows not dominated on (latency ratio, load time, memory), in their given order; with
    ``memory=False`` on (latency ratio, load time) alone (the report's chart).

    A sort and one sweep, O(n log n) comparisons: in order of (ratio, load, memory), a row is
    dominated exactly when an earlier row with other figures has load and memory no higher; the
    earlier rows are kept as a staircase (load ascending, memory descending) searched by
    bisection. Rows whose figures are missing, negative or not finite are left out."""
    points: list[tuple[tuple[float, float, float], int, TrialRecord]] = []
    for i, row in enumerate(rows):
        ratio, load = _finite(row.ratio), _finite(load_ms(row))
        rss = _finite(row.session_rss_mb) if memory else 0.0  # one memory for all: 2-D
        if ratio is not None and load is not None and rss is not None and ratio > 0:
            points.append(((ratio, load, rss), i, row))
    points.sort(key=lambda p: (p[0], p[1]))
    loads: list[float] = []  # the staircase: loads ascending ...
    mems: list[float] = []  # ... and the memory of each, strictly descending
    kept: list[tuple[int, TrialRecord]] = []
    start = 0
    while start < len(points):
        figures = points[start][0]
        end = start
        while end < len(points) and points[end][0] == figures:
            end += 1  # identical figures do not dominate each other
        _, load, rss = figures
        at = bisect.bisect_right(loads, load)
        if at == 0 or mems[at - 1] > rss:  # no earlier row has load <= and memory <=
            kept += [(i, row) for _, i, row in points[start:end]]
            stop = at
            while stop < len(loads) and mems[stop] >= rss:
                stop += 1  # rows this one now covers in (load, memory)
            loads[at:stop] = [load]
            mems[at:stop] = [rss]
        start = end
    kept.sort(key=lambda p: p[0])
    return [row for _, row in kept]


def choose(
    rows: list[TrialRecord], objective: str, default: TrialRecord | None
) -> list[TrialRecord]:
    """The Pareto-optimal rows ordered best first for ``objective``."""
    scored: list[tuple[float, TrialRecord]] = []
    for row in pareto(rows):
        value = score(row, objective, default)
        if value is not None:
            scored.append((value, row))
    scored.sort(key=lambda x: x[0])
    return [row for _, row in scored]
