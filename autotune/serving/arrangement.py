"""How N requests in flight are served: the arrangement and its per-session configuration.

``shared``       one session, N threads calling it (ORT's ``run`` is thread-safe)
``split``        N sessions, each with its own intra-op pool (the configuration's threads)
``global_pool``  N sessions without pools of their own, on one process-wide pool
                 (``use_per_session_threads = False``; ``set_global_thread_pool_sizes``)
``processes``    N processes with one session each, requests sent over a pipe

Standard library only (the run-time path reads it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from autotune.config import DEFAULT_CONFIG, SessionConfig
from autotune.errors import ConfigError

SHARED = "shared"
SPLIT = "split"
GLOBAL_POOL = "global_pool"
PROCESSES = "processes"
KINDS = (SHARED, SPLIT, GLOBAL_POOL, PROCESSES)


@dataclass(frozen=True)
class Arrangement:
    """``kind`` serving ``concurrency`` requests in flight, each session built from ``config``
    (for ``global_pool``: ``pool_threads`` is the global pool's intra-op size, 0 for ORT's
    default, and the config's own thread counts are unused)."""

    kind: str
    concurrency: int
    config: SessionConfig = DEFAULT_CONFIG
    pool_threads: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown arrangement {self.kind!r}; one of {', '.join(KINDS)}")
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, not {self.concurrency}")

    @property
    def sessions(self) -> int:
        """How many sessions (or processes) serve the requests."""
        return 1 if self.kind == SHARED else self.concurrency

    @property
    def is_baseline(self) -> bool:
        """One shared session with ORT's defaults: what every verdict is judged against."""
        return self.kind == SHARED and self.config.is_default()

    def label(self) -> str:
        what = {
            SHARED: "1 shared session",
            SPLIT: f"{self.concurrency} sessions",
            GLOBAL_POOL: f"{self.concurrency} sessions on a global pool of "
            + (str(self.pool_threads) if self.pool_threads else "default")
            + " threads",
            PROCESSES: f"{self.concurrency} processes",
        }[self.kind]
        return f"{what}, {self.config.describe()}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "concurrency": self.concurrency,
            "config": self.config.to_dict(),
            "pool_threads": self.pool_threads,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> Arrangement:
        """Raises ConfigError for anything but an arrangement's dict."""
        if not isinstance(data, dict):
            raise ConfigError("an arrangement is a JSON object")
        kind, concurrency, threads = (
            data.get("kind"),
            data.get("concurrency"),
            data.get("pool_threads", 0),
        )
        if not isinstance(kind, str) or not isinstance(concurrency, int):
            raise ConfigError("an arrangement needs a kind and a concurrency")
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
            raise ConfigError("an arrangement's pool_threads is a whole number from 0")
        return cls(kind, concurrency, SessionConfig.from_dict(data.get("config", {})), threads)

    @classmethod
    def from_json(cls, text: str) -> Arrangement:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"an arrangement is not JSON ({exc})") from None
        return cls.from_dict(data)


def baseline(concurrency: int) -> Arrangement:
    """One shared session with ORT's defaults."""
    return Arrangement(SHARED, concurrency)
