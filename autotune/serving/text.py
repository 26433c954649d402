"""Terminal text of the serving objectives' outcomes and of a soak."""

from __future__ import annotations

from typing import Any

from autotune.serving.soak import SoakResult
from autotune.store.records import ServingRecord


def _f(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def throughput_text(details: dict[str, Any], pick_label: str | None, outcome: str) -> str:
    lines = [f"{'arrangement':58} {'req/s':>9} {'p99 ms':>8} {'speed-up':>22}"]
    for c in details["contenders"]:
        interval = (
            f"{_f(c['speedup'], '.3f')} [{_f(c['speedup_low'], '.2f')}, "
            f"{_f(c['speedup_high'], '.2f')}]"
        )
        lines.append(
            f"{c['label'][:58]:58} {_f(c['throughput'], '9.0f')} "
            f"{_f(c['latency_ms_p99'], '8.2f')} {interval:>22}"
        )
    if details.get("unstable"):
        lines.append("never stable over 3 windows: " + "; ".join(details["unstable"]))
    lines += [f"left out: {c['label']}: {c['problem']}" for c in details.get("left_out", [])]
    lines.append(f"{outcome}: {pick_label or 'no pick'} ({details['reason']})")
    return "\n".join(lines)


def coldstart_text(details: dict[str, Any], pick_label: str | None, outcome: str) -> str:
    lines = [f"{'configuration':58} {'first ever':>10} {'cached':>8} {'warm p50':>9}  (ms)"]
    for c in details["contenders"]:
        lines.append(
            f"{c['label'][:58]:58} {_f(c['first_ever_ms'], '10.1f')} "
            f"{_f(c['cached_cold_ms'], '8.1f')} {_f(c['warm_ms_p50'], '9.3f')}"
        )
    lines += [f"left out: {c['label']}: {c['problem']}" for c in details.get("left_out", [])]
    lines.append(f"{outcome}: {pick_label or 'no pick'} ({details['reason']})")
    return "\n".join(lines)


def soak_text(result: SoakResult) -> str:
    lines = [result.label, f"{'s':>6} {'runs':>7} {'p50 ms':>9} {'p90 ms':>9} {'RSS MB':>8}"]
    for w in result.windows:
        lines.append(
            f"{w.seconds:6.1f} {w.runs:7d} {w.latency_ms_p50:9.3f} {w.latency_ms_p90:9.3f} "
            f"{w.rss_mb:8.1f}"
        )
    lines += [f"flag: {f}" for f in result.flags] or ["stable: no drift, no memory growth"]
    return "\n".join(lines)


def serving_lines(records: list[ServingRecord]) -> list[str]:
    """What ``show`` adds: the newest verdict per objective, concurrency and arrival (per
    configuration for soaks), with its flags."""
    seen: set[tuple[Any, ...]] = set()
    lines: list[str] = []
    for r in records:  # newest first
        key = (
            r.objective,
            r.concurrency,
            r.arrival,
            r.qps,
            r.pick_label if r.objective == "soak" else None,
        )
        if key in seen:
            continue
        seen.add(key)
        if r.objective == "throughput":
            load = f"{r.arrival} loop" + (f" at {r.qps:g} qps" if r.qps else "")
            what = f"throughput at concurrency {r.concurrency} ({load})"
            figures = (
                f": {r.value:.0f} req/s against {r.baseline_value:.0f}"
                if r.value and r.baseline_value
                else ""
            )
        elif r.objective == "coldstart":
            what = "cold start"
            figures = (
                f": {r.value:.0f} ms against {r.baseline_value:.0f}"
                if r.value and r.baseline_value
                else ""
            )
        else:
            what, figures = str(r.objective), ""
        picked = r.pick_label or "ORT's defaults, shared"
        lines.append(f"{what}: {r.outcome}, {picked}{figures} ({r.created_at})")
        for label, flags in (r.flags or {}).items():
            lines += [f"  flag ({label}): {f}" for f in flags]
    return lines
