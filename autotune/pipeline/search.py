"""The pipeline search: each stage alone first, then the stages jointly.

1. **Alone**: each stage's own pick, the verdict stored for its model on this chip
   (``autotune.best_config``), and its runners-up (the other configurations its head-to-head
   found faster than ORT's defaults); with ``stage_trials`` a stage with none is first searched
   alone (``autotune.search_model``). Stages with nothing stored run at ORT's defaults.
2. **Jointly**: from the picks, the thread budget (this machine's usable cores) split between
   the stages that overlap, every overlapping stage at the full budget without spinning, a
   looped stage (``repeat``) at one thread, one thread pool shared by every session, and each
   stage at each of its runners-up.
   Each candidate is measured against the reference (ORT's defaults for every stage, one
   long-lived process) in paired rounds, replaying the whole call pattern
   (``autotune.pipeline.worker``), outputs checked against a CPU-EP fp32 run.
3. **Verdict**: the best ``top_k`` in a head-to-head with both baselines, fresh processes per
   generation (``autotune.pipeline.decision``); stored through ``autotune.store``.
"""

from __future__ import annotations

import itertools
import math
import os
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune import defaults
from autotune.config import DEFAULT_CONFIG, SessionConfig
from autotune.errors import AutotuneError, ConfigError, SearchError
from autotune.measure.conditions import Conditions
from autotune.measure.generations import HeadToHead, Replication
from autotune.measure.manager import Protocol, WorkerLost
from autotune.measure.verdict import INCONCLUSIVE
from autotune.pipeline.arrangement import Arrangement
from autotune.pipeline.decision import PipelineVerdict, decide_pipeline
from autotune.pipeline.measure import PipelineBench, Rounds, Screening
from autotune.pipeline.spec import PipelineSpec, load_pipeline
from autotune.store.records import PipelineRecord, Status

if TYPE_CHECKING:
    from autotune.measure.load import Load, LoadOver

SPIN = "session.intra_op.allow_spinning"
Progress = Callable[[str], None]


@dataclass
class PipelineOptions:
    db: str | None = None
    stage_trials: int = 0  # search a stage with no stored pick alone first (0: use defaults)
    min_gain: float = defaults.MIN_GAIN
    protocol: Protocol = field(default_factory=Protocol)
    top_k: int = 2  # joint candidates in the head-to-head with both baselines
    trial_timeout: float = defaults.TRIAL_TIMEOUT_S
    inputs: dict[str, str] = field(default_factory=dict)  # stage name -> .npz (wins over file)
    allow_busy: bool = field(default_factory=lambda: os.environ.get("AUTOTUNE_ALLOW_BUSY") == "1")
    cores: int | None = None  # the thread budget (default: this machine's usable cores)


@dataclass
class Contender:
    role: str  # defaults, stage picks or joint
    arrangement: Arrangement
    label: str
    screening: Screening | None = None

    def to_dict(self) -> dict[str, Any]:
        s = self.screening
        return {
            "role": self.role,
            "label": self.label,
            "arrangement": self.arrangement.to_dict(),
            "screening_ratio": s.ratio if s else None,
            "status": s.status if s else None,
            "error": s.error if s else None,
            "peak_rss_mb": s.peak_rss_mb if s else None,
            "sessions_rss_mb": s.sessions_rss_mb if s else None,
            "latency_ms_p50": s.latency_ms_p50 if s else None,
        }


@dataclass
class PipelineOutcome:
    name: str
    pipeline_key: str
    outcome: str  # pick, stage_picks, default or inconclusive
    reason: str
    chosen: Arrangement | None
    label: str | None
    speedup_vs_defaults: float | None
    speedup_vs_picks: float | None
    contenders: list[dict[str, Any]]  # the head-to-head's, with each one's figures
    screened: list[dict[str, Any]]  # every candidate measured
    stage_sources: dict[str, str]
    wall_s: float
    busy: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["chosen"] = self.chosen.to_dict() if self.chosen else None
        return out


def apply_inputs(spec: PipelineSpec, inputs: dict[str, str]) -> PipelineSpec:
    """The spec with ``--inputs STAGE=FILE.npz`` replacing the file's stage inputs."""
    names = [s.name for s in spec.stages]
    unknown = [n for n in inputs if n not in names]
    if unknown:
        raise ConfigError(f"--inputs names no stage {unknown[0]!r}; the stages: {', '.join(names)}")
    stages = tuple(
        replace(s, inputs=Path(inputs[s.name]).resolve()) if s.name in inputs else s
        for s in spec.stages
    )
    return replace(spec, stages=stages)


def stage_picks(
    spec: PipelineSpec, options: PipelineOptions, progress: Progress
) -> tuple[list[SessionConfig], dict[str, str]]:
    """Each stage's own pick (ORT's defaults where none is stored) and where it came from."""
    from autotune.resolver import best_config

    configs, sources = [], {}
    for stage in spec.stages:
        shapes = stage.shapes or None
        choice = best_config(stage.model, shapes=shapes, db=options.db)
        if choice is None and options.stage_trials:
            progress(f"stage {stage.name}: searching it alone ({options.stage_trials} trials)")
            try:
                from autotune import search_model

                search_model(
                    stage.model,
                    trials=options.stage_trials,
                    shapes=stage.shapes,
                    inputs=str(stage.inputs) if stage.inputs else None,
                    db=options.db,
                    allow_busy=options.allow_busy,
                    min_gain=options.min_gain,
                )
            except AutotuneError as exc:  # e.g. inputs only an earlier stage can give
                progress(f"stage {stage.name}: not searched alone ({exc})")
            choice = best_config(stage.model, shapes=shapes, db=options.db)
        configs.append(choice.config if choice else DEFAULT_CONFIG)
        sources[stage.name] = (
            "ORT defaults (none stored)"
            if choice is None
            else "its own search kept ORT's defaults"
            if choice.config.is_default()
            else f"its own pick, {choice.config.describe()}"
        )
    return configs, sources


def _splits(cores: int, parts: int) -> list[tuple[int, ...]]:
    """Every way to give ``parts`` stages at least one of ``cores`` threads, all used."""
    if parts > cores:
        return [(1,) * parts]
    return [c for c in itertools.product(range(1, cores), repeat=parts) if sum(c) == cores] or [
        (cores,)
    ]


def stage_runners_up(
    spec: PipelineSpec, db: str | None, limit: int = 2
) -> list[list[SessionConfig]]:
    """Per stage, the other configurations its own search's head-to-head found faster than
    ORT's defaults (not its pick), fastest first, at most ``limit``."""
    from autotune.chip import current_chip
    from autotune.digest import model_digest
    from autotune.store.database import Store

    chip = current_chip().chip_id
    out: list[list[SessionConfig]] = []
    with Store.open(db, write=False) as store:
        for stage in spec.stages:
            search = store.latest_search(model_digest(stage.model), chip)
            verdict = search.verdict if search and isinstance(search.verdict, dict) else {}
            compared = [c for c in verdict.get("compared") or [] if isinstance(c, dict)]
            faster = sorted(
                (c for c in compared if isinstance(c.get("speedup"), float) and c["speedup"] > 1),
                key=lambda c: -float(c["speedup"]),
            )
            configs: list[SessionConfig] = []
            for c in faster:
                try:
                    config = SessionConfig.from_json(str(c.get("config")))
                except ConfigError:
                    continue  # not a configuration this autotune reads: not a candidate
                if config.to_json() != (search.pick_config if search else None):
                    configs.append(config)
            out.append(configs[:limit])
    return out


def joint_candidates(
    spec: PipelineSpec,
    picks: list[SessionConfig],
    cores: int,
    runners_up: list[list[SessionConfig]] | None = None,
) -> list[Arrangement]:
    """Arrangements to try beyond the picks (see the module's docstring), each once; with
    ``runners_up``, also each stage at each of its runners-up, the others at their picks."""
    per_step: list[list[dict[int, SessionConfig]]] = []
    for step in spec.overlapping():
        choices = [
            {i: replace(picks[i], intra_op_num_threads=t) for i, t in zip(step, split, strict=True)}
            for split in _splits(cores, len(step))
        ]
        choices.append(
            {
                i: replace(picks[i], session_entries={**picks[i].session_entries, SPIN: "0"})
                for i in step
            }
        )
        per_step.append(choices)
    out = []
    for combo in itertools.product(*per_step):
        configs = list(picks)
        for choice in combo:
            for i, config in choice.items():
                configs[i] = config
        out.append(Arrangement(tuple(configs)))
    looped = [
        i
        for i, s in enumerate(spec.stages)
        if s.repeat > 1 and not any(i in g for g in spec.overlapping())
    ]
    if looped:
        configs = [
            replace(c, intra_op_num_threads=1) if i in looped else c for i, c in enumerate(picks)
        ]
        out.append(Arrangement(tuple(configs)))
    out.append(Arrangement(tuple(picks), shared_threads=cores))
    for i, others in enumerate(runners_up or []):
        out += [Arrangement((*picks[:i], c, *picks[i + 1 :])) for c in others]
    seen = {Arrangement(tuple(picks)).config_id}
    unique = []
    for a in out:
        if a.config_id not in seen:
            seen.add(a.config_id)
            unique.append(a)
    return unique


def run_pipeline_search(
    path: str | Path, options: PipelineOptions | None = None, progress: Progress | None = None
) -> PipelineOutcome:
    """Search the pipeline file at ``path`` and store the verdict. Raises ConfigError or
    ShapeError (one line) for a pipeline that cannot be measured."""
    from autotune.chip import current_chip, usable_cores
    from autotune.measure.load import LoadMonitor, LoadOver
    from autotune.pipeline.feeds import stage_feeds

    options = options or PipelineOptions()
    say = progress or (lambda _: None)
    started = time.monotonic()
    spec = apply_inputs(load_pipeline(path), options.inputs)
    names = [s.name for s in spec.stages]
    feeds = stage_feeds(spec)
    picks, sources = stage_picks(spec, options, say)
    cores = options.cores or usable_cores()
    defaults_arrangement = Arrangement.defaults(len(spec.stages))
    picks_arrangement = Arrangement(tuple(picks))
    joint = joint_candidates(spec, picks, cores, stage_runners_up(spec, options.db))
    monitor = LoadMonitor()
    say(f"{spec.name}: {len(joint)} joint candidates on {cores} cores")
    bench = PipelineBench(str(spec.path), feeds, options.protocol, options.trial_timeout)
    try:
        screened = [
            Contender("stage picks", picks_arrangement, picks_arrangement.describe(names)),
            *(Contender("joint", a, a.describe(names)) for a in joint),
        ]
        if picks_arrangement.is_default():
            screened = screened[1:]
        for c in screened:
            c.screening = bench.screen(c.arrangement)
            ratio = c.screening.ratio
            say(f"  {c.screening.status} {ratio if ratio else math.nan:.3f}  {c.label}")
        baseline = Contender("defaults", defaults_arrangement, "ORT defaults for every stage")
        final = [baseline, *_finalists(screened, options.top_k)]
        p = options.protocol
        say(f"head-to-head: {len(final)} contenders, {p.generations} fresh processes each")
        load = LoadOver(monitor)
        judged = _Judged(final, picks_arrangement, load, bench, options)
        per_generation = max(2, math.ceil(p.final_rounds / p.generations))
        plan = Replication(
            generations=p.generations,
            still_open=judged.still_open,
            max_generations=p.max_generations,
            extra_seconds=p.extra_seconds,
        )
        h2h = bench.head_to_head([c.arrangement for c in final], per_generation, plan)
        reference_rss = bench.reference.peak_rss_mb
        floor_ms = bench.floor_ms
    except WorkerLost as exc:
        raise SearchError(
            f"pipeline {spec.name}: a contender failed in the head-to-head ({exc})"
        ) from None
    finally:
        bench.close()
    verdict = _judge(h2h, final, picks_arrangement, load.so_far(), floor_ms, options)
    busy = load.last.text() if load.last.busy else None
    baseline.screening = Screening(Status.OK, ratio=1.0, peak_rss_mb=reference_rss)
    for c, rss in zip(final, h2h.peak_rss_mb, strict=True):
        if c.screening is not None and rss:
            c.screening.peak_rss_mb = max(rss, c.screening.peak_rss_mb or 0.0)
    outcome = _outcome(spec, verdict, final, screened, sources, time.monotonic() - started, busy)
    _store(spec, outcome, options.db, current_chip())
    return outcome


def _finalists(screened: list[Contender], top_k: int) -> list[Contender]:
    """The stage picks (when screened: they are not ORT's defaults) and the ``top_k`` fastest
    joint candidates that measured correctly."""
    ok = [c for c in screened if c.screening and c.screening.status == Status.OK]
    joint = sorted(
        (c for c in ok if c.role == "joint"),
        key=lambda c: c.screening.ratio if c.screening and c.screening.ratio else math.inf,
    )
    return [c for c in screened if c.role == "stage picks"] + joint[:top_k]


class _Judged:
    """Which contenders' decisions are still open after a generation (against either
    baseline): the head-to-head adds processes of those and of both baselines."""

    def __init__(
        self,
        final: list[Contender],
        picks: Arrangement,
        load: LoadOver,
        bench: PipelineBench,
        options: PipelineOptions,
    ) -> None:
        self.final, self.picks, self.load, self.bench, self.options = (
            final, picks, load, bench, options,
        )  # fmt: skip

    def still_open(self, measured: HeadToHead) -> list[int]:
        rounds = Rounds(measured.rounds, measured.latencies, [], measured.rounds_dropped)
        load = self.load.so_far()
        if load.busy and not self.options.allow_busy:
            return []  # no pick under heavy load: more processes would not change that
        verdict = _judge(rounds, self.final, self.picks, load, self.bench.floor_ms, self.options)
        shift = 0 if self.picks.is_default() else 1  # vs_picks: the stage picks are its 0
        open_ = set(verdict.vs_defaults.open)
        if verdict.vs_picks is not None:
            open_ |= {i + shift for i in verdict.vs_picks.open}
        open_.discard(0)
        if open_ and shift:
            open_.add(shift)  # judged against the stage picks too: keep measuring them
        return sorted(open_)


def _judge(
    h2h: Rounds,
    final: list[Contender],
    picks: Arrangement,
    load: Load,
    floor_ms: float,
    options: PipelineOptions,
) -> PipelineVerdict:
    """The verdict against both baselines, under the load measured during the head-to-head."""
    references = [r.reference for r in h2h.rounds]
    slowdown = statistics.median(references) / floor_ms if references else 1.0
    verdict = decide_pipeline(
        h2h.rounds,
        contenders=len(final),
        picks=None if picks.is_default() else 1,
        min_gain=options.min_gain,
        latencies=h2h.latencies,
        rounds_dropped=h2h.dropped,
        conditions=Conditions.measured(
            load.other_cores, load.steal, load.cores, load.threads, slowdown, load.text()
        ),
        changes_threads=[
            [c.arrangement.threads_differ(base) for c in final]
            for base in (final[0].arrangement, picks)
        ],
    )
    if load.busy and not options.allow_busy and verdict.outcome != "default":
        verdict.outcome, verdict.chosen = INCONCLUSIVE, None
        verdict.reason = f"the machine was busy during the head-to-head ({load.text()}); run again"
    return verdict


def _outcome(
    spec: PipelineSpec,
    verdict: PipelineVerdict,
    final: list[Contender],
    screened: list[Contender],
    sources: dict[str, str],
    wall_s: float,
    busy: str | None,
) -> PipelineOutcome:
    contenders = []
    for i, c in enumerate(final):
        entry = c.to_dict() | verdict.speedups(i)
        e = verdict.vs_defaults.entries[i]
        entry |= {
            "speedup_low": e.speedup_low,
            "speedup_high": e.speedup_high,
            "why_not": e.why_not,
        }
        entry |= {"latency_ms_p50": e.latency_ms_p50}
        contenders.append(entry)
    chosen = final[verdict.chosen] if verdict.chosen is not None else None
    figures = verdict.speedups(verdict.chosen) if verdict.chosen is not None else {}
    return PipelineOutcome(
        name=spec.name,
        pipeline_key=spec.key(),
        outcome=verdict.outcome,
        reason=verdict.reason,
        chosen=chosen.arrangement if chosen else None,
        label=chosen.label if chosen else None,
        speedup_vs_defaults=figures.get("vs_defaults"),
        speedup_vs_picks=figures.get("vs_picks"),
        contenders=contenders,
        screened=[c.to_dict() for c in screened],
        stage_sources=sources,
        wall_s=wall_s,
        busy=busy,
    )


def _store(spec: PipelineSpec, outcome: PipelineOutcome, db: str | None, chip: Any) -> None:
    from autotune.chip import provenance
    from autotune.digest import model_digest
    from autotune.store.database import Store, now
    from autotune.version import __version__

    pattern = spec.pattern() | {"digests": [model_digest(s.model) for s in spec.stages]}
    record = PipelineRecord(
        pipeline_id=uuid.uuid4().hex,
        pipeline_key=outcome.pipeline_key,
        name=spec.name,
        chip=chip.chip_id,
        ort_version=chip.ort_version,
        pattern=pattern,
        outcome=outcome.outcome,
        arrangement=outcome.chosen.to_json() if outcome.chosen else None,
        label=outcome.label,
        speedup_vs_defaults=outcome.speedup_vs_defaults,
        speedup_vs_picks=outcome.speedup_vs_picks,
        details={"reason": outcome.reason, "contenders": outcome.contenders,
                 "screened": outcome.screened, "stages": outcome.stage_sources,
                 "busy": outcome.busy, "wall_s": outcome.wall_s},
        created_at=now(),
        autotune_version=__version__,
        host_id=provenance()["host_id"],
    )  # fmt: skip
    with Store.open(db, write=True) as store:
        store.record_pipeline(record)
