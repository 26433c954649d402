"""Measuring configurations honestly, the parent side: one process per session, timed in paired
rounds (the session process itself is ``autotune.measure.worker``).

Every candidate configuration runs in its own spawned process holding one session; the reference
(ORT's default configuration) lives in another for the whole search. Candidate and reference are
timed **interleaved and paired**: short rounds, each running a block of the candidate and a block
of the reference in random order; a round's score is the ratio of the two block medians. On the
shared VMs this runs on, slow phases lasting seconds to minutes double latencies, so absolute
times from different moments cannot be compared, but a ratio taken within one round can. Rounds
whose reference block is more than ``guard`` times slower than the fastest reference block known
for this model are dropped (a slow phase); the README's "How it measures" has the measurements.

The process not being timed is frozen with SIGSTOP: an idle ORT session's intra-op threads keep
spinning after a run, and on a 2-core machine two live sessions in one process slow each other by
up to 2x (measured: 5.8 ms alone, 10-12 ms alternating with a second session, 5.7 ms frozen).

The parent checks every candidate: that the providers asked for were kept and where nodes were
placed, and that outputs match a CPU-EP reference run (ORT_DISABLE_ALL, fp32). A crash (segfault,
abort) or a hang kills only the candidate's process; the trial is recorded as crashed or timed out.
"""

from __future__ import annotations

import collections
import contextlib
import math
import multiprocessing
import os
import random
import signal
import statistics
import time
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from autotune import defaults
from autotune.config import DEFAULT_CONFIG, SessionConfig
from autotune.measure.accuracy import gate
from autotune.measure.generations import HeadToHead, HeadToHeadProgress, Replication, replicate
from autotune.measure.messages import (
    BlockTimes,
    BuildFailed,
    Built,
    ProcessSetup,
    RunBlock,
    Stop,
)
from autotune.measure.stats import iqr, percentile
from autotune.measure.verdict import Round
from autotune.measure.worker import worker_main
from autotune.store.records import Status

RECENT_BLOCKS = 15  # reference blocks the slow-phase guard's level is the median of


@dataclass(frozen=True)
class Protocol:
    """How candidates are timed. Defaults follow the measurements on a 2-core VM."""

    block_seconds: float = 0.08  # target length of one block of timed runs
    min_runs_per_block: int = 3
    max_runs_per_block: int = 2000
    rounds: int = defaults.ROUNDS  # kept rounds wanted per candidate
    max_rounds: int = defaults.max_rounds(defaults.ROUNDS)  # then give up waiting for a fast phase
    # kept rounds of the final head-to-head, over all its processes
    final_rounds: int = defaults.FINAL_ROUNDS_PER_ROUND * defaults.ROUNDS
    generations: int = 3  # fresh processes per configuration in the head-to-head
    small_generations: int = 5  # the same, for models that run in under 1 ms
    max_generations: int = 20  # while a decision is open, more processes, up to this many
    extra_seconds: float = 30.0  # ... taking at least this long (or as long as the planned)
    guard: float = 1.25  # drop a round whose reference block is this much slower than the level
    # the accuracy gate (autotune.measure.accuracy): auto, or a tier for every configuration
    accuracy: str = "auto"
    rtol: float | None = None  # None: the tier's tolerances
    atol: float | None = None


@dataclass(frozen=True)
class WorkerSetup:
    """What a search measures with: the model, its feeds, the protocol."""

    model_path: str
    feeds: dict[str, Any]
    protocol: Protocol = Protocol()
    floor_ms: float | None = None  # fastest reference block known for this model (stored)
    cache_root: str | None = None  # per-trial compile caches go below it
    reference_config: str = DEFAULT_CONFIG.to_json()


@dataclass
class TrialResult:
    """Everything one trial measured; stored as one row."""

    status: str
    error: str | None = None
    ratio: float | None = None  # median over kept rounds of candidate/reference block latency
    ratio_iqr: float | None = None
    ratios: list[float] = field(default_factory=list)
    rounds_kept: int = 0
    rounds_dropped: int = 0
    latency_ms_p50: float | None = None
    latency_ms_p90: float | None = None
    reference_ms_p50: float | None = None
    runs: int = 0
    session_create_ms: float | None = None
    cached_session_create_ms: float | None = None  # again, from the compile cache (compiling EPs)
    first_run_ms: float | None = None
    session_rss_mb: float | None = None
    peak_rss_mb: float | None = None
    max_abs_err: float | None = None
    err_to_tol: float | None = None
    accuracy: str | None = None  # the tier its outputs were judged at
    placement: dict[str, Any] = field(default_factory=dict)
    floor_ms: float | None = None
    bounded: bool = False  # its time limit came from the search's --timeout (not stored)

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        del row["bounded"]
        return row


class WorkerLost(Exception):
    """A session process died (crashed) or stopped answering (timeout)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


WorkerTarget = Callable[[Any, ProcessSetup], None]


class Measurer(typing.Protocol):
    """What the search and the head-to-head measure with: :class:`Manager` (real
    processes), or a deterministic stand-in in tests of the search's logic."""

    info: dict[str, Any]
    latency_estimate_ms: float
    floor_ms: float

    def measure(
        self,
        config: SessionConfig,
        *,
        timeout: float,
        trial_dir: str | None = None,
        on_round: Callable[[int, float, bool], bool] | None = None,
    ) -> TrialResult: ...

    def compare(
        self,
        configs: list[SessionConfig],
        rounds: int,
        timeout: float,
        plan: Replication | None = None,
        *,
        on_round: Callable[[HeadToHeadProgress], None] | None = None,
    ) -> HeadToHead: ...

    def round_seconds(self, processes: int) -> float: ...

    def slowdown(self, reference_blocks_ms: list[float]) -> float: ...

    def kill(self) -> None: ...

    def close(self) -> None: ...


class SessionProcess:
    """A spawned process holding one session, frozen (SIGSTOP) whenever it is not being timed."""

    def __init__(self, setup: ProcessSetup, target: WorkerTarget, timeout: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=target, args=(child, setup), daemon=True)
        # Ctrl-C or SIGTERM arriving while the child is being handed its setup would leave it
        # reading a cut-off pickle (and printing a traceback): hold them until it has it
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            self.process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        child.close()
        self.peak_rss_mb: float | None = None
        try:
            msg = self._receive(timeout)
        except WorkerLost:
            self.kill()
            raise
        if not isinstance(msg, Built):
            self.kill()
            raise WorkerLost(
                Status.FAILED, msg.error if isinstance(msg, BuildFailed) else repr(msg)
            )
        self.built: Built = msg
        self._freeze()

    def _freeze(self) -> None:
        if self.process.pid and self.process.is_alive():
            os.kill(self.process.pid, signal.SIGSTOP)

    def _thaw(self) -> None:
        if self.process.pid and self.process.is_alive():
            os.kill(self.process.pid, signal.SIGCONT)

    def _receive(self, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise WorkerLost(
                    Status.TIMEOUT, f"no answer within {timeout:.0f} s; the process was killed"
                )
            try:
                if self.conn.poll(min(remaining, 0.5)):
                    return self.conn.recv()
            except (EOFError, OSError):
                pass
            if not self.process.is_alive():
                try:
                    if self.conn.poll(0):
                        return self.conn.recv()
                except (EOFError, OSError):
                    pass
                raise WorkerLost(Status.CRASHED, _exit_text(self.process.exitcode))

    def block(self, runs: int, timeout: float) -> list[float]:
        """Time ``runs`` runs (after one discarded run) while every other process is frozen."""
        self._thaw()
        try:
            self.conn.send(RunBlock(runs))
            msg = self._receive(timeout)
        finally:
            self._freeze()
        if not isinstance(msg, BlockTimes):
            self.kill()
            raise WorkerLost(Status.FAILED, f"the process answered {msg!r} to a block of runs")
        self.peak_rss_mb = msg.peak_rss_mb
        return msg.times_ms

    def kill(self) -> None:
        if self.process.is_alive():
            self._thaw()
            self.process.kill()
        self.process.join(5)

    def close(self) -> None:
        self._thaw()
        with contextlib.suppress(OSError):
            self.conn.send(Stop())
        self.process.join(5)
        self.kill()
        self.conn.close()


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the process died with {name}"
    return f"the process exited with code {code}"


class Manager:
    """The measuring side (pyperf's manager): it spawns the session processes (the workers,
    ``autotune.measure.worker``), the reference for the whole search and one per candidate, and
    times them in paired rounds."""

    def __init__(
        self,
        setup: WorkerSetup,
        *,
        startup_timeout: float = 600.0,
        target: WorkerTarget = worker_main,
    ) -> None:
        self.setup = setup
        self.protocol = setup.protocol
        self.target = target
        self.baseline = SessionProcess(
            ProcessSetup(
                setup.model_path, setup.feeds, setup.reference_config, reference_outputs=True
            ),
            target,
            startup_timeout,
        )
        self.reference_outputs = self.baseline.built.reference_outputs or []
        probe = self.baseline.block(5, startup_timeout)
        self.latency_estimate_ms = statistics.median(probe)
        p = self.protocol
        wanted = math.ceil(p.block_seconds * 1000.0 / max(self.latency_estimate_ms, 1e-4))
        # a slow model (a run longer than a third of a block) times one run per block, so that
        # rounds stay short enough for the protocol to finish (a 1 s model: 1 s blocks)
        least = p.min_runs_per_block if wanted >= p.min_runs_per_block else 1
        self.runs_per_block = max(least, min(p.max_runs_per_block, wanted))
        floor = min(
            statistics.median(self.baseline.block(self.runs_per_block, startup_timeout))
            for _ in range(3)
        )
        # a stored floor from earlier runs counts only where it is plausible (this machine
        # does not run twice as fast as it does now): a forged or foreign one cannot make
        # every round look slow
        stored = setup.floor_ms
        self.floor_ms = min(floor, stored) if stored and stored >= 0.5 * floor else floor
        self.recent: collections.deque[float] = collections.deque([floor], maxlen=RECENT_BLOCKS)
        self.info = {
            "latency_ms": self.latency_estimate_ms,
            "runs_per_block": self.runs_per_block,
            "floor_ms": self.floor_ms,
        }

    def _kept(self, reference_block_ms: float) -> bool:
        """The slow-phase guard follows the current level (the median of the last reference
        blocks): a burst is dropped, steady load is not (its effect is judged by the verdict,
        from :meth:`slowdown`)."""
        self.floor_ms = min(self.floor_ms, reference_block_ms)
        self.recent.append(reference_block_ms)
        return reference_block_ms <= self.protocol.guard * statistics.median(self.recent)

    def slowdown(self, reference_blocks_ms: list[float]) -> float:
        """How much slower the reference ran in these blocks than its floor (the fastest block
        this machine has measured for the model): the load's measured effect."""
        if not reference_blocks_ms:
            return 1.0
        return max(1.0, statistics.median(reference_blocks_ms) / self.floor_ms)

    def measure(
        self,
        config: SessionConfig,
        *,
        timeout: float,
        trial_dir: str | None = None,
        on_round: Callable[[int, float, bool], bool] | None = None,
    ) -> TrialResult:
        """Measure one candidate in its own process. ``on_round`` returns True to stop early
        (prune). A crash or hang of the candidate gives a crashed/timeout result."""
        deadline = time.monotonic() + timeout
        p = self.protocol
        try:
            cand = SessionProcess(
                ProcessSetup(self.setup.model_path, self.setup.feeds, config.to_json(), trial_dir),
                self.target,
                timeout,
            )
        except WorkerLost as exc:
            return TrialResult(status=exc.status, error=str(exc))
        try:
            built = cand.built
            result = TrialResult(
                status=Status.OK,
                session_create_ms=built.session_create_ms,
                cached_session_create_ms=built.cached_session_create_ms,
                first_run_ms=built.first_run_ms,
                session_rss_mb=built.session_rss_mb,
                placement=built.placement,
            )
            if built.dropped:
                result.status = Status.EP_DROPPED
                result.error = f"ORT dropped {', '.join(built.dropped)} and ran on CPU"
                return result
            placed = result.placement.get("nodes", {})
            silent = [n for n in result.placement.get("requested", []) if not placed.get(n)]
            if result.placement.get("available") and silent:
                result.status = Status.EP_DROPPED
                result.error = f"{', '.join(silent)} took no nodes; the session ran on CPU"
                return result
            judged = gate(
                config,
                result.placement,
                self.reference_outputs,
                built.outputs,
                p.accuracy,
                p.rtol,
                p.atol,
            )
            result.max_abs_err, result.err_to_tol = judged.max_abs_err, judged.err_to_tol
            result.accuracy = judged.tier
            if not judged.ok:
                result.status = Status.INACCURATE
                result.error = judged.problem
                return result
            self._interleave(cand, result, deadline, on_round)
            result.peak_rss_mb = cand.peak_rss_mb
            result.floor_ms = self.floor_ms
            return result
        except WorkerLost as exc:
            return TrialResult(status=exc.status, error=str(exc))
        finally:
            cand.close()

    def _interleave(
        self,
        cand: SessionProcess,
        result: TrialResult,
        deadline: float,
        on_round: Callable[[int, float, bool], bool] | None,
    ) -> None:
        p = self.protocol
        samples: list[float] = []
        ref_samples: list[float] = []
        kept_ratios: list[float] = []
        dropped = 0
        stopped = False
        rng = random.Random()
        blocks: dict[str, list[float]] = {}
        # a fresh process runs its first blocks slow (page faults, arena growth): warm it up
        cand.block(self.runs_per_block, max(deadline - time.monotonic(), 1.0))
        for index in range(p.max_rounds):
            order = [("c", cand), ("r", self.baseline)]
            rng.shuffle(order)
            for tag, proc in order:
                remaining = deadline - time.monotonic()
                if proc is cand and remaining <= 0:
                    cand.kill()
                    raise WorkerLost(
                        Status.TIMEOUT, "the trial ran past its time limit; it was killed"
                    )
                blocks[tag] = proc.block(self.runs_per_block, max(remaining, 60.0))
            cand_ms = statistics.median(blocks["c"])
            ref_ms = statistics.median(blocks["r"])
            ratio = cand_ms / ref_ms
            kept = self._kept(ref_ms)
            if kept:
                kept_ratios.append(ratio)
                samples += blocks["c"]
                ref_samples += blocks["r"]
            else:
                dropped += 1
                time.sleep(0.2)  # a slow phase: give it a moment to pass
            if on_round is not None and on_round(index, ratio, kept):
                stopped = True
                break
            if len(kept_ratios) >= p.rounds:
                break
        if not kept_ratios:
            # never a fast phase: report the unguarded figure, marked as such
            result.error = "every round ran in a slow phase; figure is unguarded"
            kept_ratios = [statistics.median(blocks["c"]) / statistics.median(blocks["r"])]
            samples, ref_samples = blocks["c"], blocks["r"]
        result.ratios = kept_ratios
        result.ratio = statistics.median(kept_ratios)
        result.ratio_iqr = iqr(kept_ratios)
        result.rounds_kept = len(kept_ratios) if not result.error else 0
        result.rounds_dropped = dropped
        result.latency_ms_p50 = percentile(samples, 50)
        result.latency_ms_p90 = percentile(samples, 90)
        result.reference_ms_p50 = percentile(ref_samples, 50)
        result.runs = len(samples)
        if stopped:
            result.status = Status.PRUNED

    def round_seconds(self, processes: int) -> float:
        """Estimated wall time of one head-to-head round over ``processes`` plus the reference."""
        block = (self.runs_per_block + 1) * self.latency_estimate_ms / 1000.0 + 0.005
        return (processes + 1) * block

    def compare(
        self,
        configs: list[SessionConfig],
        rounds: int,
        timeout: float,
        plan: Replication | None = None,
        *,
        on_round: Callable[[HeadToHeadProgress], None] | None = None,
    ) -> HeadToHead:
        """Head-to-head of several configurations (ORT's default first) against the reference.

        Each configuration runs in at least ``plan.generations`` successive fresh processes, a
        share of the rounds each: two processes of one configuration can differ by more than the
        decision margin, so the verdict (``autotune.measure.verdict``) replicates processes, not
        only rounds; more follow while a decision is open (``autotune.measure.generations``).
        ``plan.deadline`` bounds the whole comparison: fewer rounds per process are planned to
        fit, and it stops at the deadline with what it has (``complete`` False)."""
        plan = plan or Replication()
        per_generation = max(1, math.ceil(rounds / plan.generations))
        if plan.deadline is not None:
            spawn = 0.5 * len(configs)  # starting the processes, building their sessions
            fits = (plan.deadline - time.monotonic()) / plan.generations - spawn
            per_generation = max(
                2, min(per_generation, int(fits / self.round_seconds(len(configs))))
            )
        out = HeadToHead(contenders=len(configs), target_rounds=per_generation * plan.generations)
        run = _Generations(self, configs, per_generation, timeout, out, on_round)
        return replicate(run.generation, out, per_generation, plan)

    def kill(self) -> None:
        self.baseline.kill()

    def close(self) -> None:
        self.baseline.close()


class _Generations:
    """One head-to-head's generations: fresh processes of the active contenders, timed in
    rounds against the reference."""

    def __init__(
        self,
        manager: Manager,
        configs: list[SessionConfig],
        per_generation: int,
        timeout: float,
        out: HeadToHead,
        on_round: Callable[[HeadToHeadProgress], None] | None,
    ) -> None:
        self.manager, self.configs, self.per_generation = manager, configs, per_generation
        self.timeout, self.out, self.on_round = timeout, out, on_round
        self.started = time.monotonic()
        self.rng = random.Random()

    def generation(self, generation: int, active: list[int], share: float | None) -> float:
        """Measure one generation of the ``active`` contenders; its wall time in seconds."""
        began = time.monotonic()
        manager, setup, out = self.manager, self.manager.setup, self.out
        procs: dict[int, SessionProcess] = {}
        try:
            for i in active:
                cfg = self.configs[i]
                procs[i] = SessionProcess(
                    ProcessSetup(
                        setup.model_path,
                        setup.feeds,
                        cfg.to_json(),
                        trial_dir_for(setup.cache_root, cfg),
                    ),
                    manager.target,
                    self.timeout,
                )
            for proc in procs.values():
                proc.block(manager.runs_per_block, self.timeout)  # warm-up, discarded
            kept = attempts = 0
            # a slow phase can last minutes: keep trying (bounded), never judge on few rounds
            while attempts < self.per_generation * 6 and kept < self.per_generation:
                if share is not None and time.monotonic() >= share:
                    out.complete = False
                    break
                attempts += 1
                kept += self._round(generation, procs)
        finally:
            for proc in procs.values():
                proc.close()
        return time.monotonic() - began

    def _round(self, generation: int, procs: dict[int, SessionProcess]) -> int:
        manager, out = self.manager, self.out
        order = [*procs, -1]
        self.rng.shuffle(order)
        blocks: dict[int, list[float]] = {}
        for i in order:
            proc = manager.baseline if i < 0 else procs[i]
            blocks[i] = proc.block(manager.runs_per_block, self.timeout)
        medians = {i: statistics.median(b) for i, b in blocks.items()}
        kept = manager._kept(medians[-1])
        if kept:
            row = tuple(medians.get(i, math.nan) for i in range(out.contenders))
            out.rounds.append(Round(generation, row, medians[-1]))
            for i in procs:
                out.latencies[i] += blocks[i]
        else:
            out.rounds_dropped += 1
            # give the slow phase a moment to pass (up to 1 s; less for short rounds)
            time.sleep(min(1.0, 10 * manager.round_seconds(len(procs))))
        if self.on_round is not None:
            done = len(out.rounds)
            elapsed = time.monotonic() - self.started
            rate = elapsed / max(done + out.rounds_dropped, 1)
            self.on_round(
                HeadToHeadProgress(
                    done, out.rounds_dropped, out.target_rounds, rate * (out.target_rounds - done)
                )
            )
        return int(kept)


def trial_dir_for(root: str | None, config: SessionConfig) -> str | None:
    """The compile-cache directory of one configuration during a search (kept until the search
    ends, so the final head-to-head loads compiled models from it instead of compiling again),
    shared by the configurations with its compile key (``autotune.compile_cache``)."""
    from autotune.compile_cache import trial_dir

    return trial_dir(root, config)
