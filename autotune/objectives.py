"""What "best" means: latency, load time, memory, or a balance, over stored trials.

Latency is the paired ratio to ORT's default configuration (``ratio``); load time is session
creation plus the first run (CoreML compiles for seconds there); memory is the resident memory
the session added. Lower is better for all three. No optuna here: the resolver uses it too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from autotune.errors import SearchError

OBJECTIVES = ("latency", "load", "memory", "balanced")


def check(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise SearchError(f"objective {objective!r} is not one of {', '.join(OBJECTIVES)}")
    return objective


def load_ms(row: dict[str, Any]) -> float | None:
    create, first = row.get("session_create_ms"), row.get("first_run_ms")
    if create is None or first is None:
        return None
    return float(create) + float(first)


def memory_mb(row: dict[str, Any]) -> float | None:
    value = row.get("session_rss_mb")
    return None if value is None else float(value)


def _relative(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference <= 0:
        return None
    return max(value, 1e-9) / reference


def score(row: dict[str, Any], objective: str, default: dict[str, Any] | None) -> float | None:
    """The row's figure for ``objective`` relative to the default configuration's (lower is
    better), or None if it was not measured."""
    ratio = row.get("ratio")
    if objective == "latency":
        return None if ratio is None else float(ratio)
    ref = default or {}
    if objective == "load":
        return _relative(load_ms(row), load_ms(ref))
    if objective == "memory":
        # a floor of 1 MB: a session that adds nothing measurable ties with the others
        value, base = memory_mb(row), memory_mb(ref)
        if value is None or base is None:
            return None
        return max(value, 1.0) / max(base, 1.0)
    load = _relative(load_ms(row), load_ms(ref))
    if ratio is None or load is None:
        return None
    return float(ratio) * math.sqrt(load)  # balanced: latency first, load time counts half


def pareto(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows not dominated on (latency ratio, load time, memory)."""
    points: list[tuple[tuple[float, float, float], dict[str, Any]]] = []
    for row in rows:
        ratio, load, memory = row.get("ratio"), load_ms(row), memory_mb(row)
        if ratio is not None and load is not None and memory is not None:
            points.append(((float(ratio), load, memory), row))
    front = []
    for figures, row in points:
        dominated = any(
            all(o <= f for o, f in zip(other, figures, strict=True)) and other != figures
            for other, _ in points
        )
        if not dominated:
            front.append(row)
    return front


def choose(
    rows: list[dict[str, Any]], objective: str, default: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The Pareto-optimal rows ordered best first for ``objective``."""
    scored: list[tuple[float, dict[str, Any]]] = []
    for row in pareto(rows):
        value = score(row, objective, default)
        if value is not None:
            scored.append((value, row))
    scored.sort(key=lambda x: x[0])
    return [row for _, row in scored]
