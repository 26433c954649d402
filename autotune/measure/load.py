"""How busy this machine is with other work, measured while a search runs.

A timing is only worth its paired comparison if nothing else competes for the cores in a way
that changes between processes. This module measures what other programs use: the CPU time of
the whole machine minus this process tree's (psutil's counters, on macOS and Linux alike),
the hypervisor's steal time where the OS reports it, and the load average. Imported by the
search only (psutil is not needed at run time).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import psutil

BUSY_CORES = 0.25  # other programs using more than this share of a core make the machine busy


@dataclass(frozen=True)
class Load:
    """What other programs used over one interval."""

    other_cores: float  # CPU used by processes outside this search, in cores (1.0 = one core)
    steal: float  # CPU time the hypervisor took, in cores (0 where the OS does not say)
    load_avg: float  # the 1-minute load average
    seconds: float  # the interval
    top: str = ""  # the busiest other process, e.g. "python (pid 123) 0.9 cores"

    @property
    def busy(self) -> bool:
        return self.other_cores + self.steal > BUSY_CORES

    def text(self) -> str:
        parts = [f"other programs use {self.other_cores:.2f} cores"]
        if self.steal > 0.05:
            parts.append(f"steal {self.steal:.2f} cores")
        if self.top:
            parts.append(f"busiest: {self.top}")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tree_cpu(root: psutil.Process) -> float:
    """CPU seconds used by this process, its live children and the children it has reaped."""
    total = 0.0
    try:
        t = root.cpu_times()
        total += t.user + t.system + t.children_user + t.children_system
        for child in root.children(recursive=True):
            try:
                c = child.cpu_times()
                total += c.user + c.system
            except psutil.Error:
                continue
    except psutil.Error:
        pass
    return total


def _machine_cpu() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, steal seconds) since boot."""
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    steal = getattr(t, "steal", 0.0)
    busy = sum(t) - idle - steal - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
    return busy, steal


class LoadMonitor:
    """Measures other programs' CPU use between two calls of :meth:`sample`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.root = psutil.Process()
        self._last = self._snapshot()

    def _snapshot(self) -> tuple[float, float, float, float]:
        busy, steal = _machine_cpu()
        return self.clock(), busy, steal, _tree_cpu(self.root)

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
        if not load.busy:
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
        return Load(load.other_cores, load.steal, load.load_avg, load.seconds, top)

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
