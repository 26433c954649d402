"""Text tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


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
    return str(value)


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 0.1:
        return f"{value * 1000:.1f} µs"
    return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"


def speedup(ratio: float | None) -> str:
    return "-" if not ratio else f"{1 / ratio:.2f}×"


# -- what the commands print ----------------------------------------------------------------


def outcome_dict(outcome: Any) -> dict[str, Any]:
    return {
        "search_id": outcome.search_id,
        "model": outcome.model_name,
        "model_digest": outcome.key.model_digest,
        "chip": outcome.key.chip,
        "ort_version": outcome.key.ort_version,
        "shapes": outcome.key.shapes,
        "pick": outcome.pick.to_dict(),
        "pick_label": outcome.pick.describe(),
        "pick_is_default": outcome.pick.is_default(),
        "pick_ratio": outcome.pick_ratio,
        "speedup": 1 / outcome.pick_ratio if outcome.pick_ratio else None,
        "default_latency_ms_p50": outcome.default_latency_ms,
        "compared": outcome.compared,
        "trials_measured": outcome.measured,
        "trials_stored_before": outcome.resumed,
        "failures": outcome.failures,
        "final_rounds_dropped": outcome.rounds_dropped,
        "wall_s": outcome.wall_s,
    }


def outcome_text(outcome: Any) -> str:
    rows = []
    for entry in outcome.compared:
        rows.append(
            [
                entry["label"] + (" (ORT default)" if entry is outcome.compared[0] else ""),
                ms(entry["latency_ms_p50"]),
                ms(entry["latency_ms_p90"]),
                f"{entry['speedup']:.3f}×" if entry.get("speedup") else "-",
                ms(entry["session_create_ms"]),
                ms(entry["first_run_ms"]),
            ]
        )
    head = (
        f"{outcome.model_name} on {outcome.key.chip}, onnxruntime {outcome.key.ort_version}, "
        f"shapes {outcome.key.shapes}\n"
        f"{outcome.measured} trials measured ({outcome.resumed} stored before, "
        f"{outcome.failures} failed) in {outcome.wall_s:.0f} s; "
        f"final head-to-head dropped {outcome.rounds_dropped} slow-phase rounds\n\n"
    )
    body = table(rows, ["configuration", "p50", "p90", "speed-up", "load", "first run"])
    if outcome.pick.is_default():
        verdict = (
            "\n\nORT's default configuration is already the fastest here: no candidate beat it "
            "by the required margin in the head-to-head."
        )
    else:
        verdict = (
            f"\n\nPicked: {outcome.pick.describe()}, {1 / outcome.pick_ratio:.2f}× the speed of "
            "ORT's defaults. Apps get it with autotune.best_session(path)."
        )
    return head + body + verdict


def best_text(choice: Any) -> str:
    c = choice.config
    lines = [
        f"model:       {choice.key.model_digest[:16]}",
        f"chip:        {choice.key.chip}",
        f"onnxruntime: {choice.key.ort_version}"
        + (" (stale: another version)" if choice.stale else ""),
        f"shapes:      {choice.key.shapes}",
        f"source:      {choice.source} ({choice.measured_at})",
        *(
            [f"borrowed:    measured on {choice.key.chip} ({choice.rung.replace('_', ' and ')})"]
            if getattr(choice, "borrowed", False)
            else []
        ),
        f"speed-up:    {speedup(choice.ratio)} vs ORT defaults",
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


def summary_text(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "The database holds no results yet; run: autotune search MODEL.onnx"
    return table(
        [
            [
                r["model"],
                r["model_digest"][:12],
                r["chip"],
                r["ort_version"],
                r["shapes"],
                r["trials"],
                r["failed"],
                speedup(r["best_ratio"]),
                r["last"],
            ]
            for r in rows
        ],
        ["model", "digest", "chip", "ort", "shapes", "trials", "failed", "best", "last"],
    )


_STATUS_ORDER = {"ok": 0, "pruned": 1}


def ordered_trials(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best first: measured by ratio, then pruned, then failures."""
    return sorted(
        rows,
        key=lambda r: (_STATUS_ORDER.get(r["status"], 2), r["ratio"] or 9e9, r["id"] or 0),
    )


def placement_text(value: Any) -> str:
    from autotune.store import decode_json

    p = decode_json(value) or {}
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


def trials_text(rows: list[dict[str, Any]], model: str) -> str:
    if not rows:
        return f"No trials of {model} on this chip; run: autotune search {model}"
    body = []
    for r in rows:
        body.append(
            [
                r["status"],
                speedup(r["ratio"]) if r["status"] in ("ok", "pruned") else "-",
                ms(r["latency_ms_p50"]),
                ms(r["session_create_ms"]),
                ms(r["first_run_ms"]),
                placement_text(r["placement"]),
                r["label"],
                (r["error"] or "")[:80],
            ]
        )
    return table(
        body,
        ["status", "speed-up", "p50", "load", "first run", "placement", "configuration", "reason"],
    )
