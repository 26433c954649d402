"""What "best" means: latency, load time, memory, or a balance, over stored trials.

Latency is the paired ratio to ORT's default configuration (``ratio``); load time is session
creation plus the first run; memory is the resident memory the session added. A compiling EP
(CoreML compiles for seconds) is ranked by its load from autotune's compile cache, measured in a
fresh process: an app pays the cold compile once per model, configuration and ORT version.
Lower is better for all three. No optuna here: the resolver uses it too.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from autotune.errors import SearchError
from autotune.store.records import TrialRecord


class Objective(StrEnum):
    """What a search optimizes and an app prefers (``--objective``, ``prefer=``)."""

    LATENCY = "latency"  # the paired ratio to ORT's defaults
    LOAD = "load"  # session creation plus the first run (a compiling EP: from its cache)
    MEMORY = "memory"  # the resident memory the session adds
    BALANCED = "balanced"  # latency and load time together


OBJECTIVES = tuple(o.value for o in Objective)


def check(objective: str) -> Objective:
    if objective not in OBJECTIVES:
        raise SearchError(f"objective {objective!r} is not one of {', '.join(OBJECTIVES)}")
    return Objective(objective)


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
    if objective == Objective.LATENCY:
        return None if ratio is None else float(ratio)
    ref = default
    if objective == Objective.LOAD:
        return _relative(load_ms(row), load_ms(ref) if ref else None)
    if objective == Objective.MEMORY:
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

    A missing memory figure is unknown, not a reason to leave the row out (a session process
    that could not read its memory stored none): two rows are compared on the figures both
    have, so a row without memory dominates, and is dominated, on latency and load time alone.
    Rows without a latency ratio or load time, which every measured trial has, are left out;
    a negative or non-finite figure counts as missing.

    O(n log n) comparisons. Rows with memory: a sort and one sweep; in order of (ratio, load,
    memory), a row is dominated exactly when an earlier row with other figures has load and
    memory no higher; the earlier rows are kept as a staircase (load ascending, memory
    descending) searched by bisection. Then each survivor is checked against the rows without
    memory, and those against every row, in two dimensions (``_Plane``)."""
    points: list[_Point] = []
    unknown: list[_Point] = []  # rows without a memory figure
    for i, row in enumerate(rows):
        ratio, load = _finite(row.ratio), _finite(load_ms(row))
        if ratio is None or load is None or ratio <= 0:
            continue
        rss = _finite(row.session_rss_mb) if memory else None  # memory=False: 2-D for all
        if rss is None:
            unknown.append(((ratio, load, 0.0), i, row))
        else:
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
    if unknown:
        without_memory, everyone = _Plane(unknown), _Plane(points + unknown)
        ratio_load = {i: (ratio, load) for (ratio, load, _), i, _ in points}
        kept = [(i, row) for i, row in kept if not without_memory.dominates(*ratio_load[i])]
        kept += [(i, row) for (r, load, _), i, row in unknown if not everyone.dominates(r, load)]
    kept.sort(key=lambda p: p[0])
    return [row for _, row in kept]


_Point = tuple[tuple[float, float, float], int, TrialRecord]


class _Plane:
    """Rows' (latency ratio, load time) points, asked whether any dominates another row's:
    sorted by ratio, with the least load up to each."""

    def __init__(self, points: list[_Point]) -> None:
        plane = sorted((figures[0], figures[1]) for figures, _, _ in points)
        self.ratios = [ratio for ratio, _ in plane]
        self.least_load = list(itertools.accumulate((load for _, load in plane), min))

    def dominates(self, ratio: float, load: float) -> bool:
        """Whether a point has ratio and load no higher than these, and is not the same."""
        lower = bisect.bisect_left(self.ratios, ratio)  # points with a lower ratio
        if lower and self.least_load[lower - 1] <= load:
            return True
        no_higher = bisect.bisect_right(self.ratios, ratio)  # ... or an equal one
        return no_higher > 0 and self.least_load[no_higher - 1] < load


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
