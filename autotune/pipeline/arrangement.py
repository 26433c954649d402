"""What is chosen for a pipeline: one SessionConfig per stage, and its threads either in one
pool per session (each stage's ``intra_op_num_threads``) or in one pool the whole process
shares (ORT's global thread pool, ``shared_threads`` intra-op threads, set once per process
before the first session)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from autotune.config import DEFAULT_CONFIG, SessionConfig
from autotune.errors import ConfigError


@dataclass(frozen=True)
class Arrangement:
    configs: tuple[SessionConfig, ...]  # in the pipeline's stage order
    shared_threads: int | None = None  # None: a pool per session

    def to_dict(self) -> dict[str, Any]:
        return {
            "stages": [c.to_dict() for c in self.configs],
            "shared_threads": self.shared_threads,
        }

    def to_json(self) -> str:
        """Canonical JSON: what crosses to a measuring process and what is stored."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def config_id(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @classmethod
    def from_json(cls, text: str, stages: int) -> Arrangement:
        """Parse a stored arrangement for a pipeline of ``stages`` stages; raises ConfigError."""
        try:
            data = json.loads(text)
            configs = tuple(SessionConfig.from_dict(c) for c in data["stages"])
            shared = data.get("shared_threads")
        except (ValueError, KeyError, TypeError):
            raise ConfigError("a stored pipeline arrangement is not readable JSON") from None
        if len(configs) != stages:
            raise ConfigError(
                f"a stored pipeline arrangement has {len(configs)} stages, the file {stages}"
            )
        if shared is not None and (not isinstance(shared, int) or not 1 <= shared <= 1024):
            raise ConfigError(f"a stored pipeline arrangement has a bad shared pool: {shared!r}")
        return cls(configs, shared)

    @classmethod
    def defaults(cls, stages: int) -> Arrangement:
        """ORT's defaults for every stage."""
        return cls((DEFAULT_CONFIG,) * stages)

    def describe(self, names: list[str] | tuple[str, ...]) -> str:
        """``enc: CPU ALL t1 | dec: CPU ALL t1`` (with ``shared pool t2``: the pool decides)."""
        if self.is_default():
            return "ORT defaults for every stage"
        text = " | ".join(f"{n}: {c.describe()}" for n, c in zip(names, self.configs, strict=True))
        if self.shared_threads is not None:
            text += f" (one shared pool of {self.shared_threads} threads)"
        return text

    def threads_differ(self, other: Arrangement) -> bool:
        """Whether the two differ in a thread setting (counts, spinning, the pool): such a
        pick is held when measured under load, as a single model's is."""
        if self.shared_threads != other.shared_threads:
            return True
        return any(
            _threads(a) != _threads(b) for a, b in zip(self.configs, other.configs, strict=True)
        )

    def is_default(self) -> bool:
        return self.shared_threads is None and all(c.is_default() for c in self.configs)


def _threads(config: SessionConfig) -> tuple[Any, ...]:
    c = config.canonical()
    spinning = {k: v for k, v in c.session_entries.items() if "spinning" in k}
    return c.intra_op_num_threads, c.inter_op_num_threads, c.execution_mode, spinning
