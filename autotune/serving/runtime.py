"""The run-time API for serving: the arrangement a throughput search picked, built.

    >>> pool = autotune.best_serving("model.onnx", concurrency=4)
    >>> pool.run(None, feeds)          # from up to 4 threads at once
    >>> pool.arrangement.label()       # e.g. "4 sessions, CPU ALL t1"
    >>> session, how = best_start("model.onnx")   # the cold-start pick, from its cache

Never imports optuna (``tests/test_imports.py``).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from autotune.config import DEFAULT_CONFIG
from autotune.errors import AutotuneError, ConfigError
from autotune.serving.arrangement import Arrangement, baseline
from autotune.serving.pool import ServingPool
from autotune.serving.results import THROUGHPUT, latest_verdict

log = logging.getLogger("autotune")


def best_arrangement(
    path: str | os.PathLike[str],
    *,
    concurrency: int,
    arrival: str = "closed",
    db: str | None = None,
) -> tuple[Arrangement, str | None]:
    """The stored pick for ``concurrency`` requests in flight, or the baseline (one shared
    session with ORT's defaults), and why the baseline when it is (None: it was picked or won).
    Raises ConfigError for a concurrency below 1."""
    if concurrency < 1:
        raise ConfigError(f"concurrency must be at least 1, not {concurrency}")
    record = latest_verdict(
        path, objective=THROUGHPUT, concurrency=concurrency, arrival=arrival, db=db
    )
    if record is None:
        return baseline(concurrency), "no throughput search at this concurrency is stored"
    if record.pick is None:
        return baseline(concurrency), f"the stored search was {record.outcome}"
    try:
        return Arrangement.from_json(record.pick), None
    except AutotuneError as exc:
        return baseline(concurrency), f"the stored pick cannot be used here ({exc})"


def best_serving(
    path: str | os.PathLike[str],
    *,
    concurrency: int,
    arrival: str = "closed",
    db: str | None = None,
) -> ServingPool:
    """A :class:`~autotune.serving.pool.ServingPool` of the best stored arrangement for
    ``concurrency`` requests in flight (one shared session, N sessions, N sessions on a global
    pool, or N processes): call ``run(output_names, feeds)`` from up to ``concurrency`` threads;
    ``close()`` it (or use ``with``) to end serving processes. Without a stored pick, one shared
    session with ORT's defaults (logged). Raises what building the sessions raises."""
    arrangement, why = best_arrangement(path, concurrency=concurrency, arrival=arrival, db=db)
    if why:
        log.warning("autotune: %s; serving with %s", why, arrangement.label())
    return ServingPool(path, arrangement)


def best_start(
    path: str | os.PathLike[str], *, db: str | None = None, cache_root: Path | None = None
) -> tuple[Any, str]:
    """A session from the stored cold-start pick for this model here, and how it started:
    "cached" (loaded from ORT's optimized model in autotune's cache), "first" (built and the
    cache filled), or "none" (no cache: the pick, or ORT's defaults when nothing usable is
    stored). The cache lives under ``cache_root`` (default: autotune's cache directory); a
    stale entry is rebuilt, never loaded."""
    from autotune.digest import model_digest
    from autotune.paths import cache_dir
    from autotune.serving.coldstart import StartChoice, start_session
    from autotune.serving.results import COLDSTART

    record = latest_verdict(path, objective=COLDSTART, db=db)
    choice = StartChoice(DEFAULT_CONFIG)
    if record is not None and record.pick is not None:
        try:
            choice = StartChoice.from_dict(json.loads(record.pick))
        except (AutotuneError, ValueError) as exc:
            log.warning("autotune: the stored cold-start pick cannot be used here (%s)", exc)
    root = cache_root or cache_dir() / "coldstart"
    return start_session(str(path), choice, model_digest(path), root)
