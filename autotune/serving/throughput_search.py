"""The throughput objective: which arrangement, with which per-session settings, serves N
requests in flight fastest within a p99 budget.

Screening: one fresh process measures every candidate once (``candidates``); those whose p99
misses the budget are dropped and the fastest few go on. Head-to-head: several fresh processes
(generations), each building the baseline (one shared session with ORT's defaults), the
finalists and a second baseline (the reference), and measuring them in random order in paired
rounds. Each round's "median" per contender is its time per request (1 / throughput), so the
decision is the latency search's own paired, replicated, never-worse rule
(``autotune.measure.verdict.decide``), with its A/A control on the baseline's instances.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from autotune.config import DEFAULT_CONFIG
from autotune.measure.generations import HeadToHead, replicate
from autotune.measure.verdict import Round, Verdict, decide
from autotune.serving.arrangement import (
    GLOBAL_POOL,
    PROCESSES,
    SHARED,
    SPLIT,
    Arrangement,
    baseline,
)
from autotune.serving.bound import LoadDuring, apply_bound, until_decided, within
from autotune.serving.child import run_child

NO_SPIN = {"session.intra_op.allow_spinning": "0"}


@dataclass
class ThroughputOptions:
    """What to measure and how long (the defaults fit a search of a few minutes)."""

    concurrency: int = 2
    p99_budget_ms: float | None = None
    arrival: str = "closed"  # or poisson, at ``qps``
    qps: float | None = None
    min_gain: float = 0.03
    window_s: float = 0.5
    max_windows: int = 10
    finalists: int = 3
    generations: int = 3  # fresh processes before a verdict
    max_generations: int = 6  # more while a decision is open (``measure.generations``)
    rounds: int = 3  # per generation
    seed: int = 0
    generation_timeout_s: float = 600.0
    candidates: list[Arrangement] | None = None  # None: ``candidates(concurrency, cores)``


@dataclass
class ThroughputOutcome:
    """The head-to-head's contenders (the baseline first), their figures, and the verdict."""

    contenders: list[Arrangement]
    verdict: Verdict
    throughput: list[float | None]  # median requests/s per contender over the head-to-head
    p99_ms: list[float | None]
    screening: list[dict[str, Any]] = field(default_factory=list)
    unstable: list[str] = field(default_factory=list)  # labels whose windows never settled

    @property
    def pick(self) -> Arrangement | None:
        i = self.verdict.pick_index
        return None if i is None else self.contenders[i]

    def details(self) -> dict[str, Any]:
        return {
            "reason": self.verdict.reason,
            "verdict": self.verdict.to_dict(),
            "contenders": [
                {
                    "label": a.label(),
                    "arrangement": a.to_dict(),
                    "throughput": t,
                    "latency_ms_p99": p,
                    "speedup": e.speedup,
                    "speedup_low": e.speedup_low,
                    "speedup_high": e.speedup_high,
                    "why_not": e.why_not,
                }
                for a, t, p, e in zip(
                    self.contenders, self.throughput, self.p99_ms, self.verdict.entries, strict=True
                )
            ],
            "screening": self.screening,
            "unstable": self.unstable,
        }


def candidates(concurrency: int, cores: int) -> list[Arrangement]:
    """The arrangements worth measuring at ``concurrency`` on ``cores`` cores, the baseline
    first: each arrangement with its threads split between the requests in flight, and with
    ORT's default threads without spinning (idle spinning threads steal the cores other
    requests need)."""
    split = max(1, cores // concurrency)
    threads = replace(DEFAULT_CONFIG, intra_op_num_threads=split)
    no_spin = replace(DEFAULT_CONFIG, session_entries=NO_SPIN)
    out = [baseline(concurrency), Arrangement(SHARED, concurrency, no_spin)]
    if split != cores:
        out.append(Arrangement(SHARED, concurrency, threads))
    if concurrency > 1:
        out += [
            Arrangement(SPLIT, concurrency, threads),
            Arrangement(SPLIT, concurrency, no_spin),
            Arrangement(GLOBAL_POOL, concurrency),
            Arrangement(PROCESSES, concurrency, threads),
        ]
    seen: set[str] = set()
    unique = []
    for a in out:
        if a.to_json() not in seen:
            seen.add(a.to_json())
            unique.append(a)
    return unique


def run_generation(
    model: Path,
    shapes: dict[str, tuple[int, ...]],
    arrangements: list[Arrangement],
    options: ThroughputOptions,
    rounds: int,
    seed: int,
) -> dict[str, Any]:
    """One fresh driver process (``autotune.serving.driver``) measuring ``arrangements``."""
    job = {
        "model": str(model),
        "shapes": {k: list(v) for k, v in shapes.items()},
        "arrangements": [a.to_dict() for a in arrangements],
        "rounds": rounds,
        "window_s": options.window_s,
        "max_windows": options.max_windows,
        "arrival": options.arrival,
        "qps": options.qps,
        "seed": seed,
    }
    result: dict[str, Any] = run_child(
        "autotune.serving.driver",
        job,
        timeout_s=options.generation_timeout_s,
        what="a throughput measuring process",
    )
    return result


def screen(
    model: Path, shapes: dict[str, tuple[int, ...]], options: ThroughputOptions, cores: int
) -> tuple[list[Arrangement], list[dict[str, Any]]]:
    """The baseline and the fastest finalists within the budget, from one screening process."""
    pool = options.candidates or candidates(options.concurrency, cores)
    if not pool[0].is_baseline:
        pool = [baseline(options.concurrency), *pool]
    result = run_generation(model, shapes, pool, options, 1, options.seed)
    measured = result["rounds"][0]
    rows = []
    for i, a in enumerate(pool):
        m = measured[i]
        rows.append(
            {
                "label": a.label(),
                "throughput": m["throughput"] if m else None,
                "latency_ms_p99": m["latency_ms_p99"] if m else None,
                "error": result["errors"][i],
            }
        )
    ranked = [
        i
        for i in range(1, len(pool))
        if rows[i]["throughput"] and within(rows[i]["latency_ms_p99"], options.p99_budget_ms)
    ]
    ranked.sort(key=lambda i: -rows[i]["throughput"])
    return [pool[0], *(pool[i] for i in ranked[: options.finalists])], rows


def head_to_head(
    model: Path,
    shapes: dict[str, tuple[int, ...]],
    contenders: list[Arrangement],
    options: ThroughputOptions,
) -> ThroughputOutcome:
    """Generations of fresh processes, paired rounds, the verdict; the p99 budget after it.
    After the planned generations, more of the baseline and the contenders whose decision is
    open, up to ``max_generations`` (the single model's rule, ``measure.generations``)."""
    out = HeadToHead(len(contenders), options.rounds * options.generations)
    rates: list[list[float]] = [[] for _ in contenders]
    tails: list[list[float]] = [[] for _ in contenders]
    unstable: set[str] = set()
    load = LoadDuring()

    def judge() -> Verdict:
        return decide(
            out.rounds,
            contenders=len(contenders),
            min_gain=options.min_gain,
            latencies=out.latencies,
            rounds_dropped=out.rounds_dropped,
            conditions=load.conditions(),
            # every arrangement but the baseline changes how threads serve the requests
            changes_threads=[not a.is_baseline for a in contenders],
            min_generations=options.generations,
        )

    def generation(g: int, active: list[int], share: float | None) -> float:
        began = time.monotonic()
        measuring = [contenders[i] for i in active]  # the baseline first
        seed = options.seed + 1 + g
        result = run_generation(model, shapes, measuring, options, options.rounds, seed)
        for measured in result["rounds"]:
            if any(m is None or not m["throughput"] for m in measured):
                out.rounds_dropped += 1
                continue
            ms = {i: 1000.0 / m["throughput"] for i, m in zip(active, measured, strict=False)}
            row = tuple(ms.get(i, math.nan) for i in range(len(contenders)))
            out.rounds.append(Round(g, row, 1000.0 / measured[-1]["throughput"]))
            for i, m in zip(active, measured, strict=False):
                out.latencies[i].append(ms[i])
                rates[i].append(m["throughput"])
                if m["latency_ms_p99"] is not None:
                    tails[i].append(m["latency_ms_p99"])
                if not m["stable"]:
                    unstable.add(contenders[i].label())
        return time.monotonic() - began

    plan = until_decided(judge, options.generations, options.max_generations)
    replicate(generation, out, options.rounds, plan)
    verdict = judge()
    throughput = [statistics.median(r) if r else None for r in rates]
    p99 = [statistics.median(t) if t else None for t in tails]
    apply_bound(verdict, p99, options.p99_budget_ms, "p99")
    return ThroughputOutcome(contenders, verdict, throughput, p99, unstable=sorted(unstable))


def search_throughput(
    model: Path, shapes: dict[str, tuple[int, ...]], options: ThroughputOptions, cores: int
) -> ThroughputOutcome:
    """Screen, then judge the finalists against the baseline."""
    contenders, screening = screen(model, shapes, options, cores)
    outcome = head_to_head(model, shapes, contenders, options)
    outcome.screening = screening
    return outcome
