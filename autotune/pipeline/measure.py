"""Measuring pipeline arrangements, the parent side, with the single model's processes
(``autotune.measure.manager.SessionProcess``: spawned, frozen with SIGSTOP while another is
timed, killed on a crash or hang) and its protocol: short blocks of whole pipeline runs, each
round a block of every process in random order, paired with a block of the reference process
(ORT's defaults for every stage, alive throughout); a round whose reference block is
``guard`` times slower than the fastest seen is dropped (a slow phase of the VM).

``screen`` measures one candidate in its own process against the reference; ``head_to_head``
runs every contender in successive fresh processes (the replicated unit), as many as the
single model's replication rule allows (``autotune.measure.generations``), and returns the
rounds ``autotune.measure.verdict.decide`` judges. Every process's outputs are
checked against a CPU-EP fp32 replay first, and its peak RSS over the loop is kept."""

from __future__ import annotations

import math
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autotune.measure.generations import HeadToHead, Replication, replicate
from autotune.measure.manager import Protocol, SessionProcess, WorkerLost
from autotune.measure.messages import ProcessSetup
from autotune.measure.verdict import Round
from autotune.pipeline.arrangement import Arrangement
from autotune.pipeline.worker import pipeline_worker
from autotune.store.records import Status


def outputs_differ(expected: list[Any], outputs: list[Any], protocol: Protocol) -> str | None:
    """Where a replay's outputs leave the reference's tolerance (floats: ``rtol`` and ``atol``,
    by default 1e-3 and 1e-4, 1e-2 and 1e-3 for 16-bit; other types exactly); None if nowhere."""
    for i, (ref, out) in enumerate(zip(expected, outputs, strict=True)):
        ref, out = np.asarray(ref), np.asarray(out)
        if ref.shape != out.shape:
            return f"output {i} has shape {out.shape}, not {ref.shape}"
        if ref.dtype.kind in "fc":
            half = ref.dtype.itemsize <= 2
            rtol = protocol.rtol if protocol.rtol is not None else (1e-2 if half else 1e-3)
            atol = protocol.atol if protocol.atol is not None else (1e-3 if half else 1e-4)
            if not np.allclose(out, ref, rtol=rtol, atol=atol, equal_nan=True):
                worst = float(np.nanmax(np.abs(out.astype(np.float64) - ref)))
                return f"output {i} differs from the CPU reference by up to {worst:.3g}"
        elif not np.array_equal(ref, out):
            return f"output {i} ({ref.dtype}) differs from the CPU reference"
    return None


@dataclass
class Screening:
    """One candidate against the reference: the median paired ratio (candidate / reference
    block, lower is faster) and its memory."""

    status: str
    error: str | None = None
    ratio: float | None = None
    latency_ms_p50: float | None = None
    peak_rss_mb: float | None = None  # the process's peak over the replayed loop
    sessions_rss_mb: float | None = None  # what building the stages' sessions added


@dataclass
class Rounds:
    """What a head-to-head measured: kept rounds, each contender's runs, its processes' RSS."""

    rounds: list[Round] = field(default_factory=list)
    latencies: list[list[float]] = field(default_factory=list)
    peak_rss_mb: list[float | None] = field(default_factory=list)
    dropped: int = 0
    complete: bool = True  # False: the time ran out before every planned process ran


class PipelineBench:
    def __init__(
        self, spec_path: str, feeds: dict[str, Any], protocol: Protocol, timeout: float
    ) -> None:
        self.spec_path, self.feeds, self.protocol, self.timeout = (
            spec_path,
            feeds,
            protocol,
            timeout,
        )
        defaults = Arrangement.defaults(len(feeds))
        self.reference = self._process(defaults, reference=True)
        self.expected = self.reference.built.reference_outputs or []
        probe_ms = statistics.median(self.reference.block(3, timeout))
        wanted = math.ceil(protocol.block_seconds * 1000.0 / max(probe_ms, 1e-4))
        least = protocol.min_runs_per_block if wanted >= protocol.min_runs_per_block else 1
        self.runs = max(least, min(protocol.max_runs_per_block, wanted))
        self.floor_ms = min(self._block(self.reference) for _ in range(3))
        self.rng = random.Random()

    def _process(self, arrangement: Arrangement, *, reference: bool = False) -> SessionProcess:
        setup = ProcessSetup(
            self.spec_path, self.feeds, arrangement.to_json(), reference_outputs=reference
        )
        return SessionProcess(setup, pipeline_worker, self.timeout)

    def _checked(self, arrangement: Arrangement) -> SessionProcess:
        """A process of ``arrangement`` whose outputs match the reference's; raises WorkerLost."""
        proc = self._process(arrangement)
        problem = outputs_differ(self.expected, proc.built.outputs, self.protocol)
        if problem or proc.built.dropped:
            proc.close()
            if problem:
                raise WorkerLost(Status.INACCURATE, problem)
            raise WorkerLost(Status.EP_DROPPED, f"ORT dropped {', '.join(proc.built.dropped)}")
        proc.block(self.runs, self.timeout)  # warm-up: a fresh process's first blocks are slow
        return proc

    def _block(self, proc: SessionProcess, times: list[float] | None = None) -> float:
        block = proc.block(self.runs, self.timeout)
        if times is not None:
            times += block
        return statistics.median(block)

    def _round(self, procs: list[SessionProcess], times: list[list[float]]) -> tuple[Round, bool]:
        """One round over ``procs`` and the reference, in random order, and whether it is kept
        (its runs then go to ``times``)."""
        order = [*range(len(procs)), -1]
        self.rng.shuffle(order)
        medians: dict[int, float] = {}
        blocks: dict[int, list[float]] = {}
        for i in order:
            blocks[i] = []
            medians[i] = self._block(self.reference if i < 0 else procs[i], blocks[i])
        self.floor_ms = min(self.floor_ms, medians[-1])
        kept = medians[-1] <= self.protocol.guard * self.floor_ms
        if kept:
            for i in range(len(procs)):
                times[i] += blocks[i]
        return Round(0, tuple(medians[i] for i in range(len(procs))), medians[-1]), kept

    def screen(self, arrangement: Arrangement) -> Screening:
        """The candidate's paired ratio to the reference over ``protocol.rounds`` kept rounds
        (when every round ran in a slow phase: over all of them, and said so)."""
        try:
            proc = self._checked(arrangement)
        except WorkerLost as exc:
            return Screening(exc.status, str(exc))
        try:
            ratios: list[float] = []
            unguarded: list[float] = []
            times: list[list[float]] = [[]]
            for _ in range(self.protocol.max_rounds):
                r, kept = self._round([proc], times)
                (ratios if kept else unguarded).append(r.medians[0] / r.reference)
                if len(ratios) >= self.protocol.rounds:
                    break
            return Screening(
                Status.OK,
                None if ratios else "every round ran in a slow phase; the figure is unguarded",
                ratio=statistics.median(ratios or unguarded),
                latency_ms_p50=statistics.median(times[0]) if times[0] else None,
                peak_rss_mb=proc.peak_rss_mb,
                sessions_rss_mb=proc.built.session_rss_mb,
            )
        except WorkerLost as exc:
            return Screening(exc.status, str(exc))
        finally:
            proc.close()

    def head_to_head(
        self, arrangements: list[Arrangement], rounds: int, plan: Replication
    ) -> Rounds:
        """Every arrangement in successive fresh processes, ``rounds`` kept rounds each (bounded
        retries while slow phases drop rounds): ``plan.generations`` of them, then more of the
        baselines and the contenders whose decision is open, as the single model's head-to-head
        adds them (``autotune.measure.generations.replicate``)."""
        out = HeadToHead(contenders=len(arrangements), target_rounds=rounds * plan.generations)
        peak: list[float | None] = [None] * len(arrangements)

        def generation(number: int, active: list[int], share: float | None) -> float:
            began = time.monotonic()
            procs: dict[int, SessionProcess] = {}
            try:
                for i in active:
                    procs[i] = self._checked(arrangements[i])
                kept = 0
                for _ in range(rounds * 6):
                    if kept >= rounds or (share is not None and time.monotonic() >= share):
                        break
                    order = list(procs)
                    times: list[list[float]] = [[] for _ in order]
                    r, kept_round = self._round([procs[i] for i in order], times)
                    if not kept_round:
                        out.rounds_dropped += 1
                        continue
                    medians = dict(zip(order, r.medians, strict=True))
                    row = tuple(medians.get(i, math.nan) for i in range(out.contenders))
                    out.rounds.append(Round(number, row, r.reference))
                    for i, runs in zip(order, times, strict=True):
                        out.latencies[i] += runs
                    kept += 1
                for i, proc in procs.items():
                    peak[i] = max(proc.peak_rss_mb or 0.0, peak[i] or 0.0)
            finally:
                for proc in procs.values():
                    proc.close()
            return time.monotonic() - began

        replicate(generation, out, rounds, plan)
        return Rounds(out.rounds, out.latencies, peak, out.rounds_dropped, out.complete)

    def close(self) -> None:
        self.reference.close()
