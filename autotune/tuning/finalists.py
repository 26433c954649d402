"""The search's last step: ORT's defaults and the best few trials re-measured head to head in
fresh processes (the winner's curse of the best single trial), judged by
``autotune.measure.verdict``; for ``--objective load|memory|balanced``, the best on that
objective. The search holds the state; this reads it through :class:`FinalsHost`."""

from __future__ import annotations

import typing
from typing import Any

from autotune.config import DEFAULT_CONFIG, SessionConfig
from autotune.errors import AutotuneError
from autotune.measure.accuracy import stored_tier, tier_for
from autotune.measure.generations import HeadToHead, HeadToHeadProgress
from autotune.measure.load import LoadSource
from autotune.measure.manager import Measurer, WorkerLost
from autotune.measure.verdict import DEFAULT, INCONCLUSIVE, PICK, Verdict, decide
from autotune.providers import validate_config
from autotune.store.records import Status, TrialRecord
from autotune.tuning import head_to_head, objectives
from autotune.tuning.options import Event, EventKind, Progress, SearchOptions


class FinalsHost(typing.Protocol):
    """What the head-to-head step needs of the search."""

    options: SearchOptions
    known: dict[str, TrialRecord]
    monitor: LoadSource
    busy: dict[str, Any]
    emit: Progress

    def _stored_trials(self, own: bool = False) -> list[TrialRecord]: ...
    def _elapsed(self) -> float: ...
    def _generations(self) -> int: ...
    def _check_load(self, stage: str, before: str) -> None: ...
    def _manager(self) -> Measurer: ...
    def _drop_manager(self) -> None: ...
    def _deadline(self) -> float | None: ...
    def _h2h_progress(self, p: HeadToHeadProgress) -> None: ...


def head_to_head_of(search: FinalsHost) -> tuple[Verdict, list[dict[str, Any]]]:
    """Head-to-head of the default and the best few in fresh processes (the winner's curse),
    judged by ``autotune.measure.verdict``: the A/A control can veto, a pick must clear the
    margin with confidence."""
    for row in search._stored_trials():  # other searches of a shared study, too
        if row.config_id is not None:
            search.known.setdefault(row.config_id, row)
    ok = [r for r in search.known.values() if r.status == Status.OK and r.ratio is not None]
    objective = search.options.objective
    if objective == "latency":
        ok.sort(key=lambda r: r.ratio or 0.0)
    else:
        ok = objectives.choose(ok, objective, search.known.get(DEFAULT_CONFIG.config_id))
    contenders = [DEFAULT_CONFIG]
    for row in ok:
        if len(contenders) > search.options.top_k:
            break
        try:
            cfg = SessionConfig.from_json(row.config or "")
            validate_config(cfg)
        except AutotuneError:
            continue
        if cfg.config_id != DEFAULT_CONFIG.config_id:
            contenders.append(cfg)
    protocol = search.options.protocol
    search.emit(
        Event(
            EventKind.FINAL,
            elapsed=search._elapsed(),
            message=f"head-to-head: ORT's defaults and {len(contenders) - 1} candidates, "
            f"each in {search._generations()} fresh processes",
        )
    )
    search._check_load("head_to_head", before="the head-to-head")
    try:
        result = head_to_head.run(
            search._manager(),
            contenders,
            head_to_head.Plan(
                min_gain=search.options.min_gain,
                rounds=protocol.final_rounds,
                generations=search._generations(),
                timeout=search.options.trial_timeout * len(contenders),
                deadline=search._deadline(),
                max_generations=protocol.max_generations,
                extra_seconds=protocol.extra_seconds,
            ),
            monitor=search.monitor,
            on_round=search._h2h_progress,
        )
        verdict = result.verdict
        search.busy["head_to_head"] = result.load.to_dict()
    except WorkerLost:
        search._drop_manager()
        empty = HeadToHead(contenders=len(contenders), target_rounds=0, complete=False)
        verdict = decide(
            empty.rounds,
            contenders=len(contenders),
            min_gain=search.options.min_gain,
            complete=False,
        )
    compared = [
        {**head_to_head.entry_figures(cfg, entry), **_stored_figures(search, cfg)}
        for cfg, entry in zip(contenders, verdict.entries, strict=True)
    ]
    if objective != "latency" and verdict.outcome != INCONCLUSIVE:
        verdict = _objective_verdict(search, verdict, compared)
    return verdict, compared


def _stored_figures(search: FinalsHost, cfg: SessionConfig) -> dict[str, Any]:
    """What the search measured of a head-to-head contender, beside its verdict figures."""
    stored = search.known.get(cfg.config_id) or TrialRecord()
    return {
        "search_speedup": 1 / stored.ratio if stored.ratio else None,
        "session_create_ms": stored.session_create_ms,
        "first_run_ms": stored.first_run_ms,
        # what each launch pays (from the compile cache), the cold compile beside it
        "load_ms": objectives.load_ms(stored),
        "cold_load_ms": stored.load_ms,
        "session_rss_mb": stored.session_rss_mb,
        "accuracy": stored_tier(stored),
        "accuracy_why": tier_for(cfg, search.options.protocol.accuracy, stored.placement)[1],
    }


def _objective_verdict(
    search: FinalsHost, verdict: Verdict, compared: list[dict[str, Any]]
) -> Verdict:
    """For --objective load, memory or balanced: the best on that objective is picked if it
    beats ORT's defaults there by the margin (its latency is in the table beside it)."""
    objective = search.options.objective
    verdict.outcome, verdict.pick_index = DEFAULT, 0
    verdict.reason = f"no candidate beat ORT's defaults on {objective} by the margin"
    if len(compared) > 1:
        best = search.known.get(compared[1]["config_id"]) or TrialRecord()
        value = objectives.score(best, objective, search.known.get(DEFAULT_CONFIG.config_id))
        if value is not None and value <= 1 - search.options.min_gain:
            verdict.outcome, verdict.pick_index = PICK, 1
            verdict.reason = f"the best on {objective}: {1 / value:.2f}× better there"
    return verdict


# -- time and load -------------------------------------------------------------------
