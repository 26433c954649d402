"""Text tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from autotune import figures
from autotune.errors import printable as printable  # re-exported: the one sanitizer
from autotune.figures import ratio_text
from autotune.store.records import KeySummary, Outcome, SearchRecord, Status, TrialRecord

if TYPE_CHECKING:
    from autotune.store.sharing import Stats


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain aligned table; numbers right-aligned."""
    text = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    numeric = [
        all(isinstance(r[i], (int, float)) or r[i] is None for r in rows) if rows else False
        for i in range(len(headers))
    ]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(widths[i]) if numeric[i] else c.ljust(widths[i]) for i, c in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out += [line(r) for r in text]
    return "\n".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return printable(value, 200)


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 0.1:
        return f"{value * 1000:.1f} µs"
    return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"


def load_text(load_ms: float | None, cold_ms: float | None) -> str:
    """A load time, with the cold compile beside it when the compile cache made them differ."""
    if cold_ms is None or load_ms is None or abs(cold_ms - load_ms) < 0.5:
        return ms(load_ms)
    return f"{ms(load_ms)} (cold {ms(cold_ms)})"


def speedup(ratio: float | None) -> str:
    return ratio_text(ratio)


# -- what the commands print ----------------------------------------------------------------


def outcome_dict(outcome: Any) -> dict[str, Any]:
    return {
        "search_id": outcome.search_id,
        "model": outcome.model_name,
        "model_digest": outcome.key.model_digest,
        "chip": outcome.key.chip,
        "ort_version": outcome.key.ort_version,
        "shapes": outcome.key.shapes,
        "outcome": outcome.outcome,
        "reason": outcome.reason,
        "objective": outcome.objective,
        "pick": outcome.pick.to_dict() if outcome.pick else None,
        "pick_label": outcome.pick.describe() if outcome.pick else None,
        "pick_is_default": outcome.pick.is_default() if outcome.pick else None,
        "speedup": outcome.speedup,
        "speedup_low": outcome.speedup_low,
        "speedup_high": outcome.speedup_high,
        "aa_spread": outcome.aa_spread,
        "default_latency_ms_p50": outcome.default_latency_ms,
        "compared": outcome.compared,
        "trials_measured": outcome.measured,
        "trials_stored_before": outcome.resumed,
        "failures": outcome.failures,
        "stopped_early": outcome.stopped_early,
        "final_rounds_kept": outcome.rounds_kept,
        "final_rounds_dropped": outcome.rounds_dropped,
        "busy": outcome.busy,
        "verdict": outcome.verdict,
        "wall_s": outcome.wall_s,
    }


def speedup_text(value: float | None, low: float | None = None, high: float | None = None) -> str:
    """A speed-up (ORT's default latency / this one; higher is better), with its interval."""
    return figures.speedup_text(value, low, high)


_OBJECTIVE_COLUMN = {"load": ("load", "load_ms"), "memory": ("memory", "session_rss_mb")}


def outcome_text(outcome: Any) -> str:
    objective = outcome.objective
    rows = []
    for i, entry in enumerate(outcome.compared):
        processes = entry.get("process_speedups") or []
        label = entry["label"] + (" (ORT default)" if i == 0 else "")
        if outcome.pick is not None and entry["config_id"] == outcome.pick.config_id:
            label = "* " + label
        row = [
            label,
            ms(entry["latency_ms_p50"]),
            ms(entry["latency_ms_p90"]),
            speedup_text(entry.get("speedup"), entry.get("speedup_low"), entry.get("speedup_high")),
            f"{min(processes):.2f}–{max(processes):.2f}" if processes else "-",
            speedup_text(entry.get("search_speedup")),
            load_text(entry.get("load_ms"), entry.get("cold_load_ms")),
            entry.get("accuracy") or "-",
        ]
        if objective == "memory":
            mb = entry.get("session_rss_mb")
            row.append("-" if mb is None else f"{mb:.0f} MB")
        rows.append(row)
    headers = ["configuration", "p50", "p90", "speed-up [95%]", "per process", "in search"]
    headers += ["load", "accuracy"]
    if objective == "memory":
        headers.append("memory")
    early = f"; stopped early: {outcome.stopped_early}" if outcome.stopped_early else ""
    aa = f"{outcome.aa_spread:.1%}" if outcome.aa_spread is not None else "-"
    head = (
        f"{outcome.model_name} on {outcome.key.chip}, onnxruntime {outcome.key.ort_version}, "
        f"shapes {outcome.key.shapes}\n"
        f"{outcome.measured} trials measured ({outcome.resumed} stored before, "
        f"{outcome.failures} failed) in {outcome.wall_s:.0f} s{early}\n"
        f"head-to-head: {outcome.rounds_kept} rounds kept, {outcome.rounds_dropped} dropped as "
        f"bursts, {outcome.verdict.get('generations') or '-'} processes per configuration; "
        f"A/A spread of ORT's defaults across processes {aa}" + _busy_text(outcome.busy) + "\n\n"
    )
    return head + table(rows, headers) + "\n\n" + verdict_text(outcome) + _accuracy_text(outcome)


def _accuracy_text(outcome: Any) -> str:
    """The tier the pick's outputs were judged at, when it is not ORT's defaults."""
    if outcome.pick is None or outcome.pick.is_default():
        return ""
    picked = (e for e in outcome.compared if e["config_id"] == outcome.pick.config_id)
    entry: dict[str, Any] = next(picked, {})
    tier, why = entry.get("accuracy") or "fp32", entry.get("accuracy_why")
    if tier == "fp32":
        return " Its outputs match the CPU fp32 reference at the fp32 tier."
    because = f" (--accuracy auto: {why})" if why else ""
    return (
        f" Its outputs match the CPU fp32 reference at the {tier} tier{because}, not at fp32: "
        "see docs/accuracy.md."
    )


def _busy_text(busy: dict[str, Any]) -> str:
    """One line on the load, when others used the CPU (judged against this machine's cores)."""
    worst = max(
        [v.get("other_cores", 0.0) for v in busy.values() if isinstance(v, dict)]
        + [busy.get("trials_max_cores", 0.0)],
        default=0.0,
    )
    h2h = busy.get("head_to_head")
    level = h2h.get("level") if isinstance(h2h, dict) else None
    if level in (None, "quiet") and worst <= 0.25:
        return ""
    during = f"; the head-to-head ran under {level} load" if level else ""
    return f"\nother programs used up to {worst:.2f} cores meanwhile{during}"


def verdict_text(outcome: Any) -> str:
    """The one-paragraph conclusion of a search."""
    if outcome.outcome == "inconclusive":
        return (
            f"Inconclusive: {outcome.reason}. Nothing new reaches apps: best_session() keeps "
            "what it used before (or ORT's defaults). To decide it: run the same command again "
            "on a quieter machine (measured trials are kept), give it a longer --timeout, or "
            "ask only for gains this machine resolves (--min-gain)."
        )
    if outcome.pick is None or outcome.pick.is_default():
        return (
            f"ORT's default configuration stays: {outcome.reason}. Apps get it with "
            "autotune.best_session(path)."
        )
    if outcome.objective != "latency":
        entry = next(e for e in outcome.compared if e["config_id"] == outcome.pick.config_id)
        default = outcome.compared[0]
        name, column = _OBJECTIVE_COLUMN.get(outcome.objective, ("load", "load_ms"))
        unit = " MB" if column == "session_rss_mb" else " ms"
        mine, base = entry.get(column), default.get(column)
        gain = (
            f"{name} {mine:.0f}{unit} against {base:.0f}{unit} for ORT's defaults"
            if mine is not None and base is not None
            else outcome.reason
        )
        return (
            f"Picked for {outcome.objective}: {outcome.pick.describe()}, {gain}; its latency is "
            f"{speedup_text(entry.get('speedup'))} ORT's defaults' speed. Apps get it with "
            f'autotune.best_session(path, prefer="{outcome.objective}").'
        )
    return (
        f"Picked: {outcome.pick.describe()}, "
        f"{speedup_text(outcome.speedup, outcome.speedup_low, outcome.speedup_high)} the speed "
        "of ORT's defaults (95% interval, the spread between processes included). Apps get "
        "it with "
        "autotune.best_session(path)."
    )


def best_text(choice: Any) -> str:
    c = choice.config
    lines = [
        f"model:       {choice.key.model_digest[:16]}",
        f"chip:        {printable(choice.key.chip, 200)}",
        f"onnxruntime: {printable(choice.key.ort_version, 64)}"
        + (" (stale: another version)" if choice.stale else ""),
        f"shapes:      {printable(choice.key.shapes, 200)}",
        f"source:      {choice.source} ({printable(choice.measured_at, 64)})"
        + (f", database layer {choice.layer + 1}" if choice.layer else ""),
        *(
            [
                f"borrowed:    measured on {printable(choice.key.chip, 200)} "
                f"({choice.rung.replace('_', ' and ')})"
            ]
            if getattr(choice, "borrowed", False)
            else []
        ),
        f"speed-up:    {speedup(choice.ratio)} vs ORT defaults",
        f"accuracy:    {printable(tier_text(getattr(choice, 'accuracy', None)), 300)}",
        "",
        table(
            [[k, json_cell(v)] for k, v in c.to_dict().items()],
            ["setting", "value"],
        ),
    ]
    return "\n".join(lines)


def json_cell(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


def summary_text(rows: list[KeySummary]) -> str:
    if not rows:
        return "The database holds no results yet; run: autotune search MODEL.onnx"
    return table(
        [
            [
                r.model,
                r.model_digest[:12],
                r.chip,
                r.ort_version,
                r.shapes,
                r.trials,
                r.failed,
                _verdict_cell(r.outcome, r.pick, r.speedup),
                r.last,
            ]
            for r in rows
        ],
        ["model", "digest", "chip", "ort", "shapes", "trials", "failed", "verdict", "last"],
    )


def _verdict_cell(outcome: str | None, pick: str | None, speedup_value: float | None) -> str:
    if outcome is None:
        return "no verdict yet"
    if outcome == "inconclusive":
        return "inconclusive"
    if outcome == "default" or not speedup_value:
        return "ORT default"
    return f"{pick} {figures.speedup_text(speedup_value, digits=2)}"


_STATUS_ORDER: dict[str, int] = {Status.OK: 0, Status.PRUNED: 1}


def ordered_trials(rows: list[TrialRecord]) -> list[TrialRecord]:
    """Best first: measured by ratio, then pruned, then failures."""
    return sorted(
        rows,
        key=lambda r: (_STATUS_ORDER.get(r.status or "", 2), r.ratio or 9e9, r.id or 0),
    )


def placement_text(value: Any) -> str:
    """A record's decoded placement in a few words."""
    p = value if isinstance(value, dict) else {}
    if not p.get("available"):
        return "-"
    parts = []
    for ep, n in sorted(p.get("nodes", {}).items(), key=lambda kv: -kv[1]):
        short = ep.replace("ExecutionProvider", "")
        parts_n = p.get("partitions", {}).get(ep)
        parts.append(f"{short}:{n}" + (f"/{parts_n}p" if parts_n else ""))
    fallback = p.get("cpu_fallback_ops") or {}
    if fallback:
        parts.append("fallback " + ",".join(list(fallback)[:4]))
    return " ".join(parts)


def trials_text(
    rows: list[TrialRecord],
    model: str,
    search: SearchRecord | None = None,
    *,
    command: str | None = None,
) -> str:
    """Every trial, best first. ``estimate`` is the search phase's figure (one process, few
    rounds); the verdict above the table, from the head-to-head, is what counts. ``*`` marks the
    configuration the latest verdict picked. With no rows, the ``command`` to run (default: a
    plain ``autotune search``)."""
    if not rows:
        none = f"No trials of {model} on this chip; run: {command or f'autotune search {model}'}"
        return printable(verdict_line(search)) + "\n\n" + none if search else none
    verdict = search.stored_verdict if search else None
    pick_id = verdict.pick_config_id if verdict else None  # what apps get, not the row's claim
    body = []
    for r in rows:
        estimate = speedup(r.ratio) if r.status == Status.OK else "-"
        body.append(
            [
                ("* " if r.config_id == pick_id else "") + (r.status or "?"),
                estimate,
                ms(r.latency_ms_p50),
                ms(r.session_create_ms),
                ms(r.first_run_ms),
                placement_text(r.placement),
                r.accuracy or ("fp32" if r.measured or r.status == Status.INACCURATE else "-"),
                r.label,
                (r.error or r.warning or "")[:80],
            ]
        )
    headers = ["status", "estimate", "p50", "load", "first run", "placement", "accuracy"]
    text = table(body, [*headers, "configuration", "reason"])
    return (printable(verdict_line(search)) + "\n\n" if search else "") + text


def verdict_line(search: SearchRecord) -> str:
    """The latest finished search's verdict in one line, as ``show`` prints it."""
    v = search.stored_verdict
    when = (v.finished_at if v else search.finished_at) or "?"
    spread = f", A/A spread {v.aa_spread:.1%}" if v and v.aa_spread is not None else ""
    if v is None or v.outcome == Outcome.INCONCLUSIVE:
        why = f": {v.reason}" if v and v.reason else ""
        return (
            f"verdict ({when}): inconclusive{why}{spread}; apps keep ORT's defaults or an "
            "earlier verdict"
        )
    if v.outcome == Outcome.DEFAULT:
        why = f": {v.reason}" if v.reason else " (no candidate beat them by the margin)"
        return f"verdict ({when}): ORT's defaults stay{why}{spread}"
    figure = speedup_text(v.speedup, v.speedup_low, v.speedup_high)
    tier = f", outputs at the {tier_text(v.accuracy)}" if v.accuracy else ""
    return f"verdict ({when}): * {v.pick_label}, {figure} ORT's defaults' speed{spread}{tier}"


def tier_text(accuracy: str | None) -> str:
    """``fp16 (why)`` as stored -> ``fp16 tier (why)``; None (judged before tiers): fp32."""
    tier, _, why = (accuracy or "fp32").partition(" (")
    return f"{tier} tier" + (f" ({why}" if why else "")


def stats_text(stats: Stats) -> str:
    """``autotune db stats``: an aligned table of models x chips and a line of totals."""
    if not stats.rows:
        return "The database holds no results yet; run: autotune search MODEL.onnx"
    statuses = list(stats.statuses)
    body = [
        [
            r.model,
            r.model_digest[:12],
            r.chip,
            r.trials,
            *[r.statuses.get(s, 0) for s in statuses],
            r.searches,
            ", ".join(r.ort_versions),
        ]
        for r in stats.rows
    ]
    headers = ["model", "digest", "chip", "trials", *statuses, "searches", "ort"]
    total = (
        f"{_count(stats.models, 'model')}, {_count(len(stats.chips), 'chip')}, "
        f"{_count(stats.trials, 'trial')}, {_count(stats.searches, 'search')}; "
        f"onnxruntime {', '.join(stats.ort_versions) or '-'}"
    )
    return table(body, headers) + "\n\n" + total


def _count(n: int, noun: str) -> str:
    """``1 chip``, ``2 chips``, ``1 search``, ``3 searches``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}{'es' if noun.endswith('ch') else 's'}"
