"""Crafted rows for tests that need a stored result without running a search: one finished
search whose verdict picked ``config``, and the trial that measured it. Each test overrides what
it is about (the chip, the ORT version, the outcome, a future timestamp…)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autotune.config import SessionConfig
from autotune.store.database import Store
from autotune.store.records import SearchRecord, TrialRecord


def store_finished_search(
    model: Path,
    config: SessionConfig,
    *,
    db: str | None = None,
    search_id: str | None = None,
    ratio: float = 0.8,
    common: dict[str, Any] | None = None,
    search: dict[str, Any] | None = None,
    trial: dict[str, Any] | None = None,
) -> None:
    """Write a finished search of ``model`` on this chip (``common`` overrides the key: chip,
    ort_version, shapes…) whose verdict is ``config`` at ``ratio``, and its trial."""
    from autotune.chip import current_chip
    from autotune.digest import model_digest

    chip = current_chip()
    key = {
        "model_digest": model_digest(model),
        "model_name": model.name,
        "chip": chip.chip_id,
        "ort_version": chip.ort_version,
        "shapes": "x=1x16",
        "default_shapes": 1,
        **(common or {}),
    }
    ident = search_id or config.config_id + str(key["ort_version"]) + str(key["chip"])
    with Store.open(db, write=True) as store:
        store.upsert_search(
            SearchRecord.from_row(
                {
                    **key,
                    "search_id": ident,
                    "state": "done",
                    "finished_at": "2026-11-23T00:00:00+00:00",
                    "pick_config": config.to_json(),
                    "pick_ratio": ratio,
                    **(search or {}),
                }
            )
        )
        store.record_trial(
            TrialRecord.from_row(
                {
                    **key,
                    "trial_uid": "t-" + ident,
                    "config_id": config.config_id,
                    "config": config.to_json(),
                    "status": "ok",
                    "ratio": ratio,
                    **(trial or {}),
                }
            )
        )
