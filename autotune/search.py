"""The search: an Optuna study over the configurations available here. The only module that
imports optuna.

Flow: check the model, shapes and database before anything heavy; replay the trials already
stored for this model, chip, ORT version and shapes into the study (so a search resumes and never
measures a configuration twice); enqueue ORT's default configuration as trial 0; ask the sampler
for configurations and measure each in the worker process (paired against the default, pruned
when clearly slower); record every trial at once; then re-measure the best few head to head with
the default and keep the default unless a candidate beats it by ``min_gain``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune import __version__, objectives
from autotune.chip import current_chip, current_descriptor, provenance
from autotune.config import CPU, DEFAULT_CONFIG, SessionConfig
from autotune.errors import AutotuneError, ConfigError, SearchError
from autotune.ladder import roles_of
from autotune.measure import (
    CRASHED,
    FAILED,
    OK,
    PRUNED,
    TIMEOUT,
    MeasuringWorker,
    Protocol,
    TrialResult,
    WorkerLost,
    WorkerSetup,
    WorkerTarget,
    trial_dir_for,
    worker_main,
)
from autotune.model import (
    free_dimensions,
    load_feeds,
    load_model_info,
    resolve_shapes,
    shape_signature,
    synthetic_feeds,
)
from autotune.paths import cache_dir
from autotune.providers import SearchContext, available_spaces, device_policies, validate_config
from autotune.space import DEFAULT_PARAMS, graph_levels, one_knob_variants, suggest_config
from autotune.store import ResultKey, Store, decode_json, now


@dataclass
class SearchOptions:
    trials: int = 30
    timeout: float | None = None  # seconds for the whole search; the running trial finishes
    trial_timeout: float = 300.0  # a trial (build + measure) taking longer is killed: "timeout"
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    inputs: str | None = None
    db: str | None = None
    protocol: Protocol = field(default_factory=Protocol)
    top_k: int = 3  # candidates re-measured head to head with the default
    min_gain: float = 0.03  # a candidate must beat the default by this much to be picked
    objective: str = "latency"  # or load, memory, balanced (see autotune.objectives)
    providers: tuple[str, ...] | None = None  # only these providers (default: all available)
    seed: int | None = None
    patience: int | None = 12  # stop after this many trials without a 1% better one
    seed_variants: bool = True  # start with the default's one-knob variants
    storage: str | None = None  # shared Optuna storage: an RDB URL or journal:/path/to/file
    worker_target: WorkerTarget = worker_main  # tests inject faults here (crash, hang)


@dataclass
class Event:
    """Progress of a search, for a progress bar."""

    kind: str  # "start", "trial", "final", "done"
    done: int = 0
    total: int = 0
    elapsed: float = 0.0
    best_ratio: float | None = None
    best_label: str | None = None
    message: str = ""


@dataclass
class Outcome:
    search_id: str
    key: ResultKey
    model_name: str
    pick: SessionConfig
    pick_ratio: float
    compared: list[dict[str, Any]]
    measured: int
    resumed: int
    failures: int
    rounds_dropped: int
    wall_s: float
    default_latency_ms: float | None
    interrupted: bool = False


Progress = Callable[[Event], None]

IMPROVEMENT = 0.01  # a trial improves on the best when it is this much faster
DEAD_DIMENSION = 0.015  # a one-knob change within this of the default does nothing measurable


class _ModelLock:
    """One search per model at a time on this machine: two would disturb each other's timings."""

    def __init__(self, digest: str) -> None:
        directory = cache_dir() / "locks"
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{digest[:32]}.lock"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "another process"
            os.close(self.fd)
            raise SearchError(
                f"a search of this model is already running here (pid {other}); wait for it "
                "to finish, since two searches would disturb each other's timings"
            ) from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _quiet_optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def run_search(
    model_path: str | os.PathLike[str],
    options: SearchOptions,
    progress: Progress | None = None,
) -> Outcome:
    """Search the fastest correct configuration for ``model_path`` on this machine.

    Raises ModelError, ShapeError, DatabaseError or SearchError (all AutotuneError) for bad
    input, before anything is measured or written.
    """
    if options.trials < 1:
        raise SearchError(f"--trials must be at least 1, not {options.trials}")
    started = time.monotonic()
    emit = progress or (lambda e: None)
    info = load_model_info(model_path)
    if options.inputs:
        feeds, shapes = load_feeds(info, options.inputs)
        default_shapes = False
    else:
        shapes = resolve_shapes(info, options.shapes)
        feeds = synthetic_feeds(info, shapes)
        default_shapes = not options.shapes
    chip = current_chip()
    key = ResultKey(info.digest, chip.chip_id, chip.ort_version, shape_signature(shapes))
    store = Store.open(options.db, write=True)
    # a distributed study runs one worker per machine; locally, one search per model at a time
    lock = None if options.storage else _ModelLock(info.digest)
    try:
        return _Search(
            info.path, info.path.name, key, default_shapes, feeds, store, options, emit, started
        ).run(
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
        self.worker: MeasuringWorker | None = None
        self.known: dict[str, dict[str, Any]] = {}
        self.measured = 0
        self.failures = 0
        self.best: tuple[float, str] | None = None
        self.floor_ms: float | None = None
        self.trial_root = str(cache_dir() / "trials" / key.model_digest[:16])
        self.variant_dims: dict[str, str] = {}  # config id of a one-knob variant -> its setting
        self.frozen: dict[str, Any] = {}  # settings measured to make no difference here
        # (context, provider spaces, optimization levels, device policies), set by run()
        self.space: tuple[SearchContext, list[Any], list[str], tuple[str, ...]]

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
            "chip_descriptor": current_descriptor().to_json(),
            "autotune_version": __version__,
            **{k: prov[k] for k in ("host", "host_id", "user", "os")},
        }

    def _search_row(self, **extra: Any) -> dict[str, Any]:
        return {
            **self._common_fields(),
            "trials_requested": self.options.trials,
            "trials_measured": self.measured,
            "objective": self.options.objective,
            **extra,
        }

    def _record(
        self, number: int, config: SessionConfig, result: TrialResult, params: dict[str, Any]
    ) -> dict[str, Any]:
        row = {
            **self._common_fields(),
            "trial_uid": uuid.uuid4().hex,
            "trial_number": number,
            "config_id": config.config_id,
            "config": config.to_json(),
            "provider": config.primary_provider,
            "label": config.describe(),
            "params": params,
            "created_at": now(),
            "ort_build": list(current_chip().providers),
            "thread_roles": json.dumps(roles_of(config, current_descriptor())),
            **result.to_dict(),
        }
        self.store.record_trial(row)
        self.known[config.config_id] = row
        return row

    def _worker(self) -> MeasuringWorker:
        if self.worker is None:
            setup = WorkerSetup(
                model_path=str(self.path),
                feeds=self.feeds,
                protocol=self.options.protocol,
                floor_ms=self.floor_ms,
                cache_root=self.trial_root,
            )
            try:
                self.worker = MeasuringWorker(setup, target=self.options.worker_target)
            except WorkerLost as exc:
                raise SearchError(
                    f"the model cannot run with ORT's default configuration here ({exc}); "
                    'check it with: python -c "import onnxruntime as o; '
                    f"o.InferenceSession('{self.path}')\""
                ) from None
            floor = self.worker.info.get("floor_ms")
            if floor:
                self.floor_ms = min(self.floor_ms or floor, floor)
        return self.worker

    def _drop_worker(self) -> None:
        if self.worker is not None:
            self.worker.kill()
            self.worker = None

    # -- the study -----------------------------------------------------------------------
    def run(self, ctx: SearchContext) -> Outcome:
        optuna = _quiet_optuna()
        from optuna.distributions import distribution_to_json, json_to_distribution
        from optuna.trial import TrialState, create_trial

        options = self.options
        previous = self.store.trials(self.key)
        for row in previous:
            self.known[row["config_id"]] = row
            if row["floor_ms"]:
                self.floor_ms = min(self.floor_ms or row["floor_ms"], row["floor_ms"])
        resumed = len(self.known)
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
        study = optuna.create_study(
            direction="minimize",
            sampler=sampler,
            pruner=pruner,
            storage=_storage(options.storage),
            study_name=self._study_name() if options.storage else None,
            load_if_exists=True,
        )
        shared = options.storage is not None
        replay = list(self.known.values()) if not study.trials else []
        for row in replay:
            stored = decode_json(row["params"]) or {}
            try:
                dists = {k: json_to_distribution(v) for k, v in stored["distributions"].items()}
                params = stored["params"]
                value = self._value(row)
                if row["status"] == OK and value is not None:
                    frozen = create_trial(
                        params=params,
                        distributions=dists,
                        value=value,
                        intermediate_values=dict(enumerate(_ratios(row))),
                    )
                else:
                    frozen = create_trial(params=params, distributions=dists, state=TrialState.FAIL)
                study.add_trial(frozen)
            except (KeyError, TypeError, ValueError):
                continue  # a row from another space version: still known, just not replayed
        if DEFAULT_CONFIG.config_id not in self.known and not (shared and study.trials):
            study.enqueue_trial(DEFAULT_PARAMS)
        spaces = [
            s
            for s in available_spaces()
            if options.providers is None or s.name in options.providers or s.name == CPU
        ]
        self.space = (ctx, spaces, graph_levels(), device_policies())
        for params in self._stale_picks():
            study.enqueue_trial(params, skip_if_exists=True)
        seeds = 0
        if not (shared and study.trials):
            # cheap first: the default's one-knob variants (CPU sessions build in milliseconds),
            # then each other provider once, slowest compiles last (the sampler fills in options)
            for dimension, params in one_knob_variants(ctx, self.space[2]):
                cfg = self._replay(params)
                self.variant_dims[cfg.config_id] = dimension
                if cfg.config_id not in self.known and options.seed_variants:
                    study.enqueue_trial(params, skip_if_exists=True)
                    seeds += 1
            for space in sorted(spaces, key=lambda sp: sp.compile_cost):
                if space.name != CPU:
                    study.enqueue_trial({"provider": space.name}, skip_if_exists=True)
                    seeds += 1
        self._freeze_dead_dimensions()
        budget = max(0, options.trials - resumed)
        self.search_row_state("running")
        self.emit(
            Event("start", done=0, total=budget, message=f"{resumed} trials already stored")
            if resumed
            else Event("start", done=0, total=budget)
        )
        self._update_best()
        interrupted = False
        stale_asks = 0
        since_best = 0
        try:
            while (_finished(study) < options.trials) if shared else (self.measured < budget):
                if options.timeout is not None and self._elapsed() > options.timeout:
                    break
                if options.patience and self.measured > seeds and since_best >= options.patience:
                    break  # no trial improved on the best by 1% for a while
                trial = study.ask()
                try:
                    config = self._suggest(trial, frozen=self.frozen)
                    validate_config(config)
                except (ConfigError, ValueError):
                    # ValueError: an enqueued point this space cannot take (another ORT build)
                    study.tell(trial, state=TrialState.FAIL)
                    continue
                if shared:
                    self._learn_from(study, trial.number)
                known = self.known.get(config.config_id)
                if known is not None:
                    row = known
                    # measured before (this run or an earlier one): never measure it again
                    value = self._value(row)
                    if row["status"] in (OK, "elsewhere") and value is not None:
                        for step, ratio in enumerate(_ratios(row)):
                            trial.report(ratio, step)
                        study.tell(trial, value)
                    else:
                        study.tell(trial, state=TrialState.FAIL)
                    stale_asks += 1
                    if stale_asks > 200:
                        break  # the sampler keeps proposing known points: the space is exhausted
                    continue
                stale_asks = 0
                params = {
                    "params": trial.params,
                    "distributions": {
                        k: distribution_to_json(d) for k, d in trial.distributions.items()
                    },
                }
                result = self._measure(trial, config)
                self._record(trial.number, config, result, params)
                self.measured += 1
                before = self.best
                value = self._value(self.known[config.config_id])
                if result.status == OK and value is not None:
                    study.tell(trial, value)
                elif result.status == PRUNED:
                    study.tell(trial, state=TrialState.PRUNED)
                else:
                    self.failures += 1
                    study.tell(trial, state=TrialState.FAIL)
                self._update_best()
                improved = self.best is not None and (
                    before is None or self.best[0] < before[0] * (1 - IMPROVEMENT)
                )
                since_best = 0 if improved else since_best + 1
                self._freeze_dead_dimensions()
                self.emit(
                    Event(
                        "trial",
                        done=self.measured,
                        total=budget,
                        elapsed=self._elapsed(),
                        best_ratio=self.best[0] if self.best else None,
                        best_label=self.best[1] if self.best else None,
                        message=f"{config.describe()}: {_result_text(result)}",
                    )
                )
            self.emit(Event("final", elapsed=self._elapsed(), message="re-measuring the best"))
            compared, pick, pick_ratio, dropped, default_ms = self._final()
        except KeyboardInterrupt:
            interrupted = True
            self._drop_worker()
            self.search_row_state("interrupted")
            raise
        finally:
            if self.worker is not None:
                self.worker.close()
                self.worker = None
            # compiled-model caches were for this search's trials and head-to-head only
            shutil.rmtree(self.trial_root, ignore_errors=True)
        wall = self._elapsed()
        self.store.upsert_search(
            self._search_row(
                state="done",
                finished_at=now(),
                pick_config_id=pick.config_id,
                pick_config=pick.to_json(),
                pick_label=pick.describe(),
                pick_ratio=pick_ratio,
                thread_roles=json.dumps(roles_of(pick, current_descriptor())),
                pick_latency_ms_p50=next(
                    (c["latency_ms_p50"] for c in compared if c["config_id"] == pick.config_id),
                    None,
                ),
                default_latency_ms_p50=default_ms,
                verdict={"compared": compared, "rounds_dropped": dropped},
                wall_s=wall,
            )
        )
        self.emit(Event("done", elapsed=wall))
        return Outcome(
            search_id=self.search_id,
            key=self.key,
            model_name=self.model_name,
            pick=pick,
            pick_ratio=pick_ratio,
            compared=compared,
            measured=self.measured,
            resumed=resumed,
            failures=self.failures,
            rounds_dropped=dropped,
            wall_s=wall,
            default_latency_ms=default_ms,
            interrupted=interrupted,
        )

    def _freeze_dead_dimensions(self) -> None:
        """A setting whose one-knob variants all measured within noise of the default does
        nothing measurable here: stop spending trials on it (it keeps ORT's default)."""
        default = self.known.get(DEFAULT_CONFIG.config_id)
        if not default or default["status"] != OK or not default["ratio"]:
            return
        rows_by_dim: dict[str, list[dict[str, Any] | None]] = {}
        for config_id, dimension in self.variant_dims.items():
            rows_by_dim.setdefault(dimension, []).append(self.known.get(config_id))
        for dimension, rows in rows_by_dim.items():
            if dimension in self.frozen or any(r is None for r in rows):
                continue
            if all(
                r is not None
                and r["status"] == OK
                and r["ratio"] is not None
                and abs(r["ratio"] / default["ratio"] - 1) < DEAD_DIMENSION
                for r in rows
            ):
                self.frozen[dimension] = DEFAULT_PARAMS[dimension]

    def _stale_picks(self, limit: int = 3) -> list[dict[str, Any]]:
        """Parameters of the best results measured with another ORT version, re-validated
        first: the best bet on a new ORT, and what apps use (marked stale) until then. Only
        points this build's space can take (another build may have other providers)."""
        if self.known:
            return []
        rows = [
            r
            for r in self.store.trials(self.key, any_ort=True)
            if r["status"] == OK
            and r["ratio"] is not None
            and r["config_id"] != DEFAULT_CONFIG.config_id
        ]
        rows.sort(key=lambda r: r["ratio"])
        out: list[dict[str, Any]] = []
        for row in rows:
            stored = decode_json(row["params"]) or {}
            params = stored.get("params") if isinstance(stored, dict) else None
            if not isinstance(params, dict) or params in out:
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
        where = hashlib.sha256(f"{k.chip}|{k.shapes}".encode()).hexdigest()[:12]
        return f"autotune-{k.model_digest[:16]}-{k.ort_version}-{where}"

    def _learn_from(self, study: Any, current: int) -> None:
        """In a shared study, configurations other workers measured or are measuring count as
        known: replay their parameters through the space to get their configuration ids."""
        for t in study.get_trials(deepcopy=False):
            if t.number == current or not t.params:
                continue
            try:
                cfg = self._replay(t.params)
            except (ValueError, KeyError):
                continue
            if cfg.config_id not in self.known:
                self.known[cfg.config_id] = {
                    "status": "elsewhere",
                    "ratio": t.value,
                    "config": cfg.to_json(),
                    "label": cfg.describe(),
                    "ratios": None,
                }

    def _suggest(self, trial: Any, frozen: dict[str, Any] | None = None) -> SessionConfig:
        ctx, spaces, levels, policies = self.space
        return suggest_config(trial, ctx, spaces, levels=levels, policies=policies, frozen=frozen)

    def _replay(self, params: dict[str, Any]) -> SessionConfig:
        """The configuration stored parameters stand for. Parameters a search froze are absent
        from its trials: they kept ORT's default. Raises ValueError/KeyError for a point this
        space cannot take (another build, another space version)."""
        from optuna.trial import FixedTrial

        fixed = {k: v for k, v in DEFAULT_PARAMS.items() if k not in params}
        return self._suggest(FixedTrial(params), frozen=fixed)

    def search_row_state(self, state: str) -> None:
        extra: dict[str, Any] = {"state": state}
        if state == "running":
            extra["started_at"] = now()
        self.store.upsert_search(self._search_row(**extra))

    def _value(self, row: dict[str, Any]) -> float | None:
        """The figure the study minimizes for this row: its score on the objective."""
        default = self.known.get(DEFAULT_CONFIG.config_id)
        value = objectives.score(row, self.options.objective, default)
        return row.get("ratio") if value is None else value

    def _update_best(self) -> None:
        ok = [r for r in self.known.values() if r["status"] == OK and r["ratio"] is not None]
        if ok:
            best = min(ok, key=lambda r: r["ratio"])
            self.best = (best["ratio"], best["label"])

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
        try:
            worker = self._worker()
            return worker.measure(
                config,
                timeout=self.options.trial_timeout,
                trial_dir=trial_dir,
                on_round=on_round,
            )
        except WorkerLost as exc:  # the reference process itself was lost
            self._drop_worker()
            status = exc.status if exc.status in (CRASHED, TIMEOUT) else FAILED
            return TrialResult(status=status, error=f"reference process: {exc}")
        finally:
            if trial_dir and not any(Path(trial_dir).iterdir()):
                os.rmdir(trial_dir)  # nothing compiled (CPU): no directory left behind

    def _final(self) -> tuple[list[dict[str, Any]], SessionConfig, float, int, float | None]:
        """Head-to-head of the default and the best few, fresh, to avoid the winner's curse."""
        for row in self.store.trials(self.key):  # other workers of a shared study, too
            self.known.setdefault(row["config_id"], row)
        ok = [r for r in self.known.values() if r["status"] == OK and r["ratio"] is not None]
        objective = self.options.objective
        if objective == "latency":
            ok.sort(key=lambda r: r["ratio"])
        else:
            ok = objectives.choose(ok, objective, self.known.get(DEFAULT_CONFIG.config_id))
        contenders = [DEFAULT_CONFIG]
        for row in ok:
            if len(contenders) > self.options.top_k:
                break
            try:
                cfg = SessionConfig.from_json(row["config"])
                validate_config(cfg)
            except AutotuneError:
                continue
            if cfg.config_id != DEFAULT_CONFIG.config_id:
                contenders.append(cfg)
        rounds = self.options.protocol.final_rounds
        try:
            verdict = self._worker().compare(
                contenders, rounds, timeout=self.options.trial_timeout * len(contenders)
            )
        except WorkerLost:
            self._drop_worker()
            verdict = {
                "ratios": [1.0] + [None] * (len(contenders) - 1),
                "iqr": [None] * len(contenders),
                "rounds_kept": 0,
                "rounds_dropped": 0,
                "latency_ms_p50": [None] * len(contenders),
                "latency_ms_p90": [None] * len(contenders),
            }
        compared = []
        for i, cfg in enumerate(contenders):
            stored = self.known.get(cfg.config_id, {})
            compared.append(
                {
                    "config_id": cfg.config_id,
                    "label": cfg.describe(),
                    "ratio": verdict["ratios"][i],
                    "iqr": verdict["iqr"][i],
                    "latency_ms_p50": verdict["latency_ms_p50"][i],
                    "latency_ms_p90": verdict["latency_ms_p90"][i],
                    "search_ratio": stored.get("ratio"),
                    "session_create_ms": stored.get("session_create_ms"),
                    "first_run_ms": stored.get("first_run_ms"),
                }
            )
        default_ratio = compared[0]["ratio"] or 1.0
        pick, pick_ratio = DEFAULT_CONFIG, default_ratio
        if objective == "latency":
            for i, entry in enumerate(compared[1:], start=1):
                r = entry["ratio"]
                if (
                    r is not None
                    and r <= default_ratio * (1 - self.options.min_gain)
                    and r < pick_ratio
                ):
                    pick, pick_ratio = contenders[i], r
        elif len(contenders) > 1:
            # the best on the objective (load, memory, balanced), if it beats the default there
            best = self.known.get(contenders[1].config_id, {})
            default_row = self.known.get(DEFAULT_CONFIG.config_id)
            value = objectives.score(best, objective, default_row)
            if value is not None and value <= 1 - self.options.min_gain:
                pick = contenders[1]
                pick_ratio = compared[1]["ratio"] or default_ratio
        # the verdict is relative to the default measured in the same rounds
        for entry in compared:
            if entry["ratio"] is not None:
                entry["speedup"] = default_ratio / entry["ratio"]
        return (
            compared,
            pick,
            pick_ratio / default_ratio,
            int(verdict["rounds_dropped"]),
            compared[0]["latency_ms_p50"],
        )


def _storage(url: str | None) -> Any:
    """An Optuna storage: ``journal:/path`` (a journal file on a shared file system) or an RDB
    URL such as ``postgresql://user:pass@host/db``; None for an in-memory study."""
    if url is None:
        return None
    if url.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = url[len("journal:") :]
        if not path:
            raise SearchError(
                "--storage journal: needs a file path, e.g. journal:/shared/study.log"
            )
        return JournalStorage(JournalFileBackend(path))
    if "://" not in url:
        raise SearchError(
            f"--storage {url!r} is not a storage URL; use journal:/path/to/file or an RDB URL "
            "such as postgresql://user@host/db"
        )
    return url


def _finished(study: Any) -> int:
    from optuna.trial import TrialState

    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return len(study.get_trials(deepcopy=False, states=done))


def _ratios(row: dict[str, Any]) -> list[float]:
    values = decode_json(row.get("ratios")) or []
    return [float(v) for v in values if isinstance(v, (int, float))]


def _result_text(result: TrialResult) -> str:
    if result.status == OK and result.ratio is not None:
        return f"{result.ratio:.3f}× default"
    if result.status == PRUNED and result.ratio is not None:
        return f"pruned at {result.ratio:.2f}× default"
    return f"{result.status}: {result.error or ''}".strip()
