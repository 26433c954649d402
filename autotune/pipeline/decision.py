"""A pipeline's verdict: two baselines, one decision rule.

The head-to-head's contenders are ORT's defaults for every stage (contender 0), every stage at
its own single-model pick (``picks``; left out when those are the defaults), then the joint
candidates. A joint candidate is picked only when it beats *both* baselines by the margin with
the single model's paired, replicated, never-worse rule (``autotune.measure.verdict.decide``):
once with the defaults as contender 0, once with the stage picks as contender 0. The second
decision reuses the same rounds; its reference is rescaled so that its A/A control (the
baseline's fresh processes against the long-lived reference process) is exactly the first's:
the machine's resolution does not depend on which baseline a candidate is held against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autotune.measure.conditions import QUIET, Conditions
from autotune.measure.verdict import DEFAULT, INCONCLUSIVE, PICK, Round, Verdict, decide

STAGE_PICKS = "stage_picks"  # the stage picks beat the defaults; no joint candidate beat both


@dataclass
class PipelineVerdict:
    outcome: str  # pick (a joint candidate), stage_picks, default or inconclusive
    reason: str
    chosen: int | None  # the contender to serve; None when inconclusive
    vs_defaults: Verdict
    vs_picks: Verdict | None  # None when the stage picks are ORT's defaults

    def speedups(self, i: int) -> dict[str, float | None]:
        """Contender ``i``'s speed-up over each baseline (higher is faster)."""
        out = {"vs_defaults": self.vs_defaults.entries[i].speedup, "vs_picks": None}
        if self.vs_picks is not None and i >= 1:
            out["vs_picks"] = self.vs_picks.entries[i - 1].speedup
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "chosen": self.chosen,
            "vs_defaults": self.vs_defaults.to_dict(),
            "vs_picks": self.vs_picks.to_dict() if self.vs_picks else None,
        }


def rebased(rounds: list[Round], baseline: int) -> list[Round]:
    """The rounds with contender ``baseline`` first and those before it left out; the reference
    scaled so that each round's baseline/reference ratio is the defaults' one."""
    return [
        Round(
            r.generation,
            r.medians[baseline:],
            r.reference * r.medians[baseline] / r.medians[0],
        )
        for r in rounds
    ]


def decide_pipeline(
    rounds: list[Round],
    *,
    contenders: int,
    picks: int | None,
    min_gain: float,
    latencies: list[list[float]] | None = None,
    rounds_dropped: int = 0,
    complete: bool = True,
    conditions: Conditions = QUIET,
    changes_threads: list[list[bool]] | None = None,
) -> PipelineVerdict:
    """``picks``: the stage picks' contender index (1), or None when they are the defaults;
    the joint candidates follow it. ``changes_threads``: per baseline (defaults, then picks),
    whether each contender differs from it in a thread setting (held under load)."""
    flags = changes_threads or [[False] * contenders, [False] * contenders]

    def verdict(
        rs: list[Round], n: int, lat: list[list[float]] | None, threads: list[bool]
    ) -> Verdict:
        return decide(
            rs,
            contenders=n,
            min_gain=min_gain,
            latencies=lat,
            rounds_dropped=rounds_dropped,
            complete=complete,
            conditions=conditions,
            changes_threads=threads,
        )

    first = verdict(rounds, contenders, latencies, flags[0])
    if first.outcome == INCONCLUSIVE:
        return PipelineVerdict(INCONCLUSIVE, first.reason, None, first, None)
    if picks is None:
        if first.outcome == PICK:
            return PipelineVerdict(PICK, first.reason, first.pick_index, first, None)
        return PipelineVerdict(DEFAULT, first.reason, 0, first, None)
    second = verdict(
        rebased(rounds, picks),
        contenders - picks,
        latencies[picks:] if latencies else None,
        flags[1][picks:],
    )
    both = [
        i
        for i in range(picks + 1, contenders)
        if first.entries[i].eligible and second.entries[i - picks].eligible
    ]
    if both:
        best = max(both, key=lambda i: second.entries[i - picks].speedup_low or 0.0)
        reason = "beat ORT's defaults and every stage's own pick by the margin in every process"
        return PipelineVerdict(PICK, reason, best, first, second)
    why = second.entries[1].why_not if contenders > picks + 1 else None
    if first.entries[picks].eligible:
        reason = "no joint candidate beat every stage's own pick by the margin"
        return PipelineVerdict(
            STAGE_PICKS, reason + (f" (best: {why})" if why else ""), picks, first, second
        )
    return PipelineVerdict(DEFAULT, first.reason, 0, first, second)
