"""What a search is asked (``SearchOptions``), what it reports while it runs (``Event``) and
what it concludes (``SearchResult``): plain data, shared by the search's parts and its callers."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from autotune import defaults
from autotune.config import SessionConfig
from autotune.measure.load import LoadMonitor, LoadSource
from autotune.measure.manager import Measurer, Protocol, WorkerSetup, WorkerTarget
from autotune.measure.worker import worker_main
from autotune.providers import SearchContext
from autotune.store.database import ResultKey


@dataclass
class SearchOptions:
    trials: int = defaults.TRIALS
    timeout: float | None = None  # seconds for the whole search, head-to-head included
    trial_timeout: float = defaults.TRIAL_TIMEOUT_S  # then the trial is killed: "timeout"
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    inputs: str | None = None
    db: str | None = None
    protocol: Protocol = field(default_factory=Protocol)
    top_k: int = 3  # candidates re-measured head to head with the default
    min_gain: float = defaults.MIN_GAIN  # a candidate must beat the default by this to be picked
    objective: str = defaults.OBJECTIVE  # or load, memory, balanced (autotune.tuning.objectives)
    providers: tuple[str, ...] | None = None  # only these providers (default: all available)
    seed: int | None = None
    patience: int | None = defaults.PATIENCE  # stop after this many trials without 1% better
    seed_variants: bool = True  # start with the default's one-knob variants
    storage: str | None = None  # shared Optuna storage: an RDB URL or journal:/path/to/file
    allow_busy: bool = field(default_factory=lambda: os.environ.get("AUTOTUNE_ALLOW_BUSY") == "1")
    busy_wait: float = 60.0  # seconds to wait for other programs to quiet down before stopping
    # run the finalists this long after the head-to-head (autotune.serving.sustained)
    sustained: float | None = field(
        default_factory=lambda: float(os.environ.get("AUTOTUNE_SUSTAINED") or 0) or None
    )
    # ... each run's shape drawn from these ranges (input -> (low, high) per dimension); None:
    # the searched shape (``--sustained-shape``, checked by the command line)
    sustained_shapes: dict[str, Any] | None = field(
        default_factory=lambda: json.loads(os.environ.get("AUTOTUNE_SUSTAINED_SHAPES") or "null")
    )
    worker_target: WorkerTarget = worker_main  # tests inject faults here (crash, hang)
    # what measures: real processes (Manager), or a deterministic stand-in in tests
    measurer: Callable[[WorkerSetup, WorkerTarget], Measurer] | None = None
    monitor: Callable[[], LoadSource] = LoadMonitor  # what other programs use meanwhile


class SearchSpace(NamedTuple):
    """What this search draws configurations from."""

    context: SearchContext  # the machine and model facts the spaces read
    providers: list[Any]  # the provider spaces available here (ProviderSpace, PluginSpace)
    levels: list[str]  # the graph optimization levels this ORT has
    policies: tuple[str, ...]  # device selection policies (ORT >= 1.22), else ()


class EventKind(StrEnum):
    """What a progress event reports."""

    PLAN = "plan"  # the providers and options to search (one or more lines)
    START = "start"  # trials to measure
    TRIAL = "trial"  # one trial measured
    BUSY = "busy"  # other programs' load: waiting for quiet, or going on marked
    FINAL = "final"  # the head-to-head begins
    FINAL_ROUND = "final_round"  # a head-to-head round kept or dropped
    DONE = "done"


@dataclass
class Event:
    """Progress of a search, for a progress bar."""

    kind: EventKind
    done: int = 0
    total: int = 0
    elapsed: float = 0.0
    best_ratio: float | None = None
    best_label: str | None = None
    message: str = ""
    load_cores: float | None = None  # CPU other programs used meanwhile, when that was a lot


@dataclass
class SearchResult:
    """What a search concluded. ``outcome`` is pick (``pick`` beat ORT's defaults), default
    (nothing did) or inconclusive (the machine could not resolve the margin: ``pick`` is None and
    nothing new reaches apps)."""

    search_id: str
    key: ResultKey
    model_name: str
    outcome: str
    reason: str
    pick: SessionConfig | None
    speedup: float | None  # ORT default latency / the pick's: the verdict's estimate
    speedup_low: float | None  # its 95% interval
    speedup_high: float | None
    aa_spread: float | None  # how far fresh processes of ORT's defaults disagreed
    objective: str
    compared: list[dict[str, Any]]
    measured: int
    resumed: int
    failures: int
    rounds_kept: int
    rounds_dropped: int
    wall_s: float
    default_latency_ms: float | None
    busy: dict[str, Any] = field(default_factory=dict)
    stopped_early: str | None = None  # why the trial loop ended before --trials (patience…)
    # the verdict as stored: resolution, processes (generations), held, the load it ran under
    verdict: dict[str, Any] = field(default_factory=dict)

    @property
    def pick_ratio(self) -> float | None:
        """The pick's latency relative to ORT's defaults (lower is faster)."""
        return 1 / self.speedup if self.speedup else None


Progress = Callable[[Event], None]

IMPROVEMENT = 0.01  # a trial improves on the best when it is this much faster
DEAD_DIMENSION = 0.015  # a one-knob change within this of the default does nothing measurable
