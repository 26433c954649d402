"""The head-to-head's verdict: one statistic, with its uncertainty, and an A/A control that can
veto.

What is measured (``autotune.measure.manager.MeasuringWorker.compare``): several *generations*; in
each, every contender (ORT's default configuration first) runs in a fresh process, and rounds
time one block of each process and of the reference process (also ORT's defaults, alive for the
whole search) in random order. Two processes of one configuration can differ by far more than
the decision margin (the scheduler's placement of ORT's threads, memory layout), so the process
is the unit that is replicated, not the round.

The statistic: a contender's speed-up is the median over all kept rounds of the paired ratio
*default block / contender block*, both measured in the same round. Its interval is a two-level
bootstrap: resample generations (processes), then rounds within each. A contender is picked only
when the lower end of that interval clears the margin, when it is faster in every process, and
when its p50 agrees in direction. The A/A control: the default's fresh processes, each against
the reference. When they disagree by more than the margin (a one-sided 95% lower bound of their
spread, so that the sampling noise of a few rounds per process is not taken for disagreement),
no pick is issued: the machine cannot resolve the margin right now, and the verdict is
"inconclusive".
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass, field
from typing import Any

PICK = "pick"
DEFAULT = "default"
INCONCLUSIVE = "inconclusive"

CONFIDENCE = 0.95
BOOTSTRAP = 1000
MIN_ROUNDS_PER_PROCESS = 2


@dataclass(frozen=True)
class Round:
    """One kept round of a head-to-head: each contender's block median and the reference's."""

    generation: int
    medians: tuple[float, ...]  # per contender, in contender order (the default first)
    reference: float


@dataclass
class Entry:
    """One contender's figures in the verdict (speed-ups: ORT's default / this; higher is
    better)."""

    speedup: float | None = None
    speedup_low: float | None = None
    speedup_high: float | None = None
    process_speedups: list[float] = field(default_factory=list)  # one per process (generation)
    latency_ms_p50: float | None = None
    latency_ms_p90: float | None = None
    eligible: bool = False
    why_not: str | None = None


@dataclass
class Verdict:
    outcome: str  # pick, default or inconclusive
    reason: str
    pick_index: int | None  # the contender picked (0: the default); None when inconclusive
    entries: list[Entry]
    aa_spread: float | None  # (max/min - 1) over the default's processes and the reference
    aa_ratios: list[float]  # each fresh default process against the reference
    rounds_kept: int
    rounds_dropped: int
    # after an A/A veto: a margin the machine could resolve, which a candidate cleared
    resolvable_margin: float | None = None

    @property
    def speedup(self) -> float | None:
        if self.pick_index is None:
            return None
        return self.entries[self.pick_index].speedup if self.pick_index else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "pick_index": self.pick_index,
            "aa_spread": self.aa_spread,
            "aa_ratios": self.aa_ratios,
            "rounds_kept": self.rounds_kept,
            "rounds_dropped": self.rounds_dropped,
            "resolvable_margin": self.resolvable_margin,
        }


def unless_busy(verdict: Verdict, busy: str | None) -> Verdict:
    """No pick from a head-to-head run while other programs kept the CPU busy (``busy``: what
    they used, or None when the machine was quiet): a configuration that wins under load (fewer
    threads, when another program holds a core) can lose on a quiet machine, where the app may
    run. The verdict becomes inconclusive; ORT's defaults winning stays a verdict."""
    if busy is None or verdict.outcome != PICK:
        return verdict
    verdict.outcome, verdict.pick_index = INCONCLUSIVE, None
    verdict.reason = (
        f"the machine was busy during the head-to-head ({busy}): a configuration that wins "
        "under load can lose on a quiet machine; run again when other programs are closed"
    )
    return verdict


def _by_generation(rounds: list[Round]) -> dict[int, list[Round]]:
    out: dict[int, list[Round]] = {}
    for r in rounds:
        out.setdefault(r.generation, []).append(r)
    return out


def _median(values: list[float]) -> float:
    return statistics.median(values)


def bootstrap_interval(
    groups: list[list[float]], confidence: float = CONFIDENCE, reps: int = BOOTSTRAP, seed: int = 0
) -> tuple[float, float]:
    """Two-level bootstrap interval of the median of pooled values: resample the groups
    (processes), then the values within each."""
    rng = random.Random(seed)
    groups = [g for g in groups if g]
    if not groups:
        return math.nan, math.nan
    estimates = []
    for _ in range(reps):
        pooled: list[float] = []
        for _ in groups:
            g = groups[rng.randrange(len(groups))]
            pooled += [g[rng.randrange(len(g))] for _ in g]
        estimates.append(_median(pooled))
    estimates.sort()
    tail = (1 - confidence) / 2
    low = estimates[int(tail * (reps - 1))]
    high = estimates[math.ceil((1 - tail) * (reps - 1))]
    return low, high


def spread_lower_bound(
    groups: list[list[float]], confidence: float = CONFIDENCE, reps: int = BOOTSTRAP, seed: int = 0
) -> float:
    """A one-sided lower confidence bound of the A/A spread: (max/min - 1) over the groups'
    medians and the reference (1.0), with each group's rounds resampled. The spread of a few
    medians of a few noisy rounds each is biased upward by the noise alone; the veto fires only
    when the processes disagree beyond that."""
    rng = random.Random(seed)
    groups = [g for g in groups if g]
    spreads = []
    for _ in range(reps):
        medians = [_median([g[rng.randrange(len(g))] for _ in g]) for g in groups]
        spreads.append(max([*medians, 1.0]) / min([*medians, 1.0]) - 1)
    spreads.sort()
    return spreads[int((1 - confidence) * (reps - 1))]


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _why_not(e: Entry, default: Entry, min_gain: float) -> str | None:
    """Why a contender cannot be picked at this margin; None when it can."""
    if e.speedup_low is None or e.speedup is None:
        return "not measured"
    if e.speedup_low < 1 / (1 - min_gain):
        return (
            f"{e.speedup:.3f}× [{e.speedup_low:.3f}, {e.speedup_high:.3f}]: the interval "
            f"does not clear the {min_gain:.0%} margin"
        )
    if min(e.process_speedups) < 1.0:
        return "slower than the default in one of its processes"
    if (
        e.latency_ms_p50 is not None
        and default.latency_ms_p50 is not None
        and e.latency_ms_p50 >= default.latency_ms_p50
    ):
        return "its p50 is not below the default's"
    return None


MAX_RESOLVABLE_MARGIN = 0.25


def resolvable_margin(entries: list[Entry], aa_spread: float) -> tuple[float, int] | None:
    """When the A/A control vetoes: the margin this machine can resolve now (the whole A/A
    spread measured, rounded up to a whole percent, at most 25%), and the contender that would
    clear it by the same rules, if one does; else None. Only a suggestion for the next run: it
    measures afresh, and its own A/A control must pass at that margin."""
    margin = math.ceil(aa_spread * 100 - 1e-9) / 100
    if margin > MAX_RESOLVABLE_MARGIN:
        return None
    passing = [
        i for i in range(1, len(entries)) if _why_not(entries[i], entries[0], margin) is None
    ]
    if not passing:
        return None
    return margin, max(passing, key=lambda i: entries[i].speedup_low or 0.0)


def decide(
    rounds: list[Round],
    *,
    contenders: int,
    min_gain: float,
    latencies: list[list[float]] | None = None,
    rounds_dropped: int = 0,
    complete: bool = True,
    seed: int = 0,
) -> Verdict:
    """The verdict of a head-to-head whose contender 0 is ORT's default configuration."""
    latencies = latencies or [[] for _ in range(contenders)]
    entries = [
        Entry(
            latency_ms_p50=_percentile(latencies[i], 50),
            latency_ms_p90=_percentile(latencies[i], 90),
        )
        for i in range(contenders)
    ]
    entries[0].speedup = entries[0].speedup_low = entries[0].speedup_high = 1.0
    generations = _by_generation(rounds)
    usable = {g: rs for g, rs in generations.items() if len(rs) >= MIN_ROUNDS_PER_PROCESS}
    aa = [_median([r.medians[0] / r.reference for r in rs]) for rs in usable.values()]
    aa_spread = (max([*aa, 1.0]) / min([*aa, 1.0]) - 1) if aa else None
    entries[0].process_speedups = [1 / a for a in aa]  # each default process vs the reference

    def verdict(outcome: str, reason: str, pick: int | None) -> Verdict:
        return Verdict(outcome, reason, pick, entries, aa_spread, aa, len(rounds), rounds_dropped)

    for i in range(1, contenders):
        groups = [[math.log(r.medians[0] / r.medians[i]) for r in rs] for rs in usable.values()]
        if not groups:
            continue
        e = entries[i]
        e.speedup = math.exp(_median([x for g in groups for x in g]))
        low, high = bootstrap_interval(groups, seed=seed + i)
        e.speedup_low, e.speedup_high = math.exp(low), math.exp(high)
        e.process_speedups = [math.exp(_median(g)) for g in groups]

    if len(usable) < 2:
        if not rounds:
            why = (
                "the time limit came before any round was kept"
                if not complete and not rounds_dropped
                else "every round ran in a slow phase"
            )
        else:
            kept = "1 round was" if len(rounds) == 1 else f"{len(rounds)} rounds were"
            why = f"only {kept} kept, too few to compare processes"
        if not complete and (rounds or rounds_dropped):
            why += " before the time limit"
        return verdict(INCONCLUSIVE, why, None)
    assert aa_spread is not None
    aa_groups = [[r.medians[0] / r.reference for r in rs] for rs in usable.values()]
    aa_low = spread_lower_bound(aa_groups, seed=seed)
    if aa_low > min_gain:
        reason = (
            f"fresh processes of ORT's default configuration disagreed by {aa_spread:.1%} "
            f"(A/A control; by at least {aa_low:.1%} with {CONFIDENCE:.0%} confidence), more "
            f"than the {min_gain:.0%} margin"
        )
        resolvable = resolvable_margin(entries, aa_spread)
        out = verdict(INCONCLUSIVE, reason, None)
        if resolvable is not None:
            margin, i = resolvable
            e = entries[i]
            out.resolvable_margin = margin
            out.reason += (
                f"; a candidate led by {e.speedup:.3f}× [{e.speedup_low:.3f}, "
                f"{e.speedup_high:.3f}] in every process, beyond that spread: to ask only for "
                f"gains this machine can resolve now, run again with --min-gain {margin:.2f}"
            )
        return out
    best: int | None = None
    for i in range(1, contenders):
        e = entries[i]
        e.why_not = _why_not(e, entries[0], min_gain)
        if e.why_not is None:
            e.eligible = True
            if best is None or ((e.speedup_low or 0.0) > (entries[best].speedup_low or 0.0)):
                best = i
    if best is None:
        return verdict(
            DEFAULT,
            f"no candidate beat ORT's defaults by the {min_gain:.0%} margin with "
            f"{CONFIDENCE:.0%} confidence",
            0,
        )
    return verdict(PICK, "beat ORT's defaults by the margin in every process", best)
