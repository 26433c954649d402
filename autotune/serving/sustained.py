"""``autotune search --sustained SECONDS``: after the head-to-head, the finalists run that long
(``autotune.serving.soak``); a flagged pick (latency drift, memory growth) gives way to the
best stable finalist that also beat ORT's defaults, else to ORT's defaults when they are stable.
A flagged configuration is never picked over a stable one within the margin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autotune.config import SessionConfig
from autotune.measure.verdict import DEFAULT, PICK, Verdict
from autotune.model import parse_signature
from autotune.serving.soak import soak


def recheck(
    path: Path, verdict: Verdict, compared: list[dict[str, Any]], seconds: float, shapes: str
) -> tuple[Verdict, dict[str, list[str]]]:
    """Soak every finalist (``compared``: ORT's defaults first) for ``seconds``; record each
    one's flags and last-window p50 in ``compared``; move the pick off a flagged one. Returns
    the verdict and the flags by label."""
    fixed = (
        {k: tuple((d, d) for d in v) for k, v in parse_signature(shapes).items()} if shapes else {}
    )
    flags: dict[str, list[str]] = {}
    stable: list[bool] = []
    for entry in compared:
        config = SessionConfig.from_json(entry["config"])
        result = soak(path, config, seconds, fixed, label=entry.get("label"))
        entry["sustained"] = result.to_dict()
        flags[result.label] = result.flags
        stable.append(result.stable)
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
        why = "; ".join(flags[compared[pick]["label"]])
        verdict.reason = f"the pick was flagged over a {seconds:g} s run ({why}); "
        verdict.reason += "ORT's defaults stayed stable"
    return verdict, flags
