"""``autotune search --sustained SECONDS``: after the head-to-head, the finalists run that long
(``autotune.serving.soak``); a flagged pick (latency drift, memory growth) gives way to the
best stable finalist that also beat ORT's defaults, else to ORT's defaults when they are stable.
A flagged configuration is never picked over a stable one within the margin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autotune.config import SessionConfig
from autotune.measure.verdict import DEFAULT, PICK, Verdict
from autotune.serving.soak import Ranges, soak
from autotune.signature import parse_signature


def recheck(
    path: Path,
    verdict: Verdict,
    compared: list[dict[str, Any]],
    seconds: float,
    shapes: str,
    ranges: Ranges | None = None,
) -> tuple[Verdict, dict[str, list[str]]]:
    """Soak every finalist (``compared``: ORT's defaults first) for ``seconds`` at the search's
    ``shapes`` (a signature) or over ``ranges``; record each one's soak in ``compared``; move
    the pick off a flagged one. Returns the verdict and the flags by label."""
    fixed = ranges or {k: tuple((d, d) for d in v) for k, v in parse_signature(shapes).items()}
    flags: dict[str, list[str]] = {}
    for entry in compared:
        config = SessionConfig.from_json(entry["config"])
        result = soak(path, config, seconds, fixed, window_s=min(1.0, seconds / 6))
        result.label = entry["label"] = entry.get("label") or result.label
        entry["sustained"] = result.to_dict()
        flags[result.label] = result.flags
    return rerank(verdict, [e["label"] for e in compared], flags, seconds)


def rerank(
    verdict: Verdict, labels: list[str], flags: dict[str, list[str]], seconds: float
) -> tuple[Verdict, dict[str, list[str]]]:
    """Move the pick off a flagged finalist (``labels``: ORT's defaults first; ``flags`` by
    label): to the eligible stable one with the best lower speed-up bound, else to ORT's
    defaults when they are stable; when everything is flagged the pick stands."""
    stable = [not flags.get(label) for label in labels]
    pick = verdict.pick_index
    if verdict.outcome != PICK or pick is None or stable[pick]:
        return verdict, flags
    ok = [
        i
        for i, e in enumerate(verdict.entries)
        if i and i < len(stable) and e.eligible and stable[i]
    ]
    if ok:
        verdict.pick_index = max(ok, key=lambda i: verdict.entries[i].speedup_low or 0.0)
        verdict.reason += f"; the fastest was flagged over {seconds:g} s and gave way"
    elif stable[0]:
        verdict.outcome, verdict.pick_index = DEFAULT, 0
        why = "; ".join(flags[labels[pick]])
        verdict.reason = f"the pick was flagged over a {seconds:g} s run ({why}); "
        verdict.reason += "ORT's defaults stayed stable"
    return verdict, flags
