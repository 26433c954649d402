"""The search: an Optuna study over the configurations available here. The only module that
imports optuna.

Flow: check the model, shapes and database before anything heavy; replay the trials already
stored for this model, chip, ORT version and shapes into the study (so a search resumes and never
measures a configuration twice); enqueue ORT's default configuration as trial 0; ask the sampler
for configurations and measure each in its own session process (paired against the default, pruned
when clearly slower); record every trial at once; then re-measure the best few head to head with
the default and keep the default unless a candidate beats it by ``min_gain``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from autotune.chip import current_chip, current_descriptor, provenance
from autotune.config import CPU, DEFAULT_CONFIG, SessionConfig
from autotune.errors import ConfigError, SearchError
from autotune.ladder import roles_of
from autotune.measure.accuracy import check_tolerances, judged_alike
from autotune.measure.generations import HeadToHeadProgress
from autotune.measure.load import Load
from autotune.measure.manager import (
    Manager,
    Measurer,
    TrialResult,
    WorkerLost,
    WorkerSetup,
    WorkerTarget,
    trial_dir_for,
)
from autotune.measure.verdict import Verdict
from autotune.model import (
    feeds_digest,
    free_dimensions,
    load_feeds,
    load_model_info,
    ort_reason,
    resolve_shapes,
    shape_signature,
    synthetic_feeds,
    synthetic_value_hint,
)
from autotune.paths import cache_dir
from autotune.providers import SearchContext, available_spaces, device_policies, validate_config
from autotune.store.database import ResultKey, Store, now
from autotune.store.records import SearchRecord, SearchState, Status, TrialRecord
from autotune.tuning import finalists, head_to_head, loop, objectives
from autotune.tuning.lock import ModelLock
from autotune.tuning.options import (
    DEAD_DIMENSION,
    Event,
    EventKind,
    Progress,
    SearchOptions,
    SearchResult,
    SearchSpace,
)
from autotune.tuning.points import stored_params, stored_point
from autotune.tuning.space import DEFAULT_PARAMS, graph_levels, one_knob_variants, suggest_config
from autotune.tuning.storage import open_storage
from autotune.version import __version__

__all__ = ["Event", "EventKind", "SearchOptions", "SearchResult", "SearchSpace", "run_search"]


def _quiet_optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def run_search(
    model_path: str | os.PathLike[str],
    options: SearchOptions,
    progress: Progress | None = None,
) -> SearchResult:
    """Search the fastest correct configuration for ``model_path`` on this machine.

    Raises ModelError, ShapeError, DatabaseError or SearchError (all AutotuneError) for bad
    input, before anything is measured or written.
    """
    if options.trials < 1:
        raise SearchError(f"--trials must be at least 1, not {options.trials}")
    if options.timeout is not None and options.timeout <= 0:
        raise SearchError(f"--timeout must be more than 0 seconds, not {options.timeout:g}")
    p = options.protocol
    options.protocol = replace(p, accuracy=check_tolerances(p.accuracy, p.rtol, p.atol))
    started = time.monotonic()
    emit = progress or (lambda e: None)
    info = load_model_info(model_path)
    inputs_digest: str | None = None  # None: synthetic inputs
    if options.inputs:
        feeds, shapes = load_feeds(info, options.inputs)
        default_shapes = False
        inputs_digest = feeds_digest(feeds)
    else:
        shapes = resolve_shapes(info, options.shapes)
        feeds = synthetic_feeds(info, shapes)
        default_shapes = not options.shapes
    chip = current_chip()
    key = ResultKey(info.digest, chip.chip_id, chip.ort_version, shape_signature(shapes))
    store = Store.open(options.db, write=True)
    # a distributed study runs one search per machine; locally, one search per model at a time
    lock = None if options.storage else ModelLock(info.digest)
    try:
        search = _Search(
            info.path, info.path.name, key, default_shapes, feeds, store, options, emit, started
        )
        search.inputs_digest = inputs_digest
        if inputs_digest is None:
            search.synthetic_hint = synthetic_value_hint(info, shapes)
        with _terminate_as_interrupt():
            return search.run(
                SearchContext(
                    cores=chip.cores,
                    performance_cores=current_descriptor().performance_cores,
                    has_subgraphs=info.has_subgraphs,
                    has_dynamic_inputs=info.has_dynamic_inputs,
                    free_dims=free_dimensions(info, shapes),
                    system=chip.system.split()[0],
                    op_types=frozenset(info.op_counts),
                )
            )
    finally:
        if lock is not None:
            lock.release()
        store.close()


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, a CI runner's cancel) ends a search like Ctrl-C: the search row is
    marked interrupted, never left "running"."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Search:
    def __init__(
        self,
        path: Path,
        model_name: str,
        key: ResultKey,
        default_shapes: bool,
        feeds: dict[str, Any],
        store: Store,
        options: SearchOptions,
        emit: Progress,
        started: float,
    ) -> None:
        self.path = path
        self.model_name = model_name
        self.key = key
        self.default_shapes = default_shapes
        self.feeds = feeds
        self.store = store
        self.options = options
        self.emit = emit
        self.started = started
        self.search_id = uuid.uuid4().hex
        self.inputs_digest: str | None = None  # digest of --inputs data; None for synthetic
        self.synthetic_hint: str | None = None  # what to say if synthetic inputs break the model
        self.monitor = options.monitor()
        self.busy: dict[str, Any] = {}  # other programs' CPU use: before, during, head-to-head
        self.manager: Measurer | None = None
        self.known: dict[str, TrialRecord] = {}
        self.measured = 0
        self.failures = 0
        self.best: tuple[float, str] | None = None
        self.floor_ms: float | None = None
        self.trial_root = str(cache_dir() / "trials" / key.model_digest[:16])
        self.variant_dims: dict[str, str] = {}  # config id of a one-knob variant -> its setting
        self.frozen: dict[str, Any] = {}  # settings measured to make no difference here
        # (context, provider spaces, optimization levels, device policies), set by run()
        self.space: SearchSpace

    # -- bookkeeping ---------------------------------------------------------------------
    def _elapsed(self) -> float:
        return time.monotonic() - self.started

    def _common_fields(self) -> dict[str, Any]:
        """What every row of this search carries: its key and its provenance."""
        prov = provenance()
        return {
            "search_id": self.search_id,
            "model_digest": self.key.model_digest,
            "model_name": self.model_name,
            "chip": self.key.chip,
            "ort_version": self.key.ort_version,
            "shapes": self.key.shapes,
            "default_shapes": int(self.default_shapes),
            "inputs_digest": self.inputs_digest,
            "chip_descriptor": current_descriptor().to_json(),
            "autotune_version": __version__,
            **{k: prov[k] for k in ("host", "host_id", "user", "os")},
        }

    def _search_row(self, **extra: Any) -> SearchRecord:
        return SearchRecord(
            **{
                **self._common_fields(),
                "trials_requested": self.options.trials,
                "trials_measured": self.measured,
                "objective": self.options.objective,
                "accuracy": self.options.protocol.accuracy,
                **extra,
            }
        )

    def _record(
        self,
        number: int,
        config: SessionConfig,
        result: TrialResult,
        params: dict[str, Any],
        load: Load | None = None,
    ) -> TrialRecord:
        if load is not None:
            self.busy["trials_max_cores"] = max(
                self.busy.get("trials_max_cores", 0.0), load.other_cores
            )
        row = TrialRecord(
            **self._common_fields(),
            trial_uid=uuid.uuid4().hex,
            trial_number=number,
            config_id=config.config_id,
            config=config.to_json(),
            provider=config.primary_provider,
            label=config.describe(),
            params=params,
            created_at=now(),
            ort_build=list(current_chip().providers),
            thread_roles=json.dumps(roles_of(config, current_descriptor())),
            **result.to_dict(),
            load_cores=load.other_cores if load else None,
            warning=f"{load.level} load during this trial: {load.text()}"
            if load and load.loaded
            else None,
        )
        self.store.record_trial(row)
        self.known[config.config_id] = row
        return row

    def _manager(self) -> Measurer:
        if self.manager is None:
            setup = WorkerSetup(
                model_path=str(self.path),
                feeds=self.feeds,
                protocol=self.options.protocol,
                floor_ms=self.floor_ms,
                cache_root=self.trial_root,
            )
            try:
                make = self.options.measurer or _processes
                self.manager = make(setup, self.options.worker_target)
            except WorkerLost as exc:
                reason = ort_reason(str(exc))
                if (
                    exc.status != Status.FAILED
                ):  # crashed or timed out: not a matter of input values
                    raise SearchError(
                        f"the model did not run with ORT's default configuration here ({reason})"
                    ) from None
                if self.synthetic_hint:
                    raise SearchError(
                        f"the model fails with ORT's default configuration on synthetic inputs "
                        f"({reason}); {self.synthetic_hint}"
                    ) from None
                given = "the inputs given" if self.inputs_digest else "synthetic inputs"
                raise SearchError(
                    f"the model fails with ORT's default configuration on {given} ({reason}); "
                    "check that onnxruntime can run it on real inputs"
                ) from None
            floor = self.manager.info.get("floor_ms")
            if floor:
                self.floor_ms = min(self.floor_ms or floor, floor)
        return self.manager

    def _drop_manager(self) -> None:
        if self.manager is not None:
            self.manager.kill()
            self.manager = None

    # -- the study -----------------------------------------------------------------------
    def run(self, ctx: SearchContext) -> SearchResult:
        """Resume from this machine's stored trials, seed the study, run the loop, then the
        head-to-head; the search row records each state (running, done, interrupted, failed)."""
        previous = self._resume()
        study = self._study()
        shared = self.options.storage is not None
        if not study.trials:
            self._replay_known(study)
        seeds = self._seed(study, ctx, shared)
        resumed = len(self.known)
        budget = max(0, self.options.trials - resumed)
        self._begin(budget, previous, resumed)
        try:
            stopped = loop.run_trials(self, study, budget, seeds, shared)
            verdict, compared = finalists.head_to_head_of(self)
        except KeyboardInterrupt:
            self._drop_manager()
            self.search_row_state(SearchState.INTERRUPTED, finished_at=now())
            raise
        except BaseException as exc:
            self._drop_manager()
            self.search_row_state(SearchState.FAILED, finished_at=now(), error=_one_line(exc))
            raise
        finally:
            if self.manager is not None:
                self.manager.close()
                self.manager = None
            # compiled-model caches were for this search's trials and head-to-head only
            shutil.rmtree(self.trial_root, ignore_errors=True)
        return self._conclude(verdict, compared, resumed, stopped)

    def _resume(self) -> list[TrialRecord]:
        """This machine's stored trials of this key: known (never measured again), and the
        floor of the slow-phase guard. Only its own rows, measured on these inputs: a team
        layer's rows inform (stale picks, the head-to-head contenders) but cannot veto a
        configuration or make every round look slow."""
        previous = [r for r in self._stored_trials(own=True) if r.config_id is not None]
        for row in previous:
            self.known[str(row.config_id)] = row
            if row.floor_ms:
                self.floor_ms = min(self.floor_ms or row.floor_ms, row.floor_ms)
        return previous

    def _study(self) -> Any:
        """The Optuna study: TPE, Wilcoxon pruning on the rounds' ratios (latency only), in
        memory or in the shared storage."""
        optuna = _quiet_optuna()
        options = self.options
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental-feature warnings of optuna
            sampler = optuna.samplers.TPESampler(
                seed=options.seed, multivariate=True, group=True, n_startup_trials=8
            )
            # rounds report latency ratios: prune on them only when latency is the objective
            pruner = (
                optuna.pruners.WilcoxonPruner(p_threshold=0.1, n_startup_steps=4)
                if options.objective == "latency"
                else optuna.pruners.NopPruner()
            )
        return optuna.create_study(
            direction="minimize",
            sampler=sampler,
            pruner=pruner,
            storage=open_storage(options.storage),
            study_name=self._study_name() if options.storage else None,
            load_if_exists=True,
        )

    def _replay_known(self, study: Any) -> None:
        """The known trials into a fresh study, so the sampler starts from what is measured."""
        from optuna.trial import TrialState, create_trial

        for row in list(self.known.values()):
            point = stored_point(row)
            if point is None:
                continue  # a row from another space version: still known, just not replayed
            params, dists = point
            try:
                value = self._value(row)
                if row.status == Status.OK and value is not None:
                    frozen = create_trial(
                        params=params,
                        distributions=dists,
                        value=value,
                        intermediate_values=dict(enumerate(loop.stored_ratios(row))),
                    )
                else:
                    frozen = create_trial(params=params, distributions=dists, state=TrialState.FAIL)
                study.add_trial(frozen)
            except (KeyError, TypeError, ValueError):
                continue  # a row from another space version: still known, just not replayed

    def _seed(self, study: Any, ctx: SearchContext, shared: bool) -> int:
        """Enqueue what is measured first: ORT's defaults, the stale picks, each other provider
        once at its own defaults (slowest compiles last), then the default's one-knob variants.
        Returns how many seeds were enqueued."""
        options = self.options
        if DEFAULT_CONFIG.config_id not in self.known and not (shared and study.trials):
            study.enqueue_trial(DEFAULT_PARAMS)
        spaces = [
            s
            for s in available_spaces()
            if options.providers is None or s.ort_name in options.providers or s.name == CPU
        ]
        self.space = SearchSpace(ctx, spaces, graph_levels(), device_policies())
        for params in self._stale_picks():
            study.enqueue_trial(params, skip_if_exists=True)
        seeds = 0
        if not (shared and study.trials):
            for space in sorted(spaces, key=lambda sp: sp.compile_cost):
                if space.name != CPU:
                    # the provider as it comes, everything else ORT's defaults: the largest
                    # effects come from the provider, so each is measured before any variant
                    # and before the sampler varies its options
                    point = {**DEFAULT_PARAMS, **space.default_point(ctx), "provider": space.name}
                    study.enqueue_trial(point, skip_if_exists=True)
                    seeds += 1
            for dimension, params in one_knob_variants(ctx, self.space.levels):
                cfg = self._replay(params)
                self.variant_dims[cfg.config_id] = dimension
                if cfg.config_id not in self.known and options.seed_variants:
                    study.enqueue_trial(params, skip_if_exists=True)
                    seeds += 1
        self._freeze_dead_dimensions()
        return seeds

    def _begin(self, budget: int, previous: list[TrialRecord], resumed: int) -> None:
        """Say the plan, check the machine's load, start the reference process (a model that
        cannot run on these inputs fails here, before any output) and mark the search running."""
        plan = _plan_text(self.space.providers, self.space.policies)
        self.emit(Event(EventKind.PLAN, message=plan))
        self._check_load("search", before="the search")
        if self.options.storage is None:
            # this process holds the model's lock: no other search of it runs here
            self.store.mark_abandoned(self.key.model_digest, provenance()["host_id"])
        self._manager()
        self.search_row_state(SearchState.RUNNING)
        elsewhere = len(self.store.trials(self.key)) - len(previous)
        if resumed:
            note = f"{resumed} trials already stored"
        elif elsewhere:
            note = (
                f"{elsewhere} trials stored on other inputs are not these results; the stored "
                "pick and the default are measured again first"
            )
        else:
            note = ""
        self.emit(Event(EventKind.START, done=0, total=budget, message=note))
        self._update_best()

    def _conclude(
        self, verdict: Verdict, compared: list[dict[str, Any]], resumed: int, stopped: str | None
    ) -> SearchResult:
        """Store the verdict (no pick when inconclusive) and say what the search concluded."""
        if self.options.sustained:  # a flagged pick gives way to a stable finalist
            from autotune.serving.sustained import recheck

            ranges = self.options.sustained_shapes
            verdict, _ = recheck(
                self.path,
                verdict,
                compared,
                self.options.sustained,
                self.key.shapes,
                {k: tuple(tuple(d) for d in v) for k, v in ranges.items()} if ranges else None,
            )
        wall = self._elapsed()
        columns = head_to_head.verdict_columns(verdict, compared, stopped_early=stopped)
        pick = SessionConfig.from_json(columns["pick_config"]) if columns["pick_config"] else None
        entry = compared[verdict.pick_index] if verdict.pick_index is not None else {}
        speedup = verdict.speedup
        self.store.upsert_search(
            self._search_row(
                state=SearchState.DONE,
                finished_at=now(),
                **columns,
                busy=self.busy,
                wall_s=wall,
            )
        )
        self.emit(Event(EventKind.DONE, elapsed=wall))
        return SearchResult(
            search_id=self.search_id,
            key=self.key,
            model_name=self.model_name,
            outcome=verdict.outcome,
            reason=verdict.reason,
            pick=pick,
            speedup=speedup,
            speedup_low=entry.get("speedup_low"),
            speedup_high=entry.get("speedup_high"),
            aa_spread=verdict.aa_spread,
            objective=self.options.objective,
            compared=compared,
            measured=self.measured,
            resumed=resumed,
            failures=self.failures,
            rounds_kept=verdict.rounds_kept,
            rounds_dropped=verdict.rounds_dropped,
            wall_s=wall,
            default_latency_ms=compared[0]["latency_ms_p50"],
            busy=self.busy,
            stopped_early=stopped,
            verdict=verdict.to_dict(),
        )

    def _freeze_dead_dimensions(self) -> None:
        """A setting whose one-knob variants all measured within noise of the default does
        nothing measurable here: stop spending trials on it (it keeps ORT's default)."""
        default = self.known.get(DEFAULT_CONFIG.config_id)
        if not default or default.status != Status.OK or not default.ratio:
            return
        rows_by_dim: dict[str, list[TrialRecord | None]] = {}
        for config_id, dimension in self.variant_dims.items():
            rows_by_dim.setdefault(dimension, []).append(self.known.get(config_id))
        for dimension, rows in rows_by_dim.items():
            if dimension in self.frozen or any(r is None for r in rows):
                continue
            if all(
                r is not None
                and r.status == Status.OK
                and r.ratio is not None
                and abs(r.ratio / default.ratio - 1) < DEAD_DIMENSION
                for r in rows
            ):
                self.frozen[dimension] = DEFAULT_PARAMS[dimension]

    def _stored_trials(self, own: bool = False) -> list[TrialRecord]:
        """The stored trials of this key measured on these inputs (synthetic, or the same
        ``--inputs`` data): results on other data are not these results, nor are trials judged
        at another accuracy tier than this search's ``--accuracy`` gives them. ``own``: only
        this machine's (the writable layer, this host)."""
        accuracy = self.options.protocol.accuracy
        return [
            r
            for r in self.store.trials(self.key, own=own)
            if r.inputs_digest == self.inputs_digest and judged_alike(r, accuracy)
        ]

    def _stale_picks(self, limit: int = 3) -> list[dict[str, Any]]:
        """Parameters of the best results measured with another ORT version or on other inputs,
        re-validated first: the best bet here, and what apps use until then. The latest stored
        verdict's pick leads (the default is measured anyway). Only points this build's space
        can take (another build may have other providers)."""
        if self.known:
            return []
        rows = [
            r
            for r in self.store.trials(self.key, any_ort=True)
            if r.status == Status.OK
            and r.ratio is not None
            and r.config_id != DEFAULT_CONFIG.config_id
        ]
        picks = [
            s.pick_config_id
            for s in sorted(
                self.store.searches(self.key, any_ort=True),
                key=lambda s: s.finished_at or "",
                reverse=True,
            )
            if s.done and s.pick_config_id
        ]
        latest = picks[0] if picks else None
        rows.sort(key=lambda r: (r.config_id != latest, r.ratio or 0.0))
        out: list[dict[str, Any]] = []
        for row in rows:
            stored = stored_params(row)
            if stored is None:
                continue
            # a parameter its search had frozen is absent: it kept ORT's default, and so must
            # the replay (left out, the sampler would fill it in with anything)
            params = {**DEFAULT_PARAMS, **stored}
            if params in out:
                continue
            try:
                validate_config(self._replay(params))
            except (ValueError, KeyError, ConfigError):
                continue
            out.append(params)
            if len(out) >= limit:
                break
        return out

    def _study_name(self) -> str:
        k = self.key
        inputs = f"|{self.inputs_digest}" if self.inputs_digest else ""
        where = hashlib.sha256(f"{k.chip}|{k.shapes}{inputs}".encode()).hexdigest()[:12]
        return f"autotune-{k.model_digest[:16]}-{k.ort_version}-{where}"

    def _learn_from(self, study: Any, current: int) -> None:
        """In a shared study, configurations the study's other searches measured or are
        measuring count as known: replay their parameters through the space to get their
        configuration ids."""
        for t in study.get_trials(deepcopy=False):
            if t.number == current or not t.params:
                continue
            try:
                cfg = self._replay(t.params)
            except (ValueError, KeyError):
                continue
            if cfg.config_id not in self.known:
                self.known[cfg.config_id] = TrialRecord(
                    status="elsewhere",  # measured by another search of the study
                    ratio=t.value,
                    config=cfg.to_json(),
                    label=cfg.describe(),
                )

    def _suggest(self, trial: Any, frozen: dict[str, Any] | None = None) -> SessionConfig:
        ctx, spaces, levels, policies = self.space
        return suggest_config(
            trial, ctx, list(spaces), levels=list(levels), policies=policies, frozen=frozen
        )

    def _replay(self, params: dict[str, Any]) -> SessionConfig:
        """The configuration stored parameters stand for. Parameters a search froze are absent
        from its trials: they kept ORT's default. Raises ValueError/KeyError for a point this
        space cannot take (another build, another space version)."""
        from optuna.trial import FixedTrial

        fixed = {k: v for k, v in DEFAULT_PARAMS.items() if k not in params}
        return self._suggest(FixedTrial(params), frozen=fixed)

    def search_row_state(self, state: str, **extra: Any) -> None:
        """Record the search's state: running, interrupted (a signal; no pick) or failed (an
        error, with its text); never left "running" when it ends."""
        if state == SearchState.RUNNING:
            extra["started_at"] = now()
        self.store.upsert_search(self._search_row(state=state, **extra))

    def _value(self, row: TrialRecord) -> float | None:
        """The figure the study minimizes for this row: its score on the objective."""
        default = self.known.get(DEFAULT_CONFIG.config_id)
        value = objectives.score(row, self.options.objective, default)
        return row.ratio if value is None else value

    def _update_best(self) -> None:
        ok = [
            (r.ratio, r.label or "")
            for r in self.known.values()
            if r.status == Status.OK and r.ratio is not None
        ]
        if ok:
            self.best = min(ok, key=lambda best: best[0])

    def _measure(self, trial: Any, config: SessionConfig) -> TrialResult:
        kept = 0

        def on_round(index: int, ratio: float, was_kept: bool) -> bool:
            nonlocal kept
            if not was_kept:
                return False
            trial.report(ratio, kept)
            kept += 1
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "cannot prune yet" notes from the pruner
                return bool(trial.should_prune())

        trial_dir = trial_dir_for(self.trial_root, config)
        timeout = self.options.trial_timeout
        left = self._time_left()
        bounded = left is not None and left - self._h2h_reserve() < timeout
        if left is not None and bounded:
            timeout = max(5.0, left - self._h2h_reserve())
        try:
            manager = self._manager()
            result = manager.measure(
                config, timeout=timeout, trial_dir=trial_dir, on_round=on_round
            )
            result.bounded = bounded
            return result
        except WorkerLost as exc:  # the reference process itself was lost
            self._drop_manager()
            status = exc.status if exc.status in (Status.CRASHED, Status.TIMEOUT) else Status.FAILED
            return TrialResult(status=status, error=f"reference process: {exc}")
        finally:
            if trial_dir and os.path.isdir(trial_dir) and not any(Path(trial_dir).iterdir()):
                os.rmdir(trial_dir)  # nothing compiled (CPU): no directory left behind

    def _deadline(self) -> float | None:
        timeout = self.options.timeout
        return None if timeout is None else self.started + timeout

    def _time_left(self) -> float | None:
        deadline = self._deadline()
        return None if deadline is None else deadline - time.monotonic()

    def _generations(self) -> int:
        """Fresh processes per configuration in the head-to-head: more for models under 1 ms,
        whose processes differ more and cost little."""
        p = self.options.protocol
        latency = self.manager.latency_estimate_ms if self.manager else None
        return p.small_generations if latency is not None and latency < 1.0 else p.generations

    def _h2h_reserve(self) -> float:
        """Seconds the head-to-head needs at least (two rounds per process), kept free of trials
        when --timeout bounds the search."""
        if self.manager is None:
            return 0.0
        processes = self.options.top_k + 1
        per_generation = 0.5 * processes + 2 * self.manager.round_seconds(processes)
        return self._generations() * per_generation

    def _h2h_progress(self, p: HeadToHeadProgress) -> None:
        self.emit(
            Event(
                EventKind.FINAL_ROUND,
                done=p.kept,
                total=p.target,
                elapsed=self._elapsed(),
                message=f"{p.dropped} dropped as bursts, about {p.eta_s:.0f} s left",
            )
        )

    def _check_load(self, stage: str, before: str) -> None:
        """Wait (bounded) for other programs to quiet down; then stop with "machine busy", or,
        with allow_busy, go on and mark what is measured."""

        def waiting(load: Load, left: float) -> None:
            self.emit(
                Event(
                    EventKind.BUSY,
                    elapsed=self._elapsed(),
                    message=f"machine busy ({load.text()}); waiting up to {left:.0f} s for "
                    f"quiet before {before}",
                    load_cores=load.other_cores,
                )
            )

        wait = 0.0 if self.options.allow_busy else self.options.busy_wait
        load = self.monitor.wait_for_quiet(wait, waiting)
        self.busy[stage] = load.to_dict()
        if not load.busy:
            return
        if not self.options.allow_busy and stage == "search":
            raise SearchError(
                f"machine busy: {load.text()}, still after {wait:.0f} s; timings taken now "
                "would not hold. Close other programs, or pass --allow-busy to search anyway "
                "(every trial is then marked)"
            )
        self.emit(
            Event(
                EventKind.BUSY,
                elapsed=self._elapsed(),
                message=f"machine busy ({load.text()}): going on; results are marked",
                load_cores=load.other_cores,
            )
        )


def _processes(setup: WorkerSetup, target: WorkerTarget) -> Measurer:
    """The real measurer: one process per session."""
    return Manager(setup, target=target)


def _plan_text(spaces: list[Any], policies: tuple[str, ...]) -> str:
    """Which providers the search will try, and the plugins it cannot, with the reason (the
    lines printed before ``searching:``)."""
    from autotune import plugins

    names = [getattr(s, "label", "") or s.name for s in spaces]
    if policies:
        names.append("ORT device policies (" + ", ".join(policies) + ")")
    text = "providers: " + "; ".join(names)
    used = {s.plugin["package"] for s in spaces if getattr(s, "plugin", None)}
    idle = [
        f"{p['package']} {p['version']} ({p['no_device_reason']})"
        for p in plugins.report()
        if p["package"] not in used and not p["devices"]
    ]
    if idle:
        text += "\nplugins without a device here: " + "; ".join(idle)
    return text


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]
