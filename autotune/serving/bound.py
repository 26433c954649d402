"""The load over a serving head-to-head, and a bound on a second figure (the p99 under load,
the warm latency after a cold start): the head-to-head picks by the first, and a pick that
misses the bound gives way."""

from __future__ import annotations

import math
from collections.abc import Callable

from autotune.measure.conditions import Conditions
from autotune.measure.generations import HeadToHead, Replication
from autotune.measure.load import LoadMonitor, LoadOver
from autotune.measure.verdict import DEFAULT, INCONCLUSIVE, PICK, Verdict


class LoadDuring:
    """Other programs' CPU use over a head-to-head (this process's children excluded), as the
    verdict's ``Conditions``: a thread-setting pick measured under load is held, any other
    needs the margin widened (``autotune.measure.conditions``)."""

    def __init__(self) -> None:
        self.load = LoadOver(LoadMonitor())

    def conditions(self) -> Conditions:
        load = self.load.so_far()
        text = f"other programs used {load.other_cores:.2f} cores"
        return Conditions.measured(
            load.other_cores, load.steal, load.cores, load.threads, 1.0, text
        )


def until_decided(judge: Callable[[], Verdict], generations: int, most: int) -> Replication:
    """``generations`` processes, then more of the baseline and the contenders whose decision
    is open while the verdict (``judge()``) is inconclusive, up to ``most`` (no time bound)."""

    def still_open(_: HeadToHead) -> list[int]:
        verdict = judge()
        return verdict.open if verdict.outcome == INCONCLUSIVE else []

    return Replication(
        generations=generations, still_open=still_open, max_generations=most, extra_seconds=math.inf
    )


def within(value: float | None, bound: float | None) -> bool:
    """No bound, or a measured value at or under it."""
    return bound is None or (value is not None and value <= bound)


def apply_bound(
    verdict: Verdict, values: list[float | None], bound: float | None, what: str
) -> None:
    """A pick whose ``values[pick]`` misses ``bound`` gives way to the eligible contender within
    it with the best lower speed-up bound, else to the baseline (``what`` names the figure in
    the reason, e.g. "p99")."""
    if bound is None or verdict.outcome != PICK or verdict.pick_index is None:
        return
    if within(values[verdict.pick_index], bound):
        return
    ok = [i for i, e in enumerate(verdict.entries) if i and e.eligible and within(values[i], bound)]
    if ok:
        verdict.pick_index = max(ok, key=lambda i: verdict.entries[i].speedup_low or 0.0)
        verdict.reason += f"; the fastest missed the {bound:g} ms {what} bound"
        return
    verdict.outcome, verdict.pick_index = DEFAULT, 0
    verdict.reason = f"no contender that beat the baseline kept its {what} within {bound:g} ms"
