"""Sharing results with a team: export, merge and summarize tuning databases.

Each machine exports its results (:func:`export`) to a self-contained SQLite file or to JSON
lines (one row a line, sorted stably, so a change reviews as a diff in git). The files are
committed; someone merges them (:func:`merge`) into a team database, which everyone layers
read-only after their personal one (``AUTOTUNE_DB=personal.db:team.db``).

Every row read from a source is untrusted input. Values are only ever bound as SQL parameters
(column and table names come from this schema, never from a source), and nothing in a source is
executed: no views, triggers or SQL text. Rows whose columns have the wrong types are skipped and
counted; columns and tables this schema does not know are dropped and counted. Configurations
are not interpreted here: a lookup validates each one (``autotune.providers.validate_config``)
before it reaches ONNX Runtime, so an unknown or unsafe option in a shared database is refused
there.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from autotune.descriptor import canonical_row
from autotune.errors import AutotuneError, DatabaseError, printable
from autotune.paths import database_paths, open_regular
from autotune.store.database import COLUMNS, JSON_COLUMNS, Store
from autotune.store.records import SearchState, Status, merged_host_id
from autotune.store.rows import RowWriter, read_source, writing

# export order of the tables, their keys, and the stable order of their rows (append-friendly:
# new results sort last, so a re-export diffs as added lines)
TABLES = ("searches", "trials")
KEYS = {"trials": "trial_uid", "searches": "search_id"}
ORDER = {"trials": "created_at", "searches": "started_at"}
# tables of this schema that export and merge do not carry (serving and pipeline verdicts):
# not reported as unknown
NOT_SHARED = frozenset({"serving", "pipelines"})
# columns that only mean something in one file: the local row id
LOCAL_COLUMNS = frozenset({"id"})
# columns that must hold a non-empty string: a trial's key (NOT NULL in the schema), a search's id
REQUIRED = {
    "trials": frozenset(
        {"trial_uid", "model_digest", "chip", "ort_version", "shapes", "config_id"}
    ),
    "searches": frozenset({"search_id"}),
}

MAX_KEY_CHARS = 256  # a trial_uid or search_id (ours are 32 hex digits)
MAX_TEXT_CHARS = 1 << 20  # any one text value
MAX_LINE_BYTES = 16 << 20  # one line of a .jsonl file
MAX_SOURCE_BYTES = 1 << 30  # one source file (.db or .jsonl)
MAX_NAMES_SHOWN = 10  # unknown columns or tables named in a merge summary
_INT64 = 1 << 63

Kind = type[str] | type[int] | type[float]
# table -> column -> Python type of the column (the schema of this autotune, without ``id``)
Schema = dict[str, dict[str, Kind]]
Row = dict[str, Any]


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote."""

    path: Path
    format: Literal["sqlite", "jsonl"]
    trials: int
    searches: int

    def summary(self) -> str:
        return f"exported {self.trials} trials and {self.searches} searches to {self.path}"


@dataclass
class MergeReport:
    """What :func:`merge` did with one source. ``trials`` counts every trial row read."""

    source: str
    trials_new: int = 0
    trials_present: int = 0
    trials_skipped: int = 0
    searches_new: int = 0
    searches_updated: int = 0
    searches_present: int = 0
    searches_beside: int = 0
    searches_skipped: int = 0
    unknown_columns: set[str] = field(default_factory=set)
    unknown_tables: set[str] = field(default_factory=set)

    @property
    def trials(self) -> int:
        return self.trials_new + self.trials_present + self.trials_skipped

    @property
    def searches(self) -> int:
        return (
            self.searches_new + self.searches_updated + self.searches_present + self.searches_beside
        )

    def summary(self) -> str:
        """One line: ``merged N trials (M new, K already present, S skipped) and P searches``."""
        text = (
            f"merged {self.trials} trials ({self.trials_new} new, {self.trials_present} already "
            f"present, {self.trials_skipped} skipped) and {self.searches} searches from "
            f"{self.source}"
        )
        if self.searches_beside:
            text += (
                f"; kept {self.searches_beside} search rows beside a different stored row of "
                "the same search"
            )
        if self.searches_skipped:
            text += f"; skipped {self.searches_skipped} malformed search rows"
        if self.unknown_columns:
            text += f"; dropped unknown columns: {_names(self.unknown_columns)}"
        if self.unknown_tables:
            text += f"; ignored unknown tables: {_names(self.unknown_tables)}"
        return text

    def _skip(self, table: str) -> None:
        if table == "trials":
            self.trials_skipped += 1
        else:
            self.searches_skipped += 1


def _names(names: set[str]) -> str:
    """At most ``MAX_NAMES_SHOWN`` names, then how many more."""
    shown = sorted(names)[:MAX_NAMES_SHOWN]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")


@dataclass(frozen=True)
class StatsRow:
    """Counts for one model on one chip."""

    model: str | None
    model_digest: str
    chip: str
    trials: int
    statuses: dict[str, int]
    searches: int
    ort_versions: tuple[str, ...]


@dataclass(frozen=True)
class Stats:
    """What the databases hold: one row per model × chip, and totals."""

    databases: tuple[str, ...]
    rows: tuple[StatsRow, ...]

    @property
    def trials(self) -> int:
        return sum(r.trials for r in self.rows)

    @property
    def searches(self) -> int:
        return sum(r.searches for r in self.rows)

    @property
    def statuses(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            for status, n in r.statuses.items():
                out[status] = out.get(status, 0) + n
        return dict(sorted(out.items(), key=lambda kv: _status_order(kv[0])))

    @property
    def models(self) -> int:
        return len({r.model_digest for r in self.rows})

    @property
    def chips(self) -> tuple[str, ...]:
        return tuple(sorted({r.chip for r in self.rows}))

    @property
    def ort_versions(self) -> tuple[str, ...]:
        return tuple(sorted({v for r in self.rows for v in r.ort_versions}))

    def to_dict(self) -> dict[str, Any]:
        return {
            "databases": list(self.databases),
            "models": self.models,
            "chips": list(self.chips),
            "ort_versions": list(self.ort_versions),
            "trials": self.trials,
            "searches": self.searches,
            "statuses": self.statuses,
            "rows": [
                {
                    "model": r.model,
                    "model_digest": r.model_digest,
                    "chip": r.chip,
                    "trials": r.trials,
                    "statuses": r.statuses,
                    "searches": r.searches,
                    "ort_versions": list(r.ort_versions),
                }
                for r in self.rows
            ],
        }


# -- export -------------------------------------------------------------------------------

EXPORT_SUFFIXES = (".jsonl", ".db", ".sqlite", ".sqlite3")


def export(
    out: str | os.PathLike[str],
    *,
    model: str | None = None,
    chip: str | None = None,
    db: str | None = None,
    force: bool = False,
) -> ExportResult:
    """Write the results of one database to ``out``: JSON lines if it ends in ``.jsonl``, else a
    new self-contained SQLite database with this schema.

    The source is ``db``, else the first (personal) database of ``AUTOTUNE_DB``. ``model``
    keeps one model (its file name, or a prefix of its SHA-256 digest); ``chip`` keeps chips
    whose id contains it. ``out`` is written whole or not at all (a temporary file is renamed).

    Raises AutotuneError if ``out`` exists (without ``force``), is a directory, is the source,
    or if the filters match nothing; DatabaseError if the source is missing, not SQLite, not an
    autotune database, from a newer autotune, or if ``out`` cannot be written.
    """
    out = Path(out)
    source = database_paths(db)[0]
    if out.is_dir():
        raise AutotuneError(f"{out} is a directory; give a file name ending in .jsonl or .db")
    if out.suffix.lower() not in EXPORT_SUFFIXES:
        raise AutotuneError(f"{out}: give a name ending in .jsonl (JSON lines) or .db (SQLite)")
    if not out.parent.is_dir():
        raise DatabaseError(
            f"cannot write the export to {out} (no directory {out.parent}); create it first"
        )
    if out.exists():
        if source.exists() and out.resolve() == source.resolve():
            raise AutotuneError(f"{out} is the database being exported; give another file")
        if not force:
            raise AutotuneError(f"{out} exists; give --force to overwrite it")
    schema = expected_schema()
    report = MergeReport(str(source))
    rows = _read_sqlite(source, schema, report, missing="export")
    kept = {table: [r for r in rows[table] if _matches(r, model, chip)] for table in TABLES}
    if (model or chip) and not any(kept.values()):
        given = " ".join(f"--{k} {v!r}" for k, v in (("model", model), ("chip", chip)) if v)
        raise AutotuneError(
            f"no results match {given} in {source}; see what it holds with: autotune db stats"
        )
    for table in TABLES:
        kept[table].sort(key=functools.partial(_sort_key, table))
    jsonl = out.suffix.lower() == ".jsonl"
    try:
        if jsonl:
            _write_jsonl(out, kept)
        else:
            _write_sqlite(out, schema, kept)
    except OSError as exc:
        raise DatabaseError(f"{out} cannot be written ({exc.strerror}); check the path") from None
    return ExportResult(
        out, "jsonl" if jsonl else "sqlite", len(kept["trials"]), len(kept["searches"])
    )


def _matches(row: Row, model: str | None, chip: str | None) -> bool:
    if model:
        names = {model, Path(model).name}
        digest = row.get("model_digest") or ""
        if row.get("model_name") not in names and not digest.startswith(model.lower()):
            return False
    return not chip or chip in (row.get("chip") or "")


def _sort_key(table: str, row: Row) -> tuple[str, str]:
    return (row.get(ORDER[table]) or "", row[KEYS[table]])


def _jsonl_line(table: str, row: Row) -> str:
    obj: Row = {"table": table}
    for k in sorted(row):
        v = row[k]
        if isinstance(v, float) and not math.isfinite(v):
            v = _NON_FINITE[repr(v)]  # strict JSON has no Infinity: a string, read back by merge
        if v is not None:
            obj[k] = v
    return json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n"


def _write_jsonl(out: Path, rows: dict[str, list[Row]]) -> None:
    tmp = _temporary(out)
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for table in TABLES:
                for row in rows[table]:
                    f.write(_jsonl_line(table, row))
        os.replace(tmp, out)
    finally:
        _remove(tmp)


def _write_sqlite(out: Path, schema: Schema, rows: dict[str, list[Row]]) -> None:
    tmp = _temporary(out)
    _remove(tmp)
    try:
        with writing(tmp, KEYS, self_contained=True) as writer:
            for table in TABLES:
                columns = list(schema[table])
                for row in rows[table]:
                    writer.insert(table, columns, row)
        for suffix in ("-wal", "-shm", "-journal"):  # stale companions of an overwritten file
            _remove(Path(f"{out}{suffix}"))
        os.replace(tmp, out)
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"{out} cannot be written ({exc}); check the path") from None
    finally:
        _remove(tmp)


def _temporary(out: Path) -> Path:
    return out.with_name(f".{out.name}.{os.getpid()}.tmp")


def _remove(path: Path) -> None:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


# -- merge --------------------------------------------------------------------------------


def merge(
    sources: Sequence[str | os.PathLike[str]], *, into: str | os.PathLike[str] | None = None
) -> list[MergeReport]:
    """Merge exported databases (``.db``) or JSON lines (``.jsonl``) into one database.

    The target is ``into``, else the first (personal) database of ``AUTOTUNE_DB``; it is created
    if missing. A trial is identified by its ``trial_uid``: one already present is left as it is,
    so merging the same source twice changes nothing and results from different machines and
    people all remain. A search is identified by its ``search_id``: a new one is added; a stored
    row that is not ``done`` (running, interrupted, failed) is replaced by a ``done`` one or one
    that finished later; a stored ``done`` row (a verdict) is never replaced or erased: a
    different row of the same search is kept beside it, under the id ``<search_id>~<hash of the
    row>`` (merging it again finds it present). The resolver serves, per database, the newest
    finished verdict with a pick; a row without a pick never hides one. Every source is read and
    checked first, then all are written in one transaction: on any error, the target is left
    unchanged. A source larger than ``MAX_SOURCE_BYTES``, or that is not a regular file (a
    FIFO), is refused. Every row merged in keeps its provenance: its ``host_id`` is stored
    marked ``merged:``, so it never counts as this machine's own measurement in a search
    (the slow-phase floor, configurations never measured again), whatever host id it claims.

    Returns one report per source. Raises DatabaseError if a source is missing, not SQLite, not
    an autotune database, from a newer autotune, or a ``.jsonl`` line is not a JSON object
    (naming the file and line), or if the target cannot be opened or written; AutotuneError if
    no source is given.
    """
    if not sources:
        raise AutotuneError("give at least one database or .jsonl file to merge")
    schema = expected_schema()
    loaded: list[tuple[dict[str, list[Row]], MergeReport]] = []
    for src in sources:
        path = Path(src)
        report = MergeReport(str(path))
        _check_source(path)
        if path.suffix.lower() == ".jsonl":
            rows = _read_jsonl(path, schema, report)
        else:
            rows = _read_sqlite(path, schema, report, missing="merge")
        loaded.append((rows, report))
    target = Path(into) if into is not None else database_paths()[0]
    try:
        with writing(target, KEYS) as writer:
            for rows, report in loaded:
                _merge_trials(writer, schema, rows["trials"], report)
                _merge_searches(writer, schema, rows["searches"], report)
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(
            f"database {target} cannot be written ({exc}); nothing was merged"
        ) from None
    return [report for _, report in loaded]


def _merge_trials(writer: RowWriter, schema: Schema, rows: list[Row], report: MergeReport) -> None:
    columns = list(schema["trials"])
    for row in sorted(rows, key=functools.partial(_sort_key, "trials")):
        row = _arrived(row)
        if writer.insert_new("trials", columns, row):
            report.trials_new += 1
        else:
            report.trials_present += 1


def _merge_searches(
    writer: RowWriter, schema: Schema, rows: list[Row], report: MergeReport
) -> None:
    columns = list(schema["searches"])
    for row in sorted(rows, key=functools.partial(_sort_key, "searches")):
        row = _arrived(row)
        old = writer.find("searches", columns, row["search_id"])
        if old is None:
            writer.insert("searches", columns, row)
            report.searches_new += 1
        elif all(_same(old[c], row.get(c)) for c in columns):
            report.searches_present += 1
        elif old["state"] != SearchState.DONE:
            # no verdict stored yet: a finished row, or one that got further, replaces it
            if _search_rank(row["state"], row["finished_at"]) > _search_rank(
                old["state"], old["finished_at"]
            ):
                writer.replace("searches", columns, row)
                report.searches_updated += 1
            else:
                report.searches_present += 1
        elif row["state"] != SearchState.DONE:
            report.searches_present += 1  # an unfinished snapshot of a search with a verdict
        else:
            # two different verdicts of one search id: the stored one stays, this one beside it
            beside = {**row, "search_id": f"{row['search_id'][:200]}~{_row_hash(row)}"}
            if writer.insert_new("searches", columns, beside):
                report.searches_beside += 1
            else:
                report.searches_present += 1


def _arrived(row: Row) -> Row:
    """The row as merge stores it: its host id marked as arrived by merge (``MERGED``), so no
    search here ever counts it as its own measurement, whatever host id it carries."""
    return {**row, "host_id": merged_host_id(row.get("host_id"))}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b and type(a) is type(b)) or (a is None and b is None)


def _row_hash(row: Row) -> str:
    text = json.dumps(row, sort_keys=True, default=str, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _search_rank(state: Any, finished_at: Any) -> tuple[bool, str]:
    """Which of two rows of one search to keep: a finished one, then the newest."""
    return (state == SearchState.DONE, finished_at if isinstance(finished_at, str) else "")


# -- reading untrusted sources ------------------------------------------------------------


def expected_schema() -> Schema:
    """This autotune's tables and column types (the records' fields; a test holds them against
    the migrations), less the columns that are local to each database."""
    return {
        table: {name: kind for name, kind in COLUMNS[table].items() if name not in LOCAL_COLUMNS}
        for table in TABLES
    }


def _check_source(path: Path) -> None:
    """Refuse, before anything is read, a source that is not a regular file (reading a FIFO
    blocks forever, a ``.db`` or a ``.jsonl`` alike) or is larger than ``MAX_SOURCE_BYTES``."""
    try:
        f = open_regular(path)
    except OSError:
        return  # missing or unreadable: reported by the reader, with the reason
    if f is None:
        raise DatabaseError(f"{path} {_not_regular(path)}; give an autotune database or a .jsonl")
    with f:
        size = os.fstat(f.fileno()).st_size
    if size > MAX_SOURCE_BYTES:
        raise DatabaseError(
            f"{path} is {size >> 20} MiB, more than the {MAX_SOURCE_BYTES >> 20} MiB a source may "
            "hold; export fewer results (--model, --chip) or merge in parts"
        )


def _not_regular(path: Path) -> str:
    return "is a directory" if path.is_dir() else "is not a regular file (a FIFO or a device)"


def _read_sqlite(
    path: Path, schema: Schema, report: MergeReport, *, missing: Literal["export", "merge"]
) -> dict[str, list[Row]]:
    if not path.exists():
        if missing == "export":
            raise DatabaseError(f"no database at {path}; run a search first or give --db")
        raise DatabaseError(f"{path}: no such file; give an autotune database or a .jsonl export")
    found = read_source(
        path, schema, KEYS, max_text_chars=MAX_TEXT_CHARS, ignored_columns=LOCAL_COLUMNS
    )
    if found is None:
        raise DatabaseError(
            f"{path} holds no autotune results (empty, or no trials table); give an autotune "
            "database or a .jsonl export"
        )
    report.unknown_tables.update(
        printable(name, 40) for name in found.other_tables if name not in NOT_SHARED
    )
    rows: dict[str, list[Row]] = {table: [] for table in TABLES}
    for table in TABLES:
        report.unknown_columns.update(
            f"{table}.{printable(c, 40)}" for c in found.other_columns.get(table, [])
        )
        for row in found.rows[table]:
            _accept(table, row, schema, report, rows)
    return rows


def _read_jsonl(path: Path, schema: Schema, report: MergeReport) -> dict[str, list[Row]]:
    rows: dict[str, list[Row]] = {table: [] for table in TABLES}
    try:
        f = open_regular(path)  # never blocks: a FIFO swapped in after the check is refused
    except FileNotFoundError:
        raise DatabaseError(
            f"{path}: no such file; give an autotune database or a .jsonl export"
        ) from None
    except OSError as exc:
        raise DatabaseError(f"{path} cannot be read ({exc.strerror})") from None
    if f is None:
        raise DatabaseError(f"{path} {_not_regular(path)}; give a .jsonl export")
    with f:
        for obj in _json_objects(path, f):
            table = obj.pop("table", None)
            if not isinstance(table, str) or table not in schema:
                report.unknown_tables.add(printable(table, 40))
                continue
            for c in obj:
                if c not in schema[table] and c not in LOCAL_COLUMNS:
                    report.unknown_columns.add(f"{table}.{printable(c, 40)}")
            row = {c: v for c, v in obj.items() if c in schema[table]}
            _accept(table, row, schema, report, rows)
    return rows


def _json_objects(path: Path, f: Any) -> Iterator[Row]:
    number = 0
    while True:
        number += 1
        try:
            raw: bytes = f.readline(MAX_LINE_BYTES + 1)
        except OSError as exc:
            raise DatabaseError(f"{path} cannot be read ({exc.strerror})") from None
        if not raw:
            return
        where = f"{path}, line {number}"
        if len(raw) > MAX_LINE_BYTES:
            raise DatabaseError(f"{where}: longer than {MAX_LINE_BYTES >> 20} MiB; not an export")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DatabaseError(
                f"{where}: not UTF-8 text; give a .jsonl file written by autotune db export"
            ) from None
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatabaseError(
                f"{where}: malformed JSON ({exc.msg} at column {exc.colno}); fix the line or "
                "export the file again"
            ) from None
        except (ValueError, RecursionError):
            raise DatabaseError(f"{where}: malformed JSON; fix the line or export again") from None
        if not isinstance(obj, dict):
            raise DatabaseError(
                f"{where}: not a JSON object; each line of an export is one row as an object"
            )
        yield obj


def _accept(
    table: str, row: Row, schema: Schema, report: MergeReport, out: dict[str, list[Row]]
) -> None:
    clean = _validated(table, row, schema[table])
    if clean is None:
        report._skip(table)
        return
    # an older autotune's Apple Silicon chip ids, as this one writes them (migration m010)
    canonical = canonical_row(clean["chip"] or "", clean.get("os"), clean.get("chip_descriptor"))
    if canonical is not None:
        clean["chip"], clean["chip_descriptor"] = canonical
    out[table].append(clean)


def _validated(table: str, row: Row, columns: dict[str, Kind]) -> Row | None:
    """The row with every column of the schema (None where absent), or None if malformed."""
    key = row.get(KEYS[table])
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_CHARS or not key.isprintable():
        return None
    clean: Row = {}
    for column, kind in columns.items():
        value = row.get(column)
        if value is None:
            if column in REQUIRED[table]:
                return None
        elif kind is str:
            if not isinstance(value, str) or len(value) > MAX_TEXT_CHARS:
                return None
            if column in REQUIRED[table] and not value:
                return None
            if column in JSON_COLUMNS and not _is_json(value):
                return None
        else:
            value = _number(kind, value)
            if value is None:
                return None
        clean[column] = value
    return clean


def _number(kind: Kind, value: Any) -> int | float | None:
    """An int for an INTEGER column, a float for a FLOAT one (from an int too), else None."""
    if kind is float and value in _NON_FINITE.values():
        return float(value)  # how an export writes an infinite error (an inaccurate trial)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            return None  # SQLite integers are 64-bit
        return value if kind is int else float(value)
    return value if kind is float else None


_NON_FINITE = {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


# -- stats --------------------------------------------------------------------------------


def stats(db: str | None = None) -> Stats:
    """Count trials (per status), searches and ORT versions per model × chip, over every layer
    of ``db`` (else ``AUTOTUNE_DB``); a trial or search in several layers counts once.

    Raises DatabaseError if a database is not SQLite, not an autotune database, or from a
    newer autotune.
    """
    paths = database_paths(db)
    with Store(paths, write=False) as store:
        keys = store.key_counts()
    if store.problems:  # stats counts everything or says what it cannot read
        raise DatabaseError(store.problems[0])
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for key in keys:  # the result keys rolled up per model × chip
        g = groups.setdefault(
            (key.model_digest, key.chip),
            {"name": None, "trials": 0, "statuses": {}, "searches": 0, "ort": set()},
        )
        g["name"] = g["name"] or key.model
        g["trials"] += key.trials
        g["searches"] += key.searches
        for status, count in key.statuses.items():
            g["statuses"][status] = g["statuses"].get(status, 0) + count
        if key.ort_version:
            g["ort"].add(key.ort_version)
    rows = [
        StatsRow(
            model=g["name"],
            model_digest=digest,
            chip=chip,
            trials=g["trials"],
            statuses=dict(sorted(g["statuses"].items(), key=lambda kv: _status_order(kv[0]))),
            searches=g["searches"],
            ort_versions=tuple(sorted(g["ort"])),
        )
        for (digest, chip), g in groups.items()
    ]
    rows.sort(key=lambda r: (r.model or "", r.model_digest, r.chip))
    return Stats(tuple(str(p) for p in paths), tuple(rows))


def _status_order(status: str) -> tuple[int, str]:
    return ({Status.OK.value: 0, Status.PRUNED.value: 1}.get(status, 2), status)
