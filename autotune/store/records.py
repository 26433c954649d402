"""The tuning database's rows as typed records: what every reader gets from the store.

Standard library and :mod:`autotune.config` only (``best_session()`` imports it). One place
knows each column's type and each status name: :class:`Status` (how a trial ended),
:class:`SearchState` (where a search is), :class:`Outcome` (what its head-to-head decided);
:class:`TrialRecord` and :class:`SearchRecord` have one field per column of the ``trials`` and
``searches`` tables, in the schema's order, with the JSON columns decoded (a test holds them
against the migrations). The store builds them at its edge from rows it has already cleaned to
these types (a shared database is hostile input: a value of another type reads as None). Which
verdict apps get, and what it serves, is decided here once (:func:`served_verdicts`,
:func:`current_verdict`, ``SearchRecord.stored_verdict``), for the lookup, ``show``, ``list``
and the report alike.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from autotune.config import DEFAULT_CONFIG, SessionConfig
from autotune.errors import ConfigError


class Status(StrEnum):
    """How a trial ended."""

    OK = "ok"  # measured, placed as asked, outputs within tolerance
    PRUNED = "pruned"  # measured, stopped early: clearly slower than the best so far
    FAILED = "failed"  # the session could not be built or run
    CRASHED = "crashed"  # its process died (a segfault, an abort)
    TIMEOUT = "timeout"  # its process stopped answering and was killed
    INACCURATE = "inaccurate"  # outputs differ from the CPU reference beyond tolerance
    EP_DROPPED = "ep_dropped"  # ORT dropped the provider asked for and ran on CPU

    @property
    def measured(self) -> bool:
        """Timed to the end or pruned: the trial has figures."""
        return self in (Status.OK, Status.PRUNED)


class SearchState(StrEnum):
    """Where a search is."""

    RUNNING = "running"
    DONE = "done"  # ended with a verdict (see Outcome)
    INTERRUPTED = "interrupted"  # Ctrl-C, SIGTERM, --timeout before its head-to-head, kill -9
    FAILED = "failed"  # ended in an error, kept in ``error``


class Outcome(StrEnum):
    """What a finished search's head-to-head decided."""

    PICK = "pick"  # a configuration beat ORT's defaults by the margin, with confidence
    DEFAULT = "default"  # nothing did: ORT's defaults are the choice
    INCONCLUSIVE = "inconclusive"  # the machine could not resolve the margin: no choice


# A row that arrived by ``db merge`` carries this before the host id it was exported with: it is
# never this machine's own measurement, whatever host id it claims (an export carries every
# host's id, so a forged row can claim any).
MERGED = "merged:"
# A verdict that finished later than now plus this is from the future: never served (a clock a
# day off is allowed; a row claiming 9999 would otherwise stay "the newest" forever).
CLOCK_SKEW = timedelta(days=1)

# A column of free-form JSON text: the record holds it decoded.
_JSON = {"json": True}
# A column holding a SessionConfig's canonical JSON: the record keeps the text, which only
# ``SessionConfig.from_json`` (its allow-list) turns into a configuration.
_CONFIG = {"config": True}


@dataclass(frozen=True)
class TrialRecord:
    """One measured configuration (a row of ``trials``)."""

    id: int | None = None
    trial_uid: str | None = None
    search_id: str | None = None
    trial_number: int | None = None
    model_digest: str | None = None
    model_name: str | None = None
    chip: str | None = None
    ort_version: str | None = None
    shapes: str | None = None
    default_shapes: int | None = None
    config_id: str | None = None
    config: str | None = field(default=None, metadata=_CONFIG)
    provider: str | None = None
    label: str | None = None
    status: str | None = None  # a Status value (text from another autotune reads as itself)
    error: str | None = None
    ratio: float | None = None  # candidate / reference over the rounds (lower is faster)
    ratio_iqr: float | None = None
    ratios: Any = field(default=None, metadata=_JSON)  # every round's ratio
    rounds_kept: int | None = None
    rounds_dropped: int | None = None
    latency_ms_p50: float | None = None
    latency_ms_p90: float | None = None
    reference_ms_p50: float | None = None
    runs: int | None = None
    session_create_ms: float | None = None
    first_run_ms: float | None = None
    session_rss_mb: float | None = None
    peak_rss_mb: float | None = None
    max_abs_err: float | None = None
    err_to_tol: float | None = None
    floor_ms: float | None = None
    placement: Any = field(default=None, metadata=_JSON)
    params: Any = field(default=None, metadata=_JSON)  # the Optuna point: params and distributions
    created_at: str | None = None
    autotune_version: str | None = None
    ort_build: Any = field(default=None, metadata=_JSON)
    host: str | None = None
    host_id: str | None = None
    user: str | None = None
    os: str | None = None
    cached_session_create_ms: float | None = None
    load_cores: float | None = None
    warning: str | None = None
    chip_descriptor: str | None = None  # the chip it was measured on (m005)
    thread_roles: str | None = None  # its thread counts as roles (all performance cores...)
    inputs_digest: str | None = None  # the --inputs data measured on (NULL: synthetic)
    accuracy: str | None = None  # the tier its outputs were judged at (m011; NULL: fp32)

    def __post_init__(self) -> None:
        _decode_fields(self)

    @property
    def measured(self) -> bool:
        return self.status in (Status.OK, Status.PRUNED)

    @property
    def load_ms(self) -> float | None:
        """Load time: session creation plus the first run (where some EPs compile)."""
        if self.session_create_ms is None or self.first_run_ms is None:
            return None
        return self.session_create_ms + self.first_run_ms

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TrialRecord:
        return cls(**_columns_of(cls, row))

    def to_row(self) -> dict[str, Any]:
        """The row to insert: JSON columns encoded, unset columns left out."""
        return _encoded(self)


@dataclass(frozen=True)
class SearchRecord:
    """One ``autotune search`` run (a row of ``searches``): its key, state and verdict."""

    search_id: str | None = None
    model_digest: str | None = None
    model_name: str | None = None
    chip: str | None = None
    ort_version: str | None = None
    shapes: str | None = None
    default_shapes: int | None = None
    state: str | None = None  # a SearchState value
    started_at: str | None = None
    finished_at: str | None = None
    trials_requested: int | None = None
    trials_measured: int | None = None
    objective: str | None = None
    pick_config_id: str | None = None
    pick_config: str | None = field(default=None, metadata=_CONFIG)  # NULL: no pick
    pick_label: str | None = None
    pick_ratio: float | None = None
    pick_latency_ms_p50: float | None = None
    default_latency_ms_p50: float | None = None
    verdict: Any = field(default=None, metadata=_JSON)  # the head-to-head's figures per contender
    wall_s: float | None = None
    autotune_version: str | None = None
    host: str | None = None
    host_id: str | None = None
    user: str | None = None
    os: str | None = None
    outcome: str | None = None  # an Outcome value (NULL: written before outcomes existed)
    speedup: float | None = None  # ORT's default latency / the pick's (higher is better)
    speedup_low: float | None = None
    speedup_high: float | None = None
    aa_spread: float | None = None
    busy: Any = field(default=None, metadata=_JSON)
    error: str | None = None
    chip_descriptor: str | None = None  # the chip it was measured on (m005)
    thread_roles: str | None = None  # its thread counts as roles (all performance cores...)
    inputs_digest: str | None = None  # the --inputs data measured on (NULL: synthetic)
    accuracy: str | None = None  # its --accuracy: auto or a tier (m011)

    def __post_init__(self) -> None:
        _decode_fields(self)

    @property
    def done(self) -> bool:
        return self.state == SearchState.DONE

    @functools.cached_property
    def stored_verdict(self) -> StoredVerdict | None:
        """The verdict of a finished search (None while it is not done), read one way for every
        output and for apps: rows from before outcomes were stored are a pick when they hold
        one, else inconclusive (so is an outcome this autotune does not know); their speed-up
        comes from ``pick_ratio``. What it serves follows the outcome, whatever else the row
        holds: a pick's configuration, ORT's defaults for a default verdict, nothing when
        inconclusive; its label and id are the served configuration's own (a row's stored
        label is never shown for it). A verdict finished in the future is refused."""
        if not self.done:
            return None
        outcome = self.outcome or (Outcome.PICK if self.pick_config else Outcome.INCONCLUSIVE)
        if outcome not in tuple(Outcome):
            outcome = Outcome.INCONCLUSIVE
        speedup = None
        for value, invert in ((self.speedup, False), (self.pick_ratio, True)):
            if isinstance(value, float) and 0 < value < math.inf:
                speedup = 1 / value if invert else value
                break
        if outcome != Outcome.PICK:
            # inconclusive: none; a default verdict: ORT's defaults against themselves, 1,
            # whatever figure the row claims
            speedup = None if outcome == Outcome.INCONCLUSIVE else 1.0
        served = {Outcome.PICK: self.pick_config, Outcome.DEFAULT: DEFAULT_CONFIG.to_json()}
        config = served.get(Outcome(outcome))
        label, config_id = None, None
        if config is not None:
            try:
                parsed = SessionConfig.from_json(config)
                label, config_id = parsed.describe(), parsed.config_id
            except ConfigError:
                label = "a configuration autotune refuses"
        finished = finished_time(self.finished_at)
        refusal = None
        if finished is not None and finished > datetime.now(UTC) + CLOCK_SKEW:
            refusal = (
                f"the verdict of search {self.search_id!s:.80} finished in the future "
                f"({self.finished_at:.40}); not served"
            )
        reason = self.verdict.get("reason") if isinstance(self.verdict, dict) else None
        return StoredVerdict(
            outcome=outcome,
            pick_label=label,
            pick_config=config,
            pick_config_id=config_id,
            speedup=speedup,
            speedup_low=self.speedup_low,
            speedup_high=self.speedup_high,
            aa_spread=self.aa_spread,
            finished_at=self.finished_at,
            reason=reason if isinstance(reason, str) else None,
            refusal=refusal,
            accuracy=_accuracy_of(self.verdict, config_id),
        )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SearchRecord:
        return cls(**_columns_of(cls, row))

    def to_row(self) -> dict[str, Any]:
        """The row to upsert: JSON columns encoded, unset columns left out."""
        return _encoded(self)


@dataclass(frozen=True)
class ComparedEntry:
    """One contender of a finished search's head-to-head, as its verdict stores it (the JSON
    list ``verdict["compared"]``, written by ``autotune.tuning.head_to_head``). Read from a
    shared database, so every field is checked: a value of another type reads as None."""

    config_id: str | None = None
    config: str | None = None  # canonical SessionConfig JSON (only from_json reads it)
    label: str | None = None
    speedup: float | None = None  # ORT's default latency / this one's (higher is faster)
    speedup_low: float | None = None  # its 95% interval
    speedup_high: float | None = None
    process_speedups: tuple[float, ...] = ()  # one per fresh process
    ratio: float | None = None  # this latency / the default's (entries of older versions)
    latency_ms_p50: float | None = None
    latency_ms_p90: float | None = None
    eligible: bool = False
    why_not: str | None = None
    state: str | None = None  # eligible, below, held, load, dominated, inconsistent, open
    search_speedup: float | None = None  # the search phase's one-process estimate
    session_create_ms: float | None = None
    first_run_ms: float | None = None
    load_ms: float | None = None  # what each launch pays (a compiling EP: from its cache)
    cold_load_ms: float | None = None
    session_rss_mb: float | None = None
    accuracy: str | None = None  # the tier its outputs were judged at
    accuracy_why: str | None = None
    borrowed_from: str | None = None  # adapt: the sibling chip it came from
    rung: str | None = None

    @classmethod
    def read(cls, value: Any) -> ComparedEntry | None:
        """The entry a stored JSON object holds (wrong types dropped); None if not an object."""
        if not isinstance(value, dict):
            return None
        kept: dict[str, Any] = {}
        for f in fields(cls):
            v = value.get(f.name)
            if f.name == "process_speedups":
                numbers = (_number(x) for x in (v if isinstance(v, list) else []))
                kept[f.name] = tuple(x for x in numbers if x is not None)
            elif f.name == "eligible":
                kept[f.name] = v is True
            elif str(f.type) == "float | None":
                kept[f.name] = _number(v)
            else:
                kept[f.name] = v if isinstance(v, str) else None
        return cls(**kept)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["process_speedups"] = list(self.process_speedups)
        return out

    @property
    def load(self) -> float | None:
        """Its load time (entries of older versions: creation plus first run)."""
        if self.load_ms is not None:
            return self.load_ms
        if self.session_create_ms is None or self.first_run_ms is None:
            return None
        return self.session_create_ms + self.first_run_ms


def _number(value: Any) -> float | None:
    """A finite JSON number as a float; None for anything else (booleans too)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def compared_entries(verdict: Any) -> list[ComparedEntry]:
    """A stored verdict's head-to-head entries, the default first (unreadable ones left out)."""
    entries = verdict.get("compared") if isinstance(verdict, dict) else None
    read = (ComparedEntry.read(e) for e in (entries if isinstance(entries, list) else []))
    return [e for e in read if e is not None]


@dataclass(frozen=True)
class StoredVerdict:
    """A finished search's head-to-head verdict, as stored (``SearchRecord.stored_verdict``):
    what ``list``, ``show``, ``best``, the report and the resolver read, by one rule
    (:func:`served_verdicts`, :func:`current_verdict`). The decision itself is made by
    ``autotune.measure.verdict``."""

    outcome: str  # an Outcome value
    pick_label: str | None  # the served configuration's label
    pick_config: str | None  # what apps get: the pick, ORT's defaults, or None (inconclusive)
    pick_config_id: str | None
    speedup: float | None  # ORT's default latency / the pick's (higher is better)
    speedup_low: float | None  # its 95% interval
    speedup_high: float | None
    aa_spread: float | None  # how far the default's fresh processes disagreed
    finished_at: str | None
    reason: str | None
    refusal: str | None = None  # why it is never served (it finished in the future)
    accuracy: str | None = None  # the tier the served configuration was judged at, and why

    @property
    def served(self) -> bool:
        """Apps may get this verdict's configuration."""
        return self.refusal is None and self.pick_config is not None


def _accuracy_of(verdict: Any, config_id: str | None) -> str | None:
    """The accuracy tier the verdict recorded for configuration ``config_id``: ``fp16 (why)``
    when the search's ``--accuracy auto`` chose fp16 for it; None for verdicts before tiers."""
    for entry in compared_entries(verdict):
        if entry.config_id == config_id and entry.accuracy is not None:
            why = entry.accuracy_why
            return f"{entry.accuracy} ({why})" if why is not None else entry.accuracy
    return None


def finished_time(value: Any) -> datetime | None:
    """A stored ISO timestamp as an aware UTC time (a naive one is UTC); None if unreadable."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _newest_first(searches: Iterable[SearchRecord]) -> list[SearchRecord]:
    """Finished searches, newest first by their parsed finish time (unreadable: oldest)."""
    oldest = datetime.min.replace(tzinfo=UTC)
    done = [s for s in searches if s.done]
    return sorted(done, key=lambda s: finished_time(s.finished_at) or oldest, reverse=True)


def served_verdicts(searches: Iterable[SearchRecord]) -> list[SearchRecord]:
    """The searches of one layer whose verdict apps may get, in the order they are served:
    the one rule ``best_session``, ``best``, ``show``, ``list`` and the report share. Only
    finished searches with a pick or a default verdict, none finished in the future; the
    newest (by time, not by text) first."""
    out = []
    for search in _newest_first(searches):
        verdict = search.stored_verdict
        if verdict is not None and verdict.served:
            out.append(search)
    return out


def current_verdict(searches: Iterable[SearchRecord]) -> SearchRecord | None:
    """The search whose verdict ``show`` and ``list`` report for one layer: the first one
    :func:`served_verdicts` serves; with none, the newest finished one that is not from the
    future (an inconclusive verdict, which serves nothing)."""
    searches = list(searches)
    served = served_verdicts(searches)
    if served:
        return served[0]
    for search in _newest_first(searches):
        verdict = search.stored_verdict
        if verdict is not None and verdict.refusal is None:
            return search
    return None


def merged_host_id(host_id: Any) -> str:
    """The host id a row arriving by merge is stored with: its own, marked :data:`MERGED`."""
    text = host_id if isinstance(host_id, str) else ""
    return text if text.startswith(MERGED) else MERGED + text


_PYTHON_TYPES = {"int | None": int, "float | None": float, "str | None": str, "Any": str}


def column_types(record: type[TrialRecord] | type[SearchRecord]) -> dict[str, type]:
    """Each column of the record's table and the Python type SQLite holds it as (JSON: str)."""
    return {f.name: _PYTHON_TYPES[str(f.type)] for f in fields(record)}


def json_columns(record: type[TrialRecord] | type[SearchRecord]) -> frozenset[str]:
    """The columns that hold JSON text (free-form or a configuration)."""
    return frozenset(f.name for f in fields(record) if f.metadata)


def as_plain(record: TrialRecord | SearchRecord) -> dict[str, Any]:
    """The record as a JSON-ready dict: every JSON column as an object, not a string."""
    out: dict[str, Any] = {}
    for f in fields(record):
        value = getattr(record, f.name)
        out[f.name] = decode_json(value) if f.metadata.get("config") else value
    return out


def decode_json(value: Any) -> Any:
    """A JSON column's value: decoded text, None for anything that is not JSON text."""
    if value is None or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return None


def _columns_of(record: type[TrialRecord] | type[SearchRecord], row: dict[str, Any]) -> Any:
    """The row's value for each of the record's fields (other keys are not columns: ignored)."""
    return {f.name: row.get(f.name) for f in fields(record)}


def _decode_fields(record: TrialRecord | SearchRecord) -> None:
    """JSON text given for a free-form JSON column is held decoded (whoever built the record)."""
    for f in fields(record):
        if f.metadata.get("json"):
            value = getattr(record, f.name)
            if isinstance(value, str):
                object.__setattr__(record, f.name, decode_json(value))


def _encoded(record: TrialRecord | SearchRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if value is None:
            continue
        if isinstance(value, StrEnum):
            value = value.value
        if f.metadata.get("json") and not isinstance(value, str):
            value = json.dumps(value, sort_keys=True)
        out[f.name] = value
    return out


@dataclass(frozen=True)
class KeySummary:
    """What ``autotune list`` shows for one result key: trial counts and the latest verdict."""

    model: str | None
    model_digest: str
    chip: str
    ort_version: str
    shapes: str
    trials: int = 0
    failed: int = 0
    outcome: str | None = None  # the latest finished search's Outcome (None: none finished)
    pick: str | None = None  # its pick's label
    speedup: float | None = None
    last: str = ""  # when the newest trial was measured
    statuses: dict[str, int] = field(default_factory=dict)  # trials per status
    searches: int = 0  # searches in any state


@dataclass(frozen=True)
class StoredChip:
    """A chip holding results of a model: its id, OS and (newer rows) its chip descriptor."""

    chip: str
    os: str | None
    chip_descriptor: str | None


@dataclass(frozen=True)
class ServingRecord:
    """One verdict of a serving objective (a row of ``serving``, m008): throughput at a
    concurrency, cold start, or a long run. ``pick`` is the picked arrangement or cold-start
    choice as JSON text (read by ``autotune.serving``); ``flags`` the long-run flags."""

    id: int | None = None
    search_id: str | None = None
    model_digest: str | None = None
    model_name: str | None = None
    chip: str | None = None
    ort_version: str | None = None
    os_build: str | None = None
    shapes: str | None = None
    objective: str | None = None  # throughput, coldstart, sustained or soak
    concurrency: int | None = None
    arrival: str | None = None  # closed, or poisson at ``qps``
    qps: float | None = None
    budget_ms: float | None = None  # the p99 budget (throughput) or warm-latency bound
    outcome: str | None = None  # an Outcome value
    pick: str | None = None  # JSON of what was picked (NULL: inconclusive)
    pick_label: str | None = None
    speedup: float | None = None  # the baseline's figure / the pick's (higher is better)
    speedup_low: float | None = None
    speedup_high: float | None = None
    aa_spread: float | None = None
    value: float | None = None  # the pick's figure: requests/s, or cold start in ms
    baseline_value: float | None = None
    flags: Any = field(default=None, metadata=_JSON)  # {label: [flag, ...]}
    details: Any = field(default=None, metadata=_JSON)  # every contender's figures, the reason
    created_at: str | None = None
    autotune_version: str | None = None

    def __post_init__(self) -> None:
        _decode_fields(self)  # type: ignore[arg-type]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ServingRecord:
        return cls(**{f.name: row.get(f.name) for f in fields(cls)})

    def to_row(self) -> dict[str, Any]:
        return _encoded(self)  # type: ignore[arg-type]


@dataclass(frozen=True)
class PipelineRecord:
    """One pipeline search's verdict (a row of ``pipelines``, m009): keyed by the pipeline's
    key (its stages' model digests and call pattern), chip and ORT version. ``arrangement`` is
    what apps get (JSON: a configuration per stage, the thread pool); NULL when inconclusive.
    ``outcome``: pick (a joint arrangement beat both baselines), stage_picks, default or
    inconclusive."""

    pipeline_id: str | None = None
    pipeline_key: str | None = None
    name: str | None = None
    chip: str | None = None
    ort_version: str | None = None
    pattern: Any = field(default=None, metadata=_JSON)  # stages, digests, steps
    outcome: str | None = None
    arrangement: str | None = None
    label: str | None = None
    speedup_vs_defaults: float | None = None
    speedup_vs_picks: float | None = None
    details: Any = field(default=None, metadata=_JSON)  # every contender's figures and memory
    created_at: str | None = None
    autotune_version: str | None = None
    host_id: str | None = None

    def __post_init__(self) -> None:
        _decode_fields(self)  # type: ignore[arg-type]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> PipelineRecord:
        return cls(**{f.name: row.get(f.name) for f in fields(cls)})

    def to_row(self) -> dict[str, Any]:
        return _encoded(self)  # type: ignore[arg-type]
