"""The head-to-head's verdict: each candidate's speed-up with an interval that holds the
variation between processes, and a decision that says what the data can support.

What is measured (``autotune.measure.manager.Manager.compare``): *generations*; in each,
every contender still in question (ORT's default configuration always, first) runs in a fresh
process, and rounds time one block of each process and of the reference process (also ORT's
defaults, alive for the whole search) in random order. Two processes of one configuration can
differ by more than the margin for their whole life, so the process is the unit replicated.

The statistic (a random-effects design): in generation *g*, a candidate's value is the median
over its rounds of log(default block / candidate block); the speed-up is exp of the mean over
generations. Its variance between processes is estimated from its own generations, pooled with
the A/A control (each fresh default process against the reference, doubled: a candidate's value
involves two fresh processes), and its interval is a Student-t interval on that pooled variance.
Process-to-process disagreement therefore widens the interval instead of vetoing the verdict: a
3× candidate under a 10% A/A spread is picked, a 1.02× candidate under it is not.

The decision, with ``threshold`` = 1 / (1 - margin):
- **pick** a candidate whose lower bound clears the threshold (widened, when other programs
  used the CPU, by the load's measured effect on ORT's defaults beyond what the candidate itself
  felt: ``_widenings``; held instead when it changes thread settings and
  was measured under any load: one thread really is faster while another program holds a
  core), faster than the default in most processes, p50 agreeing;
- **default** when no candidate's upper bound reaches the threshold: no gain of that size is
  possible, and the verdict states the largest gain still possible (its resolution);
- **inconclusive** otherwise: an interval still straddles the threshold. The replication loop
  (``autotune.tuning.head_to_head``) adds processes while a decision is open (``open``) and the
  budget allows; what remains open then is stated with the resolution reached.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from autotune.figures import speedup_text
from autotune.measure.conditions import QUIET, Conditions
from autotune.measure.stats import percentile
from autotune.store.records import Outcome

# the three answers, as the store names them
PICK, DEFAULT, INCONCLUSIVE = Outcome.PICK, Outcome.DEFAULT, Outcome.INCONCLUSIVE

CONFIDENCE = 0.95
MIN_ROUNDS_PER_PROCESS = 2
MIN_GENERATIONS = 3  # processes per configuration before any decision


@dataclass(frozen=True)
class Round:
    """One kept round of a head-to-head: each contender's block median and the reference's
    (``math.nan`` for a contender not measured in that generation: its decision was closed)."""

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
    state: str = "open"  # eligible, below, held, load, dominated, inconsistent or open


@dataclass
class Verdict:
    outcome: Outcome
    reason: str
    pick_index: int | None  # the contender picked (0: the default); None when inconclusive
    entries: list[Entry]
    aa_spread: float | None  # (max/min - 1) over the default's processes and the reference
    aa_ratios: list[float]  # each fresh default process against the reference
    rounds_kept: int
    rounds_dropped: int
    # the largest gain over ORT's defaults the data still allows (max upper bound - 1)
    resolution: float | None = None
    open: list[int] = field(default_factory=list)  # contenders whose decision is still open
    held: int | None = None  # a thread-setting pick held because it was measured under load
    generations: int = 0
    conditions: Conditions = QUIET

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
            "resolution": self.resolution,
            "held": self.held,
            "generations": self.generations,
            "load": self.conditions.to_dict(),
        }


def t_quantile(p: float, df: float) -> float:
    """Student's t quantile (exact for 1 and 2 degrees of freedom, a Cornish-Fisher expansion
    beyond, within 0.3% of scipy's from 3 on; standard library only)."""
    if df <= 0:
        return math.inf
    if df < 1.5:
        return math.tan(math.pi * (p - 0.5))
    if df < 2.5:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    z = statistics.NormalDist().inv_cdf(p)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def _variance(values: list[float]) -> tuple[float, int]:
    """Sample variance and its degrees of freedom (0, 0 for fewer than two values)."""
    if len(values) < 2:
        return 0.0, 0
    return statistics.variance(values), len(values) - 1


def _per_generation(rounds: list[Round], value: Any) -> list[float]:
    """The median of ``value(round)`` in each generation with enough rounds (NaN skipped)."""
    by_gen: dict[int, list[float]] = {}
    for r in rounds:
        x = value(r)
        if not math.isnan(x):
            by_gen.setdefault(r.generation, []).append(x)
    return [statistics.median(xs) for xs in by_gen.values() if len(xs) >= MIN_ROUNDS_PER_PROCESS]


@dataclass(frozen=True)
class _Pool:
    """The A/A control's variance, the prior every candidate's own variance is pooled with."""

    variance: float  # of one candidate-vs-default value: twice the A/A's (two fresh processes)
    df: int


def _estimate(entry: Entry, values: list[float], pool: _Pool) -> None:
    own, df_own = _variance(values)
    df = df_own + pool.df
    variance = (df_own * own + pool.df * pool.variance) / df if df else math.inf
    mean = statistics.fmean(values)
    half = t_quantile(0.5 + CONFIDENCE / 2, df) * math.sqrt(variance / len(values))
    entry.speedup = math.exp(mean)
    entry.speedup_low, entry.speedup_high = math.exp(mean - half), math.exp(mean + half)
    entry.process_speedups = [math.exp(v) for v in values]


def _inconsistent(e: Entry, default: Entry) -> str | None:
    """A reason not to trust a cleared interval: slower than the default in more than one
    process in five, or a p50 not below the default's."""
    slower = sum(1 for s in e.process_speedups if s < 1.0)
    if slower > len(e.process_speedups) // 5:
        return f"slower than the default in {slower} of its {len(e.process_speedups)} processes"
    if (
        e.latency_ms_p50 is not None
        and default.latency_ms_p50 is not None
        and e.latency_ms_p50 >= default.latency_ms_p50
    ):
        return "its p50 is not below the default's"
    return None


def _self_slowdown(rounds: list[Round], i: int) -> float:
    """How much slower contender i ran than its own fastest block, within each of its
    processes (the median over processes of median / fastest): the load as that contender felt
    it, free of the differences between processes. 1 where a process has too few rounds."""
    by_gen: dict[int, list[float]] = {}
    for r in rounds:
        if not math.isnan(r.medians[i]):
            by_gen.setdefault(r.generation, []).append(r.medians[i])
    ratios = [statistics.median(xs) / min(xs) for xs in by_gen.values() if len(xs) >= 4]
    return max(1.0, statistics.median(ratios)) if ratios else 1.0


def _widenings(
    rounds: list[Round], measured: list[int], conditions: Conditions
) -> dict[int, float]:
    """The factor on the pick threshold for each measured contender under load: the load's
    effect on ORT's defaults (the reference's slowdown against its floor, and the default
    contender's own) beyond what the candidate itself felt. A candidate slowed as much as the
    defaults were compares fairly (the factor falls towards 1); one the load did not touch keeps
    the whole factor, as if its gain were the load's doing."""
    if not conditions.loaded:
        return dict.fromkeys(measured, 1.0)
    defaults = max(conditions.widening, _self_slowdown(rounds, 0))
    return {i: max(1.0, defaults / _self_slowdown(rounds, i)) for i in measured}


def _classify(
    e: Entry,
    default: Entry,
    threshold: float,
    conditions: Conditions,
    changes_threads: bool,
    widening: float,
) -> None:
    """Set the entry's state and, when it cannot be picked, why not."""
    assert e.speedup is not None and e.speedup_low is not None and e.speedup_high is not None
    figures = speedup_text(e.speedup, e.speedup_low, e.speedup_high)
    margin = 1 - 1 / threshold  # the --min-gain asked for
    # held: thread settings measured while others used the CPU; else the load's effect widens
    held = conditions.loaded and changes_threads
    bar = math.inf if held else threshold * widening
    if e.speedup_low > bar:
        problem = _inconsistent(e, default)
        if problem is None:
            e.state, e.eligible, e.why_not = "eligible", True, None
        else:
            e.state, e.why_not = "inconsistent", problem
        return
    if e.speedup_high < threshold:
        e.state = "below"
        e.why_not = f"{figures}: cannot gain the {margin:.1%} margin"
        return
    if e.speedup_low > threshold and bar == math.inf:
        e.state = "held"
        e.why_not = (
            f"a candidate {figures} changes thread settings and was measured under "
            f"{conditions.describe()}; held until a quieter run confirms it"
        )
        return
    if bar != math.inf and e.speedup_high < bar:
        e.state = "load"
        e.why_not = (
            f"{figures}: does not clear the margin widened by the load "
            f"({bar - 1:.1%} under {conditions.describe()})"
        )
        return
    e.state = "open"
    e.why_not = f"{figures}: the interval straddles the {margin:.1%} margin"


def decide(
    rounds: list[Round],
    *,
    contenders: int,
    min_gain: float,
    latencies: list[list[float]] | None = None,
    rounds_dropped: int = 0,
    complete: bool = True,
    conditions: Conditions = QUIET,
    changes_threads: Sequence[bool] | None = None,
    min_generations: int = MIN_GENERATIONS,
) -> Verdict:
    """The verdict of a head-to-head whose contender 0 is ORT's defaults. ``changes_threads[i]``:
    contender i changes a thread setting (held when measured under load). Before ``min_generations``
    processes every decision stays open, unless the time ran out (``complete`` False)."""
    latencies = latencies or [[] for _ in range(contenders)]
    changes_threads = changes_threads or [False] * contenders
    entries = [
        Entry(
            latency_ms_p50=percentile(latencies[i], 50),
            latency_ms_p90=percentile(latencies[i], 90),
        )
        for i in range(contenders)
    ]
    default = entries[0]
    default.speedup = default.speedup_low = default.speedup_high = 1.0
    default.state = "default"
    aa_logs = _per_generation(rounds, lambda r: math.log(r.medians[0] / r.reference))
    aa = [math.exp(x) for x in aa_logs]
    aa_spread = (max([*aa, 1.0]) / min([*aa, 1.0]) - 1) if aa else None
    default.process_speedups = [1 / a for a in aa]
    aa_variance, aa_df = _variance(aa_logs)
    pool = _Pool(2 * aa_variance, aa_df)
    generations = len(aa)
    threshold = 1 / (1 - min_gain)

    def verdict(outcome: Outcome, reason: str, pick: int | None, open_: list[int]) -> Verdict:
        upper = [e.speedup_high for e in entries[1:] if e.speedup_high is not None]
        resolution = max([*upper, 1.0]) - 1 if upper else None
        return Verdict(
            outcome, reason, pick, entries, aa_spread, aa, len(rounds), rounds_dropped,
            resolution, open_, None, generations, conditions,
        )  # fmt: skip

    measured = []
    for i in range(1, contenders):
        values = _per_generation(rounds, lambda r, i=i: math.log(r.medians[0] / r.medians[i]))
        if len(values) >= 2:
            _estimate(entries[i], values, pool)
            measured.append(i)
        else:
            entries[i].why_not = "measured in fewer than two processes"
    if contenders == 1:  # nothing else reached the head-to-head
        return verdict(DEFAULT, "no other configuration reached the head-to-head", 0, [])
    if not measured:
        return verdict(INCONCLUSIVE, _too_few(rounds, rounds_dropped, complete), None, [])
    unstable = _reference_outlier(aa_logs, threshold)
    if unstable:
        return verdict(INCONCLUSIVE, unstable, None, [])
    widenings = _widenings(rounds, measured, conditions)
    for i in measured:
        _classify(entries[i], default, threshold, conditions, changes_threads[i], widenings[i])
    eligible = [i for i in measured if entries[i].eligible]
    best = max(eligible, key=lambda i: entries[i].speedup or 0.0) if eligible else None
    for i in measured:
        e = entries[i]
        if (
            best is not None
            and e.state == "open"
            and (e.speedup_high or 0.0) < (entries[best].speedup or 0.0)
        ):
            e.state, e.why_not = (
                "dominated",
                f"below the pick's {speedup_text(entries[best].speedup)}",
            )
    early = complete and generations < min_generations
    open_ = [i for i in measured if _open(entries[i], early)]
    if early:
        return verdict(INCONCLUSIVE, f"only {generations} processes so far", None, open_)
    return _conclude(entries, measured, best, threshold, conditions, open_, verdict)


def _open(e: Entry, early: bool) -> bool:
    """A decision more processes could close."""
    return e.state == "open" or (early and e.state != "held")


def _conclude(
    entries: list[Entry],
    measured: list[int],
    best: int | None,
    threshold: float,
    conditions: Conditions,
    open_: list[int],
    verdict: Any,
) -> Verdict:
    margin = 1 - 1 / threshold  # the --min-gain asked for
    if best is not None:
        v: Verdict = verdict(
            PICK,
            f"beat ORT's defaults by the {margin:.1%} margin with {CONFIDENCE:.0%} confidence"
            + (f" under {conditions.describe()}" if conditions.loaded else ""),
            best,
            open_,
        )
        return v
    states = {entries[i].state for i in measured}
    if states <= {"below"} and len(measured) == len(entries) - 1:
        v = verdict(DEFAULT, "", 0, open_)
        v.reason = (
            f"no candidate can beat ORT's defaults by the {margin:.1%} margin: none gains more "
            f"than {v.resolution:.1%} with {CONFIDENCE:.0%} confidence"
        )
        return v
    v = verdict(INCONCLUSIVE, "", None, open_)
    held = [i for i in measured if entries[i].state == "held"]
    if held:
        v.held = max(held, key=lambda i: entries[i].speedup or 0.0)
    v.reason = _inconclusive_reason(entries, measured, conditions, v)
    return v


def _inconclusive_reason(
    entries: list[Entry], measured: list[int], conditions: Conditions, v: Verdict
) -> str:
    parts = []
    if v.held is not None:
        parts.append(f"held: {entries[v.held].why_not}")
    for state, text in (
        ("load", "the load's effect widens the margin"),
        ("inconsistent", "a candidate cleared the margin but"),
    ):
        for i in measured:
            if entries[i].state == state:
                parts.append(f"{text}: {entries[i].why_not}")
    straddling = [i for i in measured if entries[i].state == "open"]
    if straddling:
        lows = max(entries[i].speedup_low or 0.0 for i in straddling)
        parts.append(
            f"{len(straddling)} candidate(s) still straddle the margin after "
            f"{v.generations} processes"
            + (f" (the best gains at least {lows - 1:.1%})" if lows > 1 else "")
        )
    resolution = f"no candidate gains more than {v.resolution:.1%}" if v.resolution else ""
    return "; ".join(p for p in [*parts, resolution] if p)


def _reference_outlier(aa_logs: list[float], threshold: float) -> str | None:
    """The reference process is one more process of ORT's default configuration: when the
    default's fresh processes all ran beyond the margin from it, further than their own spread
    predicts (99% prediction interval), the measurement itself is not stable (a process that
    changes speed as it ages, a fault): no verdict."""
    if len(aa_logs) < 2:
        return None
    mean = statistics.fmean(aa_logs)
    spread = statistics.stdev(aa_logs)
    predicted = t_quantile(0.995, len(aa_logs) - 1) * spread * math.sqrt(1 + 1 / len(aa_logs))
    if abs(mean) <= max(predicted, math.log(threshold)):
        return None
    return (
        f"fresh processes of ORT's default configuration ran {math.exp(mean):.2f}× the time of "
        "the reference process of the same configuration, beyond their own spread: the "
        "measurement is not stable here"
    )


def _too_few(rounds: list[Round], rounds_dropped: int, complete: bool) -> str:
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
    return why
