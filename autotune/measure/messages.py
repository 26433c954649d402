"""What crosses the pipe between the search (``manager``) and a session process (``worker``):
small frozen dataclasses, pickled by ``multiprocessing`` (pyperf's manager/worker split).

parent -> worker: :class:`ProcessSetup` (at spawn), then :class:`RunBlock` any number of times,
then :class:`Stop`. worker -> parent: :class:`Built` or :class:`BuildFailed` once, then one
:class:`BlockTimes` per :class:`RunBlock`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProcessSetup:
    """What one session process builds."""

    model_path: str
    feeds: dict[str, Any]
    config: str
    cache_dir: str | None = None
    reference_outputs: bool = False  # also compute the CPU-EP fp32 reference outputs


@dataclass(frozen=True)
class Built:
    """The session is built: what building it cost, where its nodes went, its first outputs."""

    session_create_ms: float
    first_run_ms: float
    outputs: list[Any]
    placement: dict[str, Any]
    dropped: list[str] = field(default_factory=list)  # providers ORT dropped for CPU
    cached_session_create_ms: float | None = None  # built again from the compile cache
    session_rss_mb: float | None = None
    reference_outputs: list[Any] | None = None  # the CPU-EP fp32 outputs, when asked for


@dataclass(frozen=True)
class BuildFailed:
    """The session could not be built or run once: the error, in one line."""

    error: str


@dataclass(frozen=True)
class RunBlock:
    """Time ``runs`` runs (after one discarded run)."""

    runs: int


@dataclass(frozen=True)
class BlockTimes:
    """The block's run times, in milliseconds, and the process's peak RSS so far."""

    times_ms: list[float]
    peak_rss_mb: float


@dataclass(frozen=True)
class Stop:
    """Exit."""
