"""The cold-start objective: which configuration and cache give the first result soonest after
launch, with a warm latency within the user's bound.

Every contender is measured in the three states (``autotune.serving.coldstart``), every launch
a fresh process. A generation starts from an empty cache: each cached contender's first launch
is its "first ever"; then rounds launch every contender again (the cached ones now hit their
cache) and the baseline (ORT's defaults, no cache) a second time as the reference, in random
order. The decision is the latency search's paired, replicated, never-worse rule on the time to
the first result (``autotune.measure.verdict.decide``); a contender whose warm p50 misses the
bound is not picked.
"""

from __future__ import annotations

import random
import statistics
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from autotune.config import DEFAULT_CONFIG
from autotune.measure.verdict import Round, Verdict, decide
from autotune.serving.bound import LoadDuring, apply_bound, more_generations
from autotune.serving.child import run_child
from autotune.serving.coldstart import NONE, ORT_FORMAT, StartChoice


def choices() -> list[StartChoice]:
    """The baseline (ORT's defaults, no cache) first; fewer optimizations (a faster build, a
    slower run); ORT's optimized model cached at two optimization levels."""
    return [
        StartChoice(DEFAULT_CONFIG),
        StartChoice(replace(DEFAULT_CONFIG, graph_optimization_level="ORT_DISABLE_ALL")),
        StartChoice(replace(DEFAULT_CONFIG, graph_optimization_level="ORT_ENABLE_BASIC")),
        StartChoice(DEFAULT_CONFIG, ORT_FORMAT),
        StartChoice(
            replace(DEFAULT_CONFIG, graph_optimization_level="ORT_ENABLE_EXTENDED"), ORT_FORMAT
        ),
    ]


@dataclass
class ColdStartOptions:
    warm_budget_ms: float | None = None  # the bound on the warm p50
    min_gain: float = 0.03
    generations: int = 3  # fresh caches (and processes) before a verdict
    max_generations: int = 6  # more while a decision is open
    rounds: int = 2
    warm_runs: int = 10
    seed: int = 0
    launch_timeout_s: float = 300.0
    choices: list[StartChoice] | None = None


@dataclass
class ColdStartOutcome:
    contenders: list[StartChoice]
    verdict: Verdict
    first_ever_ms: list[float | None]  # median time to the first result with an empty cache
    cold_ms: list[float | None]  # median time to the first result at a launch (cache hit)
    warm_ms: list[float | None]  # median warm p50
    states: list[list[str]] = field(default_factory=list)  # the states each one's launches saw

    @property
    def pick(self) -> StartChoice | None:
        i = self.verdict.pick_index
        return None if i is None else self.contenders[i]

    def details(self) -> dict[str, Any]:
        return {
            "reason": self.verdict.reason,
            "verdict": self.verdict.to_dict(),
            "contenders": [
                {
                    "label": c.label(),
                    "choice": c.to_dict(),
                    "first_ever_ms": f,
                    "cached_cold_ms": cold,
                    "warm_ms_p50": w,
                    "speedup": e.speedup,
                    "why_not": e.why_not,
                }
                for c, f, cold, w, e in zip(
                    self.contenders,
                    self.first_ever_ms,
                    self.cold_ms,
                    self.warm_ms,
                    self.verdict.entries,
                    strict=True,
                )
            ],
        }


def launch(
    model: Path,
    digest: str,
    shapes: dict[str, tuple[int, ...]],
    choice: StartChoice,
    root: Path,
    options: ColdStartOptions,
) -> dict[str, Any]:
    """One fresh process: launch, first result, warm runs (``coldstart.probe``)."""
    job = {
        "model": str(model),
        "digest": digest,
        "root": str(root),
        "shapes": {k: list(v) for k, v in shapes.items()},
        "choice": choice.to_dict(),
        "warm_runs": options.warm_runs,
    }
    result: dict[str, Any] = run_child(
        "autotune.serving.coldstart",
        job,
        timeout_s=options.launch_timeout_s,
        what=f"a launch of {choice.label()}",
    )
    return result


def search_coldstart(
    model: Path, digest: str, shapes: dict[str, tuple[int, ...]], options: ColdStartOptions
) -> ColdStartOutcome:
    """Generations from an empty cache, paired rounds of fresh launches, the verdict."""
    contenders = options.choices or choices()
    rng = random.Random(options.seed)
    n = len(contenders)
    first: list[list[float]] = [[] for _ in contenders]
    cold: list[list[float]] = [[] for _ in contenders]
    warm: list[list[float]] = [[] for _ in contenders]
    states: list[list[str]] = [[] for _ in contenders]
    rounds: list[Round] = []
    g, load = 0, LoadDuring()
    while True:
        with tempfile.TemporaryDirectory(prefix="autotune-coldstart-") as tmp:
            root = Path(tmp)
            for i, c in enumerate(contenders):
                if c.cache != NONE:
                    out = launch(model, digest, shapes, c, root, options)
                    first[i].append(out["first_result_ms"])
                    states[i].append(out["state"])
            for _ in range(options.rounds):
                order = list(range(n + 1))  # n: the reference, the baseline launched again
                rng.shuffle(order)
                times: dict[int, float] = {}
                for i in order:
                    out = launch(
                        model, digest, shapes, contenders[0 if i == n else i], root, options
                    )
                    times[i] = out["first_result_ms"]
                    if i < n:
                        cold[i].append(out["first_result_ms"])
                        states[i].append(out["state"])
                        if out["warm_ms_p50"] is not None:
                            warm[i].append(out["warm_ms_p50"])
                        if contenders[i].cache == NONE:
                            first[i].append(out["first_result_ms"])
                rounds.append(Round(g, tuple(times[i] for i in range(n)), times[n]))
        g += 1
        if g < options.generations:
            continue
        verdict = decide(
            rounds,
            contenders=n,
            min_gain=options.min_gain,
            latencies=cold,
            conditions=load.conditions(),  # no choice here changes a thread setting
            min_generations=options.generations,
        )
        if not more_generations(verdict, g, options.max_generations):
            break
    warm_ms = [statistics.median(w) if w else None for w in warm]
    apply_bound(verdict, warm_ms, options.warm_budget_ms, "warm p50")
    return ColdStartOutcome(
        contenders,
        verdict,
        [statistics.median(f) if f else None for f in first],
        [statistics.median(c) if c else None for c in cold],
        warm_ms,
        states,
    )
