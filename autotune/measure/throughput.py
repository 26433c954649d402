"""Throughput under concurrency: N client threads calling one request function, measured in
windows until the throughput and the p99 latency are stable over the last three windows.

Two loads. A *closed loop*: each of the N clients sends its next request as soon as its last one
returned (the most a server with N requests in flight can do). An *open loop*: requests arrive
at random (Poisson, ``qps`` per second) whatever the server does, N workers serve them, and a
request's latency runs from its arrival, so the time it waited in the queue counts (a server
that cannot keep up shows it in its p99 instead of hiding it by sending fewer requests).

No onnxruntime here: the caller hands in the request (``call(client)``), which runs one
inference on whatever arrangement of sessions is measured.
"""

from __future__ import annotations

import math
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from autotune.measure.stats import percentile

WINDOW_S = 0.5  # one window's length
STABLE_WINDOWS = 3  # the windows that must agree
STABLE_THROUGHPUT = 0.05  # their throughputs within 5% of each other (max/min - 1)
STABLE_P99 = 0.25  # their p99s within 25% (a tail of a few hundred requests is noisy)
MAX_WINDOWS = 12  # give up waiting for stability after this many windows (``stable``: False)


@dataclass(frozen=True)
class Window:
    """One window's completed requests."""

    requests: int
    seconds: float
    latency_ms_p50: float | None
    latency_ms_p99: float | None

    @property
    def throughput(self) -> float:
        """Requests completed per second."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Throughput:
    """A load's result: every window, and the figures of the last three (the stable ones when
    ``stable``)."""

    concurrency: int
    windows: list[Window]
    stable: bool
    throughput: float  # requests per second over the last windows
    latency_ms_p50: float | None
    latency_ms_p99: float | None
    arrival: str = "closed"  # closed, or poisson at ``qps``
    qps: float | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def per_request_ms(self) -> float:
        """The time per request at this throughput (1 / throughput): lower is better, a
        "latency" for the head-to-head's paired rule."""
        return 1000.0 / self.throughput if self.throughput > 0 else math.inf

    def to_dict(self) -> dict[str, object]:
        return {
            "concurrency": self.concurrency,
            "arrival": self.arrival,
            "qps": self.qps,
            "stable": self.stable,
            "throughput": self.throughput,
            "latency_ms_p50": self.latency_ms_p50,
            "latency_ms_p99": self.latency_ms_p99,
            "windows": [
                [w.requests, w.seconds, w.latency_ms_p50, w.latency_ms_p99] for w in self.windows
            ],
            "errors": self.errors,
        }


def is_stable(windows: list[Window]) -> bool:
    """The last three windows agree: throughput within STABLE_THROUGHPUT, p99 within
    STABLE_P99."""
    if len(windows) < STABLE_WINDOWS:
        return False
    last = windows[-STABLE_WINDOWS:]
    rates = [w.throughput for w in last]
    tails = [w.latency_ms_p99 for w in last]
    if min(rates) <= 0 or any(t is None for t in tails):
        return False
    spread_p99 = max(t or 0.0 for t in tails) / min(t or 0.0 for t in tails) - 1
    return max(rates) / min(rates) - 1 <= STABLE_THROUGHPUT and spread_p99 <= STABLE_P99


class _Completions:
    """(finish time, latency) of every completed request, appended by the client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done: list[tuple[float, float]] = []
        self.errors: list[str] = []

    def add(self, finished: float, latency_s: float) -> None:
        with self.lock:
            self.done.append((finished, latency_s))

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def since(self, start: float, end: float) -> list[float]:
        with self.lock:
            return [lat for t, lat in self.done if start <= t < end]


def _windows(
    completions: _Completions,
    stop: threading.Event,
    window_s: float,
    max_windows: int,
    min_windows: int,
) -> tuple[list[Window], bool]:
    windows: list[Window] = []
    start = time.perf_counter()
    while len(windows) < max_windows and not completions.errors:
        time.sleep(window_s)
        end = time.perf_counter()
        latencies = [x * 1000 for x in completions.since(start, end)]
        windows.append(
            Window(
                len(latencies), end - start, percentile(latencies, 50), percentile(latencies, 99)
            )
        )
        start = end
        if len(windows) >= min_windows and is_stable(windows):
            break
    stop.set()
    return windows, is_stable(windows)


def _summary(
    windows: list[Window], stable: bool, completions: _Completions, concurrency: int
) -> Throughput:
    last = windows[-STABLE_WINDOWS:]
    seconds = sum(w.seconds for w in last)
    requests = sum(w.requests for w in last)
    # the last windows' latencies, pooled: recomputed from the windows' own percentiles would
    # weight a short window like a long one
    begin = 0.0
    if completions.done:
        begin = sorted(t for t, _ in completions.done)[-requests] if requests else math.inf
    pooled = [lat * 1000 for t, lat in completions.done if t >= begin]
    return Throughput(
        concurrency=concurrency,
        windows=windows,
        stable=stable,
        throughput=requests / seconds if seconds > 0 else 0.0,
        latency_ms_p50=percentile(pooled, 50),
        latency_ms_p99=percentile(pooled, 99),
        errors=list(completions.errors),
    )


def closed_loop(
    call: Callable[[int], object],
    concurrency: int,
    *,
    window_s: float = WINDOW_S,
    max_windows: int = MAX_WINDOWS,
    min_windows: int = STABLE_WINDOWS,
) -> Throughput:
    """``concurrency`` clients, each calling ``call(client)`` again as soon as it returns,
    measured in windows until stable (or ``max_windows``). A request that raises stops the
    load; its error is in ``errors``."""
    completions, stop = _Completions(), threading.Event()

    def client(i: int) -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                call(i)
            except Exception as exc:  # noqa: BLE001 - the arrangement failed: reported, load stops
                completions.fail(exc)
                return
            t1 = time.perf_counter()
            completions.add(t1, t1 - t0)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    windows, stable = _windows(completions, stop, window_s, max_windows, min_windows)
    for t in threads:
        t.join()
    return _summary(windows, stable, completions, concurrency)


def open_loop(
    call: Callable[[int], object],
    concurrency: int,
    qps: float,
    *,
    window_s: float = WINDOW_S,
    max_windows: int = MAX_WINDOWS,
    min_windows: int = STABLE_WINDOWS,
    seed: int = 0,
) -> Throughput:
    """Requests arriving as a Poisson process of rate ``qps``, served by ``concurrency``
    workers; a request's latency counts from its arrival (queueing included)."""
    completions, stop = _Completions(), threading.Event()
    arrivals: queue.Queue[float | None] = queue.Queue()

    def arrive() -> None:
        rng = random.Random(seed)
        due = time.perf_counter()
        while not stop.is_set():
            due += rng.expovariate(qps)
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            arrivals.put(due)
        for _ in range(concurrency):
            arrivals.put(None)

    def worker(i: int) -> None:
        while True:
            arrived = arrivals.get()
            if arrived is None or stop.is_set():  # a backlog left at the end is not served
                return
            try:
                call(i)
            except Exception as exc:  # noqa: BLE001 - reported; the load stops
                completions.fail(exc)
                stop.set()
                return
            t1 = time.perf_counter()
            completions.add(t1, t1 - arrived)

    threads = [threading.Thread(target=arrive, daemon=True)]
    threads += [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    windows, stable = _windows(completions, stop, window_s, max_windows, min_windows)
    for t in threads:
        t.join(timeout=60)
    out = _summary(windows, stable, completions, concurrency)
    return Throughput(**{**out.__dict__, "arrival": "poisson", "qps": qps})
