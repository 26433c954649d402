"""Serving verdicts to and from the store: what a throughput, cold-start or long-run search
decided, keyed by the model, the chip, the ORT version, the objective, the concurrency and the
arrival (``serving`` table, ``autotune.store.serving``). Standard library and the store only:
the run-time lookup (``autotune.best_serving``) reads it."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotune.store.database import Store, now
from autotune.store.records import ServingRecord
from autotune.store.serving import record_serving, serving_verdicts
from autotune.version import __version__

THROUGHPUT = "throughput"
COLDSTART = "coldstart"
SUSTAINED = "sustained"  # the finalists of a latency search, run for --sustained seconds
SOAK = "soak"  # ``autotune soak``: one configuration's long run
OBJECTIVES = (THROUGHPUT, COLDSTART, SUSTAINED, SOAK)


@dataclass(frozen=True)
class ServingKey:
    """What a serving verdict is valid for."""

    model_path: Path
    objective: str
    concurrency: int = 1
    arrival: str = "closed"
    qps: float | None = None
    shapes: str = ""


def _identity(path: Path) -> dict[str, Any]:
    from autotune.chip import current_chip
    from autotune.digest import model_digest
    from autotune.serving.coldstart import os_build

    chip = current_chip()
    return {
        "model_digest": model_digest(path),
        "model_name": path.name,
        "chip": chip.chip_id,
        "ort_version": chip.ort_version,
        "os_build": os_build(),
    }


def store_verdict(
    db: str | None,
    key: ServingKey,
    *,
    outcome: str,
    pick: str | None,
    pick_label: str | None,
    speedup: tuple[float | None, float | None, float | None] = (None, None, None),
    aa_spread: float | None = None,
    value: float | None = None,
    baseline_value: float | None = None,
    budget_ms: float | None = None,
    flags: dict[str, list[str]] | None = None,
    details: dict[str, Any] | None = None,
) -> ServingRecord:
    """Store one verdict in the personal database; returns the stored record."""
    record = ServingRecord(
        search_id=uuid.uuid4().hex,
        shapes=key.shapes,
        objective=key.objective,
        concurrency=key.concurrency,
        arrival=key.arrival,
        qps=key.qps,
        budget_ms=budget_ms,
        outcome=outcome,
        pick=pick,
        pick_label=pick_label,
        speedup=speedup[0],
        speedup_low=speedup[1],
        speedup_high=speedup[2],
        aa_spread=aa_spread,
        value=value,
        baseline_value=baseline_value,
        flags=flags or {},
        details=details or {},
        created_at=now(),
        autotune_version=__version__,
        **_identity(key.model_path),
    )
    with Store.open(db, write=True) as store:
        record_serving(store, record)
    return record


def latest_verdict(
    path: str | os.PathLike[str],
    *,
    objective: str | None,
    concurrency: int | None = None,
    arrival: str | None = None,
    db: str | None = None,
) -> ServingRecord | None:
    """The newest stored verdict of ``objective`` for this model on this chip and ORT version
    (the personal database first), or None."""
    found = verdicts(path, objective=objective, concurrency=concurrency, arrival=arrival, db=db)
    return found[0] if found else None


def verdicts(
    path: str | os.PathLike[str],
    *,
    objective: str | None = None,
    concurrency: int | None = None,
    arrival: str | None = None,
    db: str | None = None,
) -> list[ServingRecord]:
    """Stored verdicts for this model on this chip and ORT version, newest first (the
    personal database first); every objective when ``objective`` is None."""
    ident = _identity(Path(path))
    with Store.open(db, write=False) as store:
        return serving_verdicts(
            store,
            ident["model_digest"],
            ident["chip"],
            objective=objective,
            concurrency=concurrency,
            arrival=arrival,
            ort_version=ident["ort_version"],
        )
