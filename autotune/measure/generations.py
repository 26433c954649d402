"""How a head-to-head spends its processes: the planned generations of fresh processes, then
more generations of the default and the contenders whose decision is still open, until every
decision closes, the process budget is spent or the time runs out.

The loop is one function for every measurer: :class:`autotune.measure.manager.Manager` measures a
generation with real processes, a test's deterministic stand-in (tests/deterministic.py) with
figures drawn from a seed; both go through :func:`replicate`, so the tests of the search's logic
exercise the real replication rules.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from autotune.measure.verdict import Round

# (generation, active contenders, end of this generation's share of the time or None) -> the
# wall seconds it took
MeasureGeneration = Callable[[int, list[int], float | None], float]


@dataclass
class HeadToHead:
    """What a head-to-head measured: kept rounds (see ``autotune.measure.verdict``) and every
    timed run of each contender in them."""

    contenders: int
    target_rounds: int
    rounds: list[Round] = field(default_factory=list)
    latencies: list[list[float]] = field(default_factory=list)
    rounds_dropped: int = 0
    complete: bool = True

    def __post_init__(self) -> None:
        if not self.latencies:
            self.latencies = [[] for _ in range(self.contenders)]


@dataclass(frozen=True)
class HeadToHeadProgress:
    kept: int
    dropped: int
    target: int
    eta_s: float


@dataclass(frozen=True)
class Replication:
    """How many processes a head-to-head may use: ``generations`` planned; while ``still_open``
    names contenders whose decision is open, more of those and the default, up to
    ``max_generations``, while one more fits in the time the planned ones took (at least
    ``extra_seconds``) and before ``deadline`` (time.monotonic)."""

    generations: int = 3
    still_open: Callable[[HeadToHead], list[int]] | None = None
    max_generations: int | None = None
    extra_seconds: float = 0.0
    deadline: float | None = None


def replicate(
    measure: MeasureGeneration,
    out: HeadToHead,
    per_generation: int,
    plan: Replication,
    clock: Callable[[], float] = time.monotonic,
) -> HeadToHead:
    """Run generations with ``measure`` into ``out`` as ``plan`` allows. At the deadline it
    stops with what it has (``out.complete`` False)."""
    active = list(range(out.contenders))
    generation = 0
    started, extra_until = clock(), math.inf
    deadline = plan.deadline
    while True:
        if deadline is not None and clock() >= deadline:
            out.complete = False
            break
        # each planned generation gets its share of the time left: slow phases (dropped
        # rounds) in one process must not leave the others unmeasured
        left = plan.generations - generation
        share = None if deadline is None else clock() + (deadline - clock()) / max(left, 1)
        seconds = measure(generation, active, share)
        generation += 1
        if generation < plan.generations:
            continue
        if plan.still_open is None or generation >= (plan.max_generations or generation):
            break
        if generation == plan.generations:
            now = clock()
            extra_until = now + max(plan.extra_seconds, now - started)
        open_ = plan.still_open(out)
        end = min(extra_until, deadline if deadline is not None else math.inf)
        if not open_ or clock() + seconds > end:
            break
        active = [0, *open_]
        out.target_rounds += per_generation
    return out
