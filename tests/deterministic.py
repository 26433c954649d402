"""A deterministic stand-in behind the search's measurement seam (``SearchOptions.measurer``,
``SearchOptions.monitor``), for the search loop's logic: resume, patience, the head-to-head's
extra processes, the stored verdict, load rules. Timing would make those assertions flaky; here
every figure follows from the configuration and a seed, so the tests assert exact outcomes and
run in a second. Each behaviour is also covered once end to end with real processes
(tests/test_search.py, test_interrupt.py, test_decisions.py, test_load.py).

A configuration's latency is ``latency(config)`` (relative: ORT's defaults 1.0); each fresh
process multiplies it by a factor drawn once (log-normal, sd ``spread``), as real processes do
for their whole life; each block adds a little noise (``noise``). No process, no clock.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable
from typing import Any

from autotune.config import DEFAULT_CONFIG, SessionConfig
from autotune.measure.generations import HeadToHead, HeadToHeadProgress, Replication, replicate
from autotune.measure.load import Load
from autotune.measure.manager import TrialResult, WorkerSetup, WorkerTarget
from autotune.measure.verdict import Round
from autotune.store.records import Status

BASE_MS = 2.0  # ORT's defaults' latency in milliseconds


class DeterministicMeasurer:
    def __init__(
        self,
        latency: Callable[[SessionConfig], float],
        *,
        spread: float = 0.0,
        noise: float = 0.002,
        seed: int = 0,
        interrupt_at: int | None = None,
    ) -> None:
        self.latency, self.spread, self.noise = latency, spread, noise
        self.rng = random.Random(seed)
        self.interrupt_at = interrupt_at
        self.measured = 0
        self.latency_estimate_ms = BASE_MS
        self.floor_ms = BASE_MS
        self.info: dict[str, Any] = {"latency_ms": BASE_MS, "runs_per_block": 1}
        self.info["floor_ms"] = BASE_MS

    def factory(self, setup: WorkerSetup, target: WorkerTarget) -> DeterministicMeasurer:
        """``SearchOptions.measurer``: this measurer for any setup."""
        return self

    def _process(self) -> float:
        return math.exp(self.rng.gauss(0.0, self.spread)) if self.spread else 1.0

    def _block(self, config: SessionConfig, process: float) -> float:
        return BASE_MS * self.latency(config) * process * (1 + self.rng.uniform(-1, 1) * self.noise)

    def measure(
        self,
        config: SessionConfig,
        *,
        timeout: float,
        trial_dir: str | None = None,
        on_round: Callable[[int, float, bool], bool] | None = None,
    ) -> TrialResult:
        self.measured += 1
        if self.interrupt_at is not None and self.measured >= self.interrupt_at:
            raise KeyboardInterrupt
        process = self._process()
        ratios, blocks = [], []
        status = Status.OK
        for index in range(8):
            block, reference = self._block(config, process), self._block(DEFAULT_CONFIG, 1.0)
            ratios.append(block / reference)
            blocks.append(block)
            if on_round is not None and on_round(index, ratios[-1], True):
                status = Status.PRUNED
                break
        return TrialResult(
            status=status,
            ratio=statistics.median(ratios),
            ratios=ratios,
            rounds_kept=len(ratios),
            latency_ms_p50=statistics.median(blocks),
            latency_ms_p90=max(blocks),
            reference_ms_p50=BASE_MS,
            runs=len(blocks),
            session_create_ms=10.0,
            first_run_ms=BASE_MS,
            session_rss_mb=20.0,
            floor_ms=BASE_MS,
        )

    def compare(
        self,
        configs: list[SessionConfig],
        rounds: int,
        timeout: float,
        plan: Replication | None = None,
        *,
        on_round: Callable[[HeadToHeadProgress], None] | None = None,
    ) -> HeadToHead:
        """One generation is drawn here; how many run is autotune's own rule
        (``autotune.measure.generations.replicate``), on a clock that stands still."""
        plan = plan or Replication()
        per_generation = max(2, math.ceil(rounds / plan.generations))
        out = HeadToHead(contenders=len(configs), target_rounds=per_generation * plan.generations)

        def generation(number: int, active: list[int], share: float | None) -> float:
            processes = {i: self._process() for i in active}
            for _ in range(per_generation):
                medians = {i: self._block(configs[i], processes[i]) for i in active}
                reference = self._block(DEFAULT_CONFIG, 1.0)
                row = tuple(medians.get(i, math.nan) for i in range(len(configs)))
                out.rounds.append(Round(number, row, reference))
                for i in active:
                    out.latencies[i].append(medians[i])
            return 0.0

        return replicate(generation, out, per_generation, plan, clock=lambda: 0.0)

    def round_seconds(self, processes: int) -> float:
        return 0.0

    def slowdown(self, reference_blocks_ms: list[float]) -> float:
        return 1.0

    def kill(self) -> None:
        pass

    def close(self) -> None:
        pass


class SteadyMonitor:
    """Other programs' load, as given (``SearchOptions.monitor``): ``other_cores`` of a
    ``cores``-core machine whose sessions use ``threads`` threads."""

    def __init__(self, other_cores: float = 0.0, cores: int = 2, threads: int = 2) -> None:
        self.load = Load(other_cores, 0.0, 0.0, 1.0, cores=cores, threads=threads)

    def __call__(self) -> SteadyMonitor:
        return self

    def sample(self) -> Load:
        return self.load

    def measure(self, seconds: float = 1.0) -> Load:
        return self.load

    def wait_for_quiet(self, max_wait: float, on_wait: Any = None) -> Load:
        return self.load
