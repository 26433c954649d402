"""Adapt borrowed results to this device: a short head-to-head, stored as a local verdict.

On a chip with no result of its own, ``best_config`` borrows a sibling chip's (the fallback
ladder, :mod:`autotune.ladder`). :func:`adapt` checks that borrowing here: the few best borrowed
candidates (thread counts re-derived for this chip) race ORT's default configuration with the
search's own isolated, paired protocol (every session in its own process, interleaved rounds,
the idle process frozen, burst guard: ``autotune.tuning.head_to_head``), within a time budget.
The verdict is the search's (``autotune.measure.verdict``): a candidate is picked only if its
interval, which holds the spread between processes, clears the margin (``min_gain``), widened
by the load's measured effect when other programs use the CPU (a thread-setting candidate is
held then); an inconclusive race stores nothing. A verdict is stored in the writable database
layer under this chip's own id, so the next ``best_session`` uses a result measured on this
device, and ``adapt`` has nothing to do.

``best_session(path, adapt="background")`` starts ``autotune adapt`` in a separate, low-priority
process and returns at once; the app never waits for it. Never imports optuna.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from autotune.background import DEFAULT_BUDGET_S, DEFAULT_MIN_GAIN, start_background
from autotune.chip import current_chip, current_descriptor, provenance
from autotune.config import DEFAULT_CONFIG, SessionConfig
from autotune.figures import speedup_text
from autotune.ladder import roles_of
from autotune.measure.manager import Manager, Protocol, WorkerLost, WorkerSetup
from autotune.measure.verdict import INCONCLUSIVE, Verdict
from autotune.store.records import SearchRecord, SearchState, Status, TrialRecord
from autotune.tuning import head_to_head
from autotune.tuning.lock import ModelLock

__all__ = ["DEFAULT_BUDGET_S", "AdaptResult", "adapt", "lower_priority", "start_background"]
DEFAULT_TOP = 3


@dataclass
class AdaptResult:
    """What :func:`adapt` did. ``status``: ``adapted`` (a verdict was stored), ``exact`` (this
    chip already has its own result: nothing to do), ``nothing`` (no borrowable result), or
    ``failed`` (nothing measured well enough within the budget; nothing stored, so the next
    launch may try again)."""

    status: str
    chip: str
    pick: SessionConfig | None = None
    pick_ratio: float | None = None  # latency relative to ORT's default, measured here
    borrowed_from: list[str] = field(default_factory=list)
    compared: list[dict[str, Any]] = field(default_factory=list)
    rounds: int = 0
    wall_s: float = 0.0
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "chip": self.chip,
            "pick": self.pick.to_dict() if self.pick else None,
            "pick_label": self.pick.describe() if self.pick else None,
            "pick_ratio": self.pick_ratio,
            "borrowed_from": self.borrowed_from,
            "compared": self.compared,
            "rounds": self.rounds,
            "wall_s": self.wall_s,
            "message": self.message,
        }


def adapt(
    model_path: str | os.PathLike[str],
    *,
    shapes: dict[str, tuple[int, ...]] | None = None,
    db: str | None = None,
    budget_s: float = DEFAULT_BUDGET_S,
    top: int = DEFAULT_TOP,
    min_gain: float = DEFAULT_MIN_GAIN,
    protocol: Protocol | None = None,
) -> AdaptResult:
    """Race the best borrowed candidates against ORT's defaults here; store the verdict.

    Raises ModelError/ShapeError for a bad model or shapes, DatabaseError for a bad database,
    SearchError if a search or another adapt of this model is running here."""
    from autotune.model import load_model_info, resolve_shapes, synthetic_feeds

    started = time.monotonic()
    chip = current_chip()
    info = load_model_info(model_path)
    resolved = resolve_shapes(info, shapes)
    exact, borrowed = _borrowed_choices(info, resolved if shapes else None, db, top)
    if exact is not None:
        return AdaptResult(
            "exact",
            chip.chip_id,
            pick=exact.config,
            pick_ratio=exact.ratio,
            wall_s=time.monotonic() - started,
            message=f"{chip.chip_id} already has its own result ({exact.source})",
        )
    if not borrowed:
        return AdaptResult(
            "nothing",
            chip.chip_id,
            wall_s=time.monotonic() - started,
            message="no result of a sibling chip to adapt; run: autotune search "
            + os.fspath(model_path),
        )
    contenders = [DEFAULT_CONFIG] + [b.config for b in borrowed]
    base = protocol or Protocol()
    plan = head_to_head.Plan(
        min_gain=min_gain,
        rounds=base.final_rounds,
        generations=max(2, min(base.generations, 3)),
        timeout=max(10.0, budget_s),
        deadline=started + budget_s,
        max_generations=base.max_generations,
        extra_seconds=0.0,  # within the budget: the deadline bounds it
    )
    raced = _race(info, synthetic_feeds(info, resolved), contenders, plan, base)
    if isinstance(raced, str):
        return _failed(chip.chip_id, started, raced)
    result, floor_ms = raced
    verdict = result.verdict
    if verdict.outcome == INCONCLUSIVE or verdict.pick_index is None:
        # same rule as the search: no verdict, nothing stored; the borrowed choice stays
        within = "" if result.measured.complete else f" within the {budget_s:g} s budget"
        return _failed(chip.chip_id, started, f"inconclusive here{within}: {verdict.reason}")
    return _adapted(db, info, resolved, shapes, borrowed, contenders, result, floor_ms, started)


def _adapted(
    db: str | None,
    info: Any,
    resolved: dict[str, tuple[int, ...]],
    shapes: dict[str, tuple[int, ...]] | None,
    borrowed: list[Any],
    contenders: list[SessionConfig],
    result: head_to_head.HeadToHeadResult,
    floor_ms: float,
    started: float,
) -> AdaptResult:
    """Store a decided race (its trials and a finished search, under this chip's own id) and
    say what it found."""
    from autotune.model import shape_signature

    chip, verdict, plan = current_chip(), result.verdict, result.plan
    assert verdict.pick_index is not None and plan is not None
    pick = contenders[verdict.pick_index]
    speedup = verdict.speedup or 1.0
    compared = [
        {
            **head_to_head.entry_figures(cfg, entry),
            "borrowed_from": None if i == 0 else borrowed[i - 1].key.chip,
            "rung": None if i == 0 else borrowed[i - 1].rung,
        }
        for i, (cfg, entry) in enumerate(zip(contenders, verdict.entries, strict=True))
    ]
    wall = time.monotonic() - started
    sources = sorted({b.key.chip for b in borrowed})
    _store_verdict(
        db,
        info,
        shape_signature(resolved),
        default_shapes=not shapes,
        compared=compared,
        contenders=contenders,
        verdict=verdict,
        sources=sources,
        wall=wall,
        floor_ms=floor_ms,
    )
    return AdaptResult(
        "adapted",
        chip.chip_id,
        pick=pick,
        pick_ratio=1 / speedup,
        borrowed_from=sources,
        compared=compared,
        rounds=verdict.rounds_kept,
        wall_s=wall,
        message=(
            f"{pick.describe()} beats ORT's defaults here: {speedup_text(speedup)}"
            if not pick.is_default()
            else f"no borrowed candidate beat ORT's defaults here by {plan.min_gain:.0%}"
        ),
    )


def _borrowed_choices(
    info: Any, shapes: dict[str, tuple[int, ...]] | None, db: str | None, top: int
) -> tuple[Any, list[Any]]:
    """(this chip's own choice, if it has one; else None, and the best ``top`` borrowed
    configurations that are not ORT's defaults, in the lookup's order)."""
    from autotune.resolver import candidates

    borrowed: list[Any] = []
    for choice in candidates(info.path, shapes=shapes, db=db):
        if not choice.borrowed:
            return choice, []
        if not choice.config.is_default() and choice.config not in [b.config for b in borrowed]:
            borrowed.append(choice)
        if len(borrowed) >= top:
            break
    return None, borrowed


def _race(
    info: Any,
    feeds: dict[str, Any],
    contenders: list[SessionConfig],
    plan: head_to_head.Plan,
    protocol: Protocol,
) -> tuple[head_to_head.HeadToHeadResult, float] | str:
    """The search's head-to-head of ``contenders`` here, bounded by the plan's deadline (fewer
    rounds per process are planned to fit, and it stops there with what it has): the result
    and the reference's floor, or why nothing could be measured."""
    lock = ModelLock(info.digest)
    root = tempfile.mkdtemp(prefix="autotune-adapt-")
    budget = (plan.deadline or time.monotonic()) - time.monotonic()
    try:
        setup = WorkerSetup(
            model_path=str(info.path), feeds=feeds, protocol=protocol, cache_root=root
        )
        try:
            manager = Manager(setup, startup_timeout=max(30.0, budget))
        except WorkerLost as exc:
            return f"the default cannot be measured here ({exc})"
        try:
            return head_to_head.run(manager, contenders, plan), manager.floor_ms
        except (WorkerLost, OSError) as exc:  # OSError: a pipe to a lost process
            return f"the head-to-head stopped: a process was lost ({exc})"
        finally:
            manager.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
        lock.release()


def _failed(chip_id: str, started: float, message: str) -> AdaptResult:
    """Nothing could be measured: nothing is stored (the next launch may try again)."""
    return AdaptResult("failed", chip_id, wall_s=time.monotonic() - started, message=message)


def _store_verdict(
    db: str | None,
    info: Any,
    signature: str,
    *,
    default_shapes: bool,
    compared: list[dict[str, Any]],
    contenders: list[SessionConfig],
    verdict: Verdict,
    sources: list[str],
    wall: float,
    floor_ms: float | None,
) -> None:
    """One trial row per configuration raced and one finished search row, under this chip's
    own id, in the writable layer: what ``best_config`` reads as an exact result."""
    from autotune.store.database import Store, now
    from autotune.version import __version__

    chip, desc, prov = current_chip(), current_descriptor(), provenance()
    search_id = "adapt-" + uuid.uuid4().hex
    common = {
        "search_id": search_id,
        "model_digest": info.digest,
        "model_name": info.path.name,
        "chip": chip.chip_id,
        "chip_descriptor": desc.to_json(),
        "ort_version": chip.ort_version,
        "shapes": signature,
        "default_shapes": int(default_shapes),
        "autotune_version": __version__,
        **{k: prov[k] for k in ("host", "host_id", "user", "os")},
    }
    with Store.open(db, write=True) as store:
        for cfg, entry in zip(contenders, compared, strict=True):
            if entry["ratio"] is None:
                continue
            store.record_trial(
                TrialRecord(
                    **common,
                    trial_uid=uuid.uuid4().hex,
                    trial_number=len(compared),
                    config_id=cfg.config_id,
                    config=cfg.to_json(),
                    provider=cfg.primary_provider,
                    label=cfg.describe(),
                    status=Status.OK,
                    ratio=entry["ratio"],
                    rounds_kept=verdict.rounds_kept,
                    rounds_dropped=verdict.rounds_dropped,
                    latency_ms_p50=entry["latency_ms_p50"],
                    floor_ms=floor_ms,
                    thread_roles=json.dumps(roles_of(cfg, desc)),
                    created_at=now(),
                    ort_build=list(chip.providers),
                )
            )
        store.upsert_search(
            SearchRecord(
                **common,
                state=SearchState.DONE,
                started_at=now(),
                finished_at=now(),
                trials_requested=len(contenders),
                trials_measured=len(contenders),
                objective="latency",
                **head_to_head.verdict_columns(
                    verdict, compared, kind="adapt", adapted_from=sources
                ),
                wall_s=wall,
            )
        )


def lower_priority(nice: int) -> None:
    """Run this process (and the measuring processes it spawns) at a lower priority."""
    if nice > 0 and hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(nice)
