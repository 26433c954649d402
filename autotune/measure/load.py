"""How busy this machine is with other work, measured while a search runs.

A timing is only worth its paired comparison if nothing else competes for the cores in a way
that changes between processes. This module measures what other programs use: the CPU time of
the whole machine minus this process tree's (psutil's counters, on macOS and Linux alike),
the hypervisor's steal time where the OS reports it, and the load average; the level (quiet,
light, heavy) is judged against this machine's cores and the sessions' threads
(``autotune.measure.conditions``). Imported by the search only (psutil is not needed at run
time).

This process tree's CPU includes the session processes it has already reaped. psutil reports
those (``children_user``/``children_system``) on Linux only; on macOS and Windows they read 0,
and a head-to-head's finished processes would count as "other programs". So reaped children
are counted with ``resource.getrusage(RUSAGE_CHILDREN)`` where it exists (POSIX: the kernel's
own total for waited-for children), and, where it does not (Windows), each child's CPU is
remembered while it lives and kept after it exits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import psutil

from autotune.measure.conditions import LoadLevel, classify

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Load:
    """What other programs used over one interval."""

    other_cores: float  # CPU used by processes outside this search, in cores (1.0 = one core)
    steal: float  # CPU time the hypervisor took, in cores (0 where the OS does not say)
    load_avg: float  # the 1-minute load average
    seconds: float  # the interval
    top: str = ""  # the busiest other process, e.g. "python (pid 123) 0.9 cores"
    cores: int = 1  # this machine's logical cores
    threads: int | None = None  # the sessions' threads (None: as many as cores)

    @property
    def level(self) -> LoadLevel:
        return classify(self.other_cores, self.steal, self.cores, self.threads)

    @property
    def busy(self) -> bool:
        """Heavy load: the search waits for quiet (or goes on with --allow-busy)."""
        return self.level == LoadLevel.HEAVY

    @property
    def loaded(self) -> bool:
        """Not quiet: what is measured now is marked."""
        return self.level != LoadLevel.QUIET

    def text(self) -> str:
        parts = [f"other programs use {self.other_cores:.2f} cores"]
        if self.steal > 0.05:
            parts.append(f"steal {self.steal:.2f} cores")
        if self.top:
            parts.append(f"busiest: {self.top}")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "level": self.level.value}


def _reaped_cpu() -> float | None:
    """CPU seconds of this process's waited-for children (and theirs), from the kernel; None
    where the platform has no getrusage (Windows)."""
    if resource is None:
        return None
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class _TreeCpu:
    """CPU seconds used by this process, its live children and the children it has reaped."""

    def __init__(self, root: psutil.Process) -> None:
        self.root = root
        self.seen: dict[tuple[int, float], float] = {}  # (pid, create time) -> last CPU seen

    def __call__(self) -> float:
        live: dict[tuple[int, float], float] = {}
        own = 0.0
        with contextlib.suppress(psutil.Error):
            t = self.root.cpu_times()
            own = t.user + t.system
            for child in self.root.children(recursive=True):
                try:
                    c = child.cpu_times()
                    live[(child.pid, child.create_time())] = c.user + c.system
                except psutil.Error:
                    continue
        reaped = _reaped_cpu()
        if reaped is None:
            # no kernel total: the children gone since the last look keep what was last seen
            self.seen.update(live)
            reaped = sum(v for k, v in self.seen.items() if k not in live)
        return own + reaped + sum(live.values())


def _machine_cpu() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, steal seconds) since boot."""
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    steal = getattr(t, "steal", 0.0)
    busy = sum(t) - idle - steal - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
    return busy, steal


class LoadSource(typing.Protocol):
    """What reports other programs' load: :class:`LoadMonitor`, or a steady stand-in in tests."""

    def sample(self) -> Load: ...

    def measure(self, seconds: float = 1.0) -> Load: ...

    def wait_for_quiet(
        self, max_wait: float, on_wait: Callable[[Load, float], None] | None = None
    ) -> Load: ...


class LoadOver:
    """Other programs' use over a stretch of measurement (a head-to-head), time-weighted over
    the samples taken so far: the one place a head-to-head's load is summed, for the latency,
    throughput and pipeline head-to-heads alike."""

    def __init__(self, monitor: LoadSource) -> None:
        self.monitor = monitor
        self.samples: list[Load] = []
        self.start = monitor.sample()  # the stretch starts now
        self.last = self.start

    def so_far(self) -> Load:
        """Sample now; the load since the start, weighted by each sample's interval."""
        self.samples.append(self.monitor.sample())
        seconds = sum(s.seconds for s in self.samples) or 1e-6
        last = self.samples[-1]

        def mean(attr: str) -> float:
            return float(sum(getattr(s, attr) * s.seconds for s in self.samples) / seconds)

        top = max(self.samples, key=lambda s: s.other_cores).top
        self.last = Load(
            mean("other_cores"), mean("steal"), last.load_avg, seconds, top,
            last.cores, last.threads,
        )  # fmt: skip
        return self.last


class LoadMonitor:
    """Measures other programs' CPU use between two calls of :meth:`sample`."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, threads: int | None = None
    ) -> None:
        self.clock = clock
        self.root = psutil.Process()
        # judged in physical cores: ORT's default intra-op pool is one thread per physical core,
        # and a program on the sibling hyperthread of one of them competes with it
        self.cores = psutil.cpu_count(logical=False) or psutil.cpu_count() or 1
        self.threads = threads or self.cores
        self._tree_cpu = _TreeCpu(self.root)
        self._last = self._snapshot()

    def _snapshot(self) -> tuple[float, float, float, float]:
        busy, steal = _machine_cpu()
        return self.clock(), busy, steal, self._tree_cpu()

    def sample(self) -> Load:
        """Load since the previous sample (or since the monitor was made)."""
        then, busy0, steal0, own0 = self._last
        now, busy1, steal1, own1 = self._last = self._snapshot()
        seconds = max(now - then, 1e-6)
        other = max(0.0, (busy1 - busy0) - (own1 - own0)) / seconds
        try:
            load_avg = psutil.getloadavg()[0]
        except (OSError, AttributeError):
            load_avg = 0.0
        return Load(
            other_cores=other,
            steal=max(0.0, steal1 - steal0) / seconds,
            load_avg=load_avg,
            seconds=seconds,
            cores=self.cores,
            threads=self.threads,
        )

    def measure(self, seconds: float = 1.0) -> Load:
        """Sample over the next ``seconds`` (naming the busiest other process when busy)."""
        self.sample()
        others = _other_processes(self.root)
        for p in others:
            try:
                p.cpu_percent(None)
            except psutil.Error:
                continue
        time.sleep(seconds)
        load = self.sample()
        if not load.loaded:
            return load
        top = ""
        best = 0.0
        for p in others:
            try:
                share = p.cpu_percent(None) / 100.0
                if share > best:
                    best, top = share, f"{p.name()} (pid {p.pid}) {share:.2f} cores"
            except psutil.Error:
                continue
        return dataclasses.replace(load, top=top)

    def wait_for_quiet(
        self, max_wait: float, on_wait: Callable[[Load, float], None] | None = None
    ) -> Load:
        """Measure; while busy, keep measuring up to ``max_wait`` seconds in all. Returns the
        last measurement (busy if the machine never became quiet)."""
        deadline = time.monotonic() + max_wait
        # the interval since the last sample when it is long enough (the trials just measured):
        # no waiting at all on a quiet machine
        since = self.clock() - self._last[0]
        load = self.sample() if since >= 0.5 else self.measure(0.5 - since)
        if load.busy and not load.top:
            load = self.measure(0.5)  # name the busiest program
        while load.busy and time.monotonic() < deadline:
            if on_wait is not None:
                on_wait(load, deadline - time.monotonic())
            load = self.measure(min(2.0, max(deadline - time.monotonic(), 0.5)))
        return load


def _other_processes(root: psutil.Process) -> list[psutil.Process]:
    mine = {root.pid}
    with contextlib.suppress(psutil.Error):
        mine |= {c.pid for c in root.children(recursive=True)}
    return [p for p in psutil.process_iter() if p.pid not in mine and p.pid != 0]
