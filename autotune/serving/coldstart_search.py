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

import math
import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from autotune.config import CPU, DEFAULT_CONFIG, SessionConfig
from autotune.errors import SearchError
from autotune.measure.generations import HeadToHead, replicate
from autotune.measure.verdict import Round, Verdict, decide
from autotune.serving.bound import LoadDuring, apply_bound, until_decided
from autotune.serving.child import run_child
from autotune.serving.coldstart import EP_CACHE, NONE, ORT_FORMAT, StartChoice, on_ort_cpu


def choices() -> list[StartChoice]:
    """The baseline (ORT's defaults, no cache) first; fewer optimizations (a faster build, a
    slower run); ORT's optimized model cached at two optimization levels; and where the
    OpenVINO plugin EP registers a device, it at its latency setting in f32, without and with
    its compile cache."""
    out = [
        StartChoice(DEFAULT_CONFIG),
        StartChoice(replace(DEFAULT_CONFIG, graph_optimization_level="ORT_DISABLE_ALL")),
        StartChoice(replace(DEFAULT_CONFIG, graph_optimization_level="ORT_ENABLE_BASIC")),
        StartChoice(DEFAULT_CONFIG, ORT_FORMAT),
        StartChoice(
            replace(DEFAULT_CONFIG, graph_optimization_level="ORT_ENABLE_EXTENDED"), ORT_FORMAT
        ),
    ]
    for config in openvino_plugin_configs():
        out += [StartChoice(config), StartChoice(config, EP_CACHE)]
    return out


def openvino_plugin_configs() -> list[SessionConfig]:
    """The OpenVINO plugin EP on each device it reports here, at its latency setting in f32."""
    from autotune.providers import plugin_candidates
    from autotune.providers.openvino_plugin import EP_NAME, load_config

    out = []
    for space in plugin_candidates():
        if space.ep_name != EP_NAME:
            continue
        kind = space.plugin["device"].split("/", 1)[0]
        props = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        options = {"load_config": load_config(kind, props)}
        providers: tuple[tuple[str, dict[str, str]], ...] = ((EP_NAME, options), (CPU, {}))
        out.append(SessionConfig(providers=providers, plugin=dict(space.plugin)).canonical())
    return out


def screen_accuracy(
    model: Path,
    digest: str,
    shapes: dict[str, tuple[int, ...]],
    contenders: list[StartChoice],
    options: ColdStartOptions,
) -> tuple[list[StartChoice], list[dict[str, str]]]:
    """The choices whose first result passes the accuracy gate (one launch each of those that
    are not ORT's CPU EP, from an empty cache), and those left out, with why."""
    kept, left_out = [], []
    with tempfile.TemporaryDirectory(prefix="autotune-coldstart-") as tmp:
        for c in contenders:
            if on_ort_cpu(c.config):
                kept.append(c)
                continue
            try:
                problem = launch(model, digest, shapes, c, Path(tmp), options).get("accuracy")
            except SearchError as exc:
                problem = str(exc)
            if problem:
                left_out.append({"label": c.label(), "problem": problem})
            else:
                kept.append(c)
    return kept, left_out


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
    left_out: list[dict[str, str]] = field(default_factory=list)  # failed the gate or to start

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
            "left_out": self.left_out,
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


class _Launches:
    """The head-to-head's generations: each from an empty cache, the active choices' first
    launches fill it, then paired rounds of fresh launches with the reference (the baseline
    launched again)."""

    def __init__(
        self,
        model: Path,
        digest: str,
        shapes: dict[str, tuple[int, ...]],
        contenders: list[StartChoice],
        options: ColdStartOptions,
    ) -> None:
        self.model, self.digest, self.shapes = model, digest, shapes
        self.contenders, self.options = contenders, options
        self.rng = random.Random(options.seed)
        n = len(contenders)
        self.first: list[list[float]] = [[] for _ in contenders]
        self.warm: list[list[float]] = [[] for _ in contenders]
        self.states: list[list[str]] = [[] for _ in contenders]
        self.out = HeadToHead(n, options.rounds * options.generations)  # latencies: cold starts

    def _launch(self, i: int, root: Path, *, reference: bool = False) -> dict[str, Any]:
        found = launch(self.model, self.digest, self.shapes, self.contenders[i], root, self.options)
        if not reference:
            self.states[i].append(found["state"])
        return found

    def generation(self, g: int, active: list[int], share: float | None) -> float:
        began, n = time.monotonic(), len(self.contenders)
        with tempfile.TemporaryDirectory(prefix="autotune-coldstart-") as tmp:
            root = Path(tmp)
            for i in active:
                if self.contenders[i].cache != NONE:  # the first launch fills the empty cache
                    self.first[i].append(self._launch(i, root)["first_result_ms"])
            for _ in range(self.options.rounds):
                order = [*active, n]  # n: the reference, the baseline launched again
                self.rng.shuffle(order)
                times: dict[int, float] = {}
                for i in order:
                    found = self._launch(0 if i == n else i, root, reference=i == n)
                    times[i] = found["first_result_ms"]
                    if i == n:
                        continue
                    self.out.latencies[i].append(times[i])
                    if found["warm_ms_p50"] is not None:
                        self.warm[i].append(found["warm_ms_p50"])
                    if self.contenders[i].cache == NONE:
                        self.first[i].append(times[i])
                row = tuple(times.get(i, math.nan) for i in range(n))
                self.out.rounds.append(Round(g, row, times[n]))
        return time.monotonic() - began


def search_coldstart(
    model: Path, digest: str, shapes: dict[str, tuple[int, ...]], options: ColdStartOptions
) -> ColdStartOutcome:
    """Generations from an empty cache, paired rounds of fresh launches, the verdict; after
    the planned generations, more of the baseline and the choices whose decision is open, up to
    ``max_generations`` (the single model's rule, ``measure.generations``)."""
    contenders, left_out = screen_accuracy(
        model, digest, shapes, options.choices or choices(), options
    )
    runs = _Launches(model, digest, shapes, contenders, options)
    load = LoadDuring()

    def judge() -> Verdict:
        return decide(
            runs.out.rounds,
            contenders=len(contenders),
            min_gain=options.min_gain,
            latencies=runs.out.latencies,
            conditions=load.conditions(),  # no choice here changes a thread setting
            min_generations=options.generations,
        )

    plan = until_decided(judge, options.generations, options.max_generations)
    replicate(runs.generation, runs.out, options.rounds, plan)
    verdict = judge()
    warm_ms = [statistics.median(w) if w else None for w in runs.warm]
    apply_bound(verdict, warm_ms, options.warm_budget_ms, "warm p50")
    return ColdStartOutcome(
        contenders,
        verdict,
        [statistics.median(f) if f else None for f in runs.first],
        [statistics.median(c) if c else None for c in runs.out.latencies],
        warm_ms,
        runs.states,
        left_out,
    )
