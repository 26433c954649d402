"""The tuning database's rows as typed records: what every reader gets from the store.

Standard library only (``best_session()`` imports it). One place knows each column's type and
each status name: :class:`Status` (how a trial ended), :class:`SearchState` (where a search is),
:class:`Outcome` (what its head-to-head decided); :class:`TrialRecord` and
:class:`SearchRecord` have one field per column of the ``trials`` and ``searches`` tables, in
the schema's order, with the JSON columns decoded (a test holds them against the migrations).
The store builds them at its edge from rows it has already cleaned to these types (a shared
database is hostile input: a value of another type reads as None).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any


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

    def __post_init__(self) -> None:
        _decode_fields(self)

    @property
    def done(self) -> bool:
        return self.state == SearchState.DONE

    @property
    def stored_verdict(self) -> StoredVerdict | None:
        """The verdict of a finished search (None while it is not done), read one way for every
        output: rows from before outcomes were stored are a pick when they hold one, else
        inconclusive; their speed-up comes from ``pick_ratio``."""
        if not self.done:
            return None
        outcome = self.outcome or (Outcome.PICK if self.pick_config else Outcome.INCONCLUSIVE)
        speedup = None
        for value, invert in ((self.speedup, False), (self.pick_ratio, True)):
            if isinstance(value, float) and 0 < value < math.inf:
                speedup = 1 / value if invert else value
                break
        reason = self.verdict.get("reason") if isinstance(self.verdict, dict) else None
        return StoredVerdict(
            outcome=outcome,
            pick_label=self.pick_label,
            pick_config=self.pick_config,
            pick_config_id=self.pick_config_id,
            speedup=speedup if outcome != Outcome.INCONCLUSIVE else None,
            speedup_low=self.speedup_low,
            speedup_high=self.speedup_high,
            aa_spread=self.aa_spread,
            finished_at=self.finished_at,
            reason=reason if isinstance(reason, str) else None,
        )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SearchRecord:
        return cls(**_columns_of(cls, row))

    def to_row(self) -> dict[str, Any]:
        """The row to upsert: JSON columns encoded, unset columns left out."""
        return _encoded(self)


@dataclass(frozen=True)
class StoredVerdict:
    """A finished search's head-to-head verdict, as stored (``SearchRecord.stored_verdict``):
    what ``list``, ``show``, ``best`` and the report print. The decision itself is made by
    ``autotune.measure.verdict``."""

    outcome: str  # an Outcome value
    pick_label: str | None
    pick_config: str | None  # NULL: no pick (inconclusive)
    pick_config_id: str | None
    speedup: float | None  # ORT's default latency / the pick's (higher is better)
    speedup_low: float | None  # its 95% interval
    speedup_high: float | None
    aa_spread: float | None  # how far the default's fresh processes disagreed
    finished_at: str | None
    reason: str | None


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


@dataclass(frozen=True)
class StoredChip:
    """A chip holding results of a model: its id, OS and (newer rows) its chip descriptor."""

    chip: str
    os: str | None
    chip_descriptor: str | None
