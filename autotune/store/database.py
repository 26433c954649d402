"""The tuning database: one plain SQLite file per layer, written with sqlite-utils.

Tables (readable as they are in sqlite-utils or datasette):

``trials``    one row per measured configuration: key (model digest, chip, ORT version, input
              shapes), the configuration as canonical JSON, status, every figure, provenance.
``searches``  one row per ``autotune search`` run: its key, state, and the final verdict (the
              configuration picked after the head-to-head re-measurement).

Several databases may be layered: the first is the writable personal one, the rest are opened
read-only (team databases, possibly inside a read-only app bundle). Lookups read all layers.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    import sqlite_utils

from autotune.errors import DatabaseError
from autotune.paths import database_paths
from autotune.store.records import (
    KeySummary,
    PipelineRecord,
    SearchRecord,
    SearchState,
    StoredChip,
    TrialRecord,
    column_types,
    current_verdict,
    json_columns,
)

MIGRATION_SET = "autotune"
# the names of autotune.store.schema's migrations; a database with others is from a newer autotune
KNOWN_MIGRATIONS = frozenset(
    {
        "m001_initial",
        "m002_cached_load_time",
        "m003_verdict",
        "m005_chip_descriptor",
        "m007_inputs_digest",
        "m008_serving",
        "m009_pipelines",
        "m010_apple_chip_ids",
        "m011_accuracy_tiers",
    }
)
SQLITE_HEADER = b"SQLite format 3\x00"


def __getattr__(name: str) -> Any:
    if name == "migrations":  # loaded lazily: it imports sqlite-utils
        from autotune.store.schema import migrations

        return migrations
    raise AttributeError(name)


# the columns holding JSON text, of either table
JSON_COLUMNS = json_columns(TrialRecord) | json_columns(SearchRecord)


@dataclass(frozen=True)
class ResultKey:
    """What a result is valid for."""

    model_digest: str
    chip: str
    ort_version: str
    shapes: str


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise DatabaseError(f"database {path} is a directory; give a file path with --db")
    if path.exists() and path.stat().st_size > 0:
        try:
            with open(path, "rb") as f:
                header = f.read(16)
        except OSError as exc:
            raise DatabaseError(f"database {path} cannot be read ({exc.strerror})") from None
        if header != SQLITE_HEADER:
            raise DatabaseError(
                f"{path} is not a SQLite database; point --db or AUTOTUNE_DB at an autotune "
                "database or a new file"
            )


def _check_schema(conn: sqlite3.Connection, path: Path) -> set[str]:
    """Refuse a database that is not autotune's or is newer; return its table names."""
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        applied: set[str] = set()
        if "_sqlite_migrations" in tables:
            applied = {
                r[0]
                for r in conn.execute(
                    "SELECT name FROM _sqlite_migrations WHERE migration_set = ?", [MIGRATION_SET]
                )
            }
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"database {path} is damaged ({exc}); restore it from a copy") from None
    newer = applied - KNOWN_MIGRATIONS
    if newer:
        raise DatabaseError(
            f"database {path} was written by a newer autotune (schema {sorted(newer)[-1]}); "
            "upgrade this autotune (see its README)"
        )
    if not applied and tables - {"_sqlite_migrations"}:
        raise DatabaseError(
            f"database {path} is not an autotune database (tables: {', '.join(sorted(tables))}); "
            "give another file with --db"
        )
    return tables


def open_writable(path: Path) -> sqlite_utils.Database:
    """Open (creating and migrating as needed) the writable database."""
    import sqlite_utils

    from autotune.store.schema import migrations

    _check_file(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 30000")
        _check_schema(conn, path)
        db = sqlite_utils.Database(conn)
        _enable_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        if migrations.pending(db):
            # the write lock first, so two processes creating one database at once migrate it
            # once; the migrations run as savepoints inside this transaction
            with write_transaction(conn):
                migrations.apply(db)
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"database {path} cannot be opened ({exc}); check the file") from None
    except OSError as exc:
        raise DatabaseError(f"database {path} cannot be created ({exc.strerror})") from None
    return db


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """The one way autotune writes: a transaction that takes the write lock first (BEGIN
    IMMEDIATE), so it waits for other writers (the busy timeout) instead of failing on a stale
    read snapshot with "database is locked"; rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _enable_wal(conn: sqlite3.Connection, timeout: float = 30.0) -> None:
    """Switch to WAL, retrying while another process holds the lock (the pragma does not wait
    for the busy timeout when several processes create one database at once)."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() == "wal":
                return
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def connect_readonly(path: Path) -> sqlite3.Connection | None:
    """A read-only connection (rows as dicts); None if the file does not exist or is empty.
    Works in read-only directories (a database shipped inside an app bundle)."""
    opened = _open_reader(path)
    return opened[0] if opened else None


def _open_reader(path: Path) -> tuple[sqlite3.Connection, set[str]] | None:
    """``connect_readonly`` and the database's table names (one query fewer for lookups)."""
    if not path.exists():
        return None
    _check_file(path)
    if path.stat().st_size == 0:
        return None
    uri = f"file:{quote(str(path.resolve()))}"
    for suffix in ("?mode=ro", "?immutable=1"):
        conn = sqlite3.connect(uri + suffix, uri=True, timeout=30)
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.OperationalError:
            conn.close()
            continue  # e.g. a WAL database in a read-only directory: retry as immutable
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise DatabaseError(
                f"database {path} is damaged or not SQLite ({exc}); give another file"
            ) from None
        try:
            tables = _check_schema(conn, path)
        except DatabaseError:
            conn.close()
            raise
        conn.row_factory = _dict_row
        return conn, tables
    raise DatabaseError(f"database {path} cannot be opened read-only; check its permissions")


def open_readonly(path: Path) -> sqlite_utils.Database | None:
    """Like :func:`connect_readonly`, as a sqlite-utils Database (None without a trials table)."""
    import sqlite_utils

    conn = connect_readonly(path)
    if conn is None:
        return None
    conn.row_factory = None
    db = sqlite_utils.Database(conn)
    return db if "trials" in db.table_names() else None


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {d[0]: v for d, v in zip(cursor.description, row, strict=True)}


def _tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {r["name"] if isinstance(r, dict) else r[0] for r in rows}


# Every column of the two tables and its Python type (the records' fields): what a read returns
# for each row, whatever the layer holds (a missing column or a value of another type reads as
# None). A test checks it against the migrations.
COLUMNS: dict[str, dict[str, type]] = {
    "trials": column_types(TrialRecord),
    "searches": column_types(SearchRecord),
    "pipelines": column_types(PipelineRecord),  # type: ignore[arg-type]
}
# A layer without one of these columns is not an autotune database: it is skipped.
REQUIRED_COLUMNS = {
    "trials": ("trial_uid", "model_digest", "chip", "ort_version", "shapes", "config_id",
               "config", "status"),
    "searches": ("search_id", "model_digest", "chip", "ort_version", "shapes", "state",
                 "pick_config"),
    "pipelines": ("pipeline_id", "pipeline_key", "chip", "ort_version"),
}  # fmt: skip
MAX_VALUE_CHARS = 65536  # a longer text value (or any blob) reads as None
MAX_ROWS_PER_KEY = 2000  # lookups consider at most this many rows per key and layer, newest first


def _plain_columns(conn: sqlite3.Connection, table: str) -> set[str]:
    """The table's stored columns; raises _Unusable for a virtual table or generated columns
    (they compute values at read time: a lookup never runs a layer's SQL)."""
    row = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [table]
    ).fetchone()
    sql = (row["sql"] if isinstance(row, dict) else row[0]) if row else ""
    if isinstance(sql, str) and sql.lstrip()[:14].upper() == "CREATE VIRTUAL":
        raise _Unusable(f"{table} is a virtual table")
    present: set[str] = set()
    for info in conn.execute(f'PRAGMA table_xinfo("{table}")').fetchall():
        values = list(info.values()) if isinstance(info, dict) else list(info)
        name, hidden = values[1], values[6]
        if hidden in (2, 3):
            raise _Unusable(f"{table}.{name} is a generated column")
        present.add(str(name))
    missing = [c for c in REQUIRED_COLUMNS[table] if c not in present]
    if missing:
        raise _Unusable(f"{table} has no {missing[0]} column")
    return present


class _Unusable(Exception):
    """A layer that is SQLite but not a plain autotune database."""


@dataclass
class Layer:
    """One opened database of the stack: its position (0: the personal, writable one), its
    connection and the columns of each table it has."""

    index: int
    path: Path
    conn: sqlite3.Connection
    columns: dict[str, set[str]]


def _clean_value(kind: type, value: Any) -> Any:
    if value is None:
        return None
    if kind is str:
        return value if isinstance(value, str) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if kind is int:
        return value if isinstance(value, int) else None
    return None if value != value else float(value)  # NaN reads as None


class Store:
    """The layered tuning database. Reads use plain sqlite3 (fast to import: the run-time path);
    the writable layer is also wrapped by sqlite-utils for inserts.

    A read-only layer that cannot be used (not SQLite, damaged, not autotune's, from a newer
    autotune, a table without a key column, a virtual table or generated columns) is skipped:
    its reason is kept in ``problems`` (one line per layer) and the other layers are still read.
    A layer that fails in the middle of a read (a damaged page) is dropped the same way."""

    def __init__(self, paths: list[Path], *, write: bool) -> None:
        self.paths = paths
        self.writable: sqlite_utils.Database | None = None
        self.layers: list[Layer] = []
        self.problems: list[str] = []
        for i, path in enumerate(paths):
            conn: sqlite3.Connection | None = None
            try:
                if i == 0 and write:
                    self.writable = open_writable(path)  # errors here are the caller's
                    conn = sqlite3.connect(str(path), timeout=30)
                    conn.execute("PRAGMA busy_timeout = 30000")
                    conn.row_factory = _dict_row
                    tables = _tables(conn)
                else:
                    opened = _open_reader(path)
                    if opened is None:
                        continue
                    conn, tables = opened
                conn.execute("PRAGMA trusted_schema = OFF")
                columns = {t: _plain_columns(conn, t) for t in COLUMNS if t in tables}
            except (DatabaseError, _Unusable, sqlite3.DatabaseError) as exc:
                if conn is not None:
                    conn.close()
                if i == 0 and write:
                    if isinstance(exc, DatabaseError):
                        raise
                    raise DatabaseError(f"database {path} cannot be used ({exc})") from None
                self._skip(path, exc)
                continue
            self.layers.append(Layer(i, path, conn, columns))

    def _skip(self, path: Path, exc: BaseException) -> None:
        text = str(exc)
        if isinstance(exc, _Unusable):
            text = f"database {path} is not a plain autotune database ({exc})"
        elif not isinstance(exc, DatabaseError):
            text = f"database {path} cannot be read ({exc})"
        self.problems.append(text)

    @classmethod
    def open(cls, explicit: str | None = None, *, write: bool = False) -> Store:
        return cls(database_paths(explicit), write=write)

    def close(self) -> None:
        for layer in self.layers:
            layer.conn.close()
        if self.writable is not None:
            self.writable.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------
    def _db(self) -> sqlite_utils.Database:
        if self.writable is None:
            raise DatabaseError("the database was opened read-only")
        return self.writable

    @contextmanager
    def _write(self) -> Iterator[sqlite_utils.Database]:
        """A short write transaction on the writable layer (``write_transaction``)."""
        db = self._db()
        with write_transaction(db.conn):
            yield db

    def record_trial(self, trial: TrialRecord) -> None:
        """Insert one trial in its own short transaction (durable at once, WAL)."""
        with self._write() as db:
            db["trials"].insert(trial.to_row())  # type: ignore[union-attr]

    def upsert_search(self, search: SearchRecord) -> None:
        """Insert or update a search's row (its unset fields keep what is stored)."""
        with self._write() as db:
            db["searches"].upsert(search.to_row(), pk="search_id")  # type: ignore[union-attr]

    def mark_abandoned(self, model_digest: str, host_id: str) -> int:
        """Searches of this model on this host still marked running, from a process that was
        killed (kill -9, a power cut): the caller holds the model's search lock, so none of them
        is alive. They are marked interrupted. Returns how many."""
        with self._write() as db:
            cursor = db.conn.execute(
                "UPDATE searches SET state = ? "
                "WHERE state = ? AND model_digest = ? AND host_id = ?",
                [SearchState.INTERRUPTED.value, SearchState.RUNNING.value, model_digest, host_id],
            )
            return int(cursor.rowcount)

    def record_pipeline(self, record: PipelineRecord) -> None:
        """Insert one pipeline verdict (``autotune.pipeline``) in its own short transaction."""
        with self._write() as db:
            db["pipelines"].insert(record.to_row())  # type: ignore[union-attr]

    # -- reading ---------------------------------------------------------------------------
    def pipeline_verdicts(
        self, pipeline_key: str, chip: str | None = None, ort_version: str | None = None
    ) -> list[PipelineRecord]:
        """Verdicts of this pipeline (on this chip, of this ORT version, when given): layer by
        layer, the personal one first, each layer's newest first."""
        where, params = "pipeline_key = ?", [pipeline_key]
        if chip is not None:
            where += " and chip = ?"
            params.append(chip)
        if ort_version is not None:
            where += " and ort_version = ?"
            params.append(ort_version)
        rows: list[dict[str, Any]] = []
        for layer in list(self.layers):
            found = self._rows("pipelines", where, params, "created_at", layer=layer.index)
            rows += reversed(found)
        return [PipelineRecord.from_row(r) for r in rows]

    def _select(
        self,
        layer: Layer,
        table: str,
        where: str,
        params: list[Any],
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Rows of one layer, every column of ``COLUMNS`` (None where the layer lacks it or holds
        another type, a blob or a text longer than ``MAX_VALUE_CHARS``), oldest first (or the
        newest ``limit``). A layer that fails here is dropped with its reason in ``problems``."""
        if table not in layer.columns or layer not in self.layers:
            return []
        present = layer.columns[table]
        kinds = COLUMNS[table]
        parts = []
        for c in kinds:
            if c not in present:
                parts.append(f'NULL AS "{c}"')
            else:
                parts.append(
                    f"CASE WHEN typeof(\"{c}\") = 'blob' OR (typeof(\"{c}\") = 'text' AND "
                    f'length("{c}") > {MAX_VALUE_CHARS}) THEN NULL ELSE "{c}" END AS "{c}"'
                )
        # table, where and columns are this module's own constants; values are bound parameters
        sql = f'SELECT rowid AS _r, {", ".join(parts)} FROM "{table}" WHERE {where}'
        if limit is not None:
            sql = f"SELECT * FROM ({sql} ORDER BY rowid DESC LIMIT {int(limit)})"
        try:
            raw = layer.conn.execute(sql + " ORDER BY _r", params).fetchall()
        except sqlite3.DatabaseError as exc:
            self.layers.remove(layer)
            layer.conn.close()
            self._skip(layer.path, exc)
            return []
        out = []
        for r in raw:
            r.pop("_r", None)
            out.append({c: _clean_value(k, r[c]) for c, k in kinds.items()})
        return out

    def _rows(
        self,
        table: str,
        where: str,
        params: list[Any],
        order: str | None = None,
        *,
        layer: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Rows of every layer (or one), layer by layer; each layer's oldest first, or sorted
        by the text column ``order``."""
        out: list[dict[str, Any]] = []
        for one in list(self.layers):
            if layer is None or one.index == layer:
                rows = self._select(one, table, where, params, limit)
                if order is not None:
                    rows.sort(key=lambda r: r[order] or "")
                out += rows
        return out

    def trials(
        self,
        key: ResultKey,
        *,
        any_ort: bool = False,
        layer: int | None = None,
        own: bool = False,
        search_ids: list[str] | None = None,
        limit: int | None = None,
    ) -> list[TrialRecord]:
        """Trials of ``key`` (of any ORT version if asked), over every layer or one.
        ``own``: only this machine's own measurements (the writable layer, this host's id;
        a merged row's host id is marked ``merged:``, so it never is one), the only ones a
        search lets set its slow-phase floor or skip configurations.
        ``search_ids``: only trials of these searches. ``limit``: the newest per layer."""
        where, params = _key_filter(key, any_ort)
        if search_ids is not None:
            if not search_ids:
                return []
            where += f" and search_id IN ({', '.join('?' * len(search_ids))})"
            params += search_ids
        if own:
            if self.writable is None:
                return []
            from autotune.chip import provenance

            where += " and host_id = ?"
            params.append(provenance()["host_id"])
            layer = 0
        rows = _dedupe(self._rows("trials", where, params, layer=layer, limit=limit), "trial_uid")
        return [TrialRecord.from_row(r) for r in rows]

    def trials_of_model(self, model_digest: str, chip: str | None = None) -> list[TrialRecord]:
        where, params = "model_digest = ?", [model_digest]
        if chip:
            where += " and chip = ?"
            params.append(chip)
        rows = _dedupe(self._rows("trials", where, params), "trial_uid")
        return [TrialRecord.from_row(r) for r in rows]

    def every_trial(self) -> list[TrialRecord]:
        """Every trial of every layer, each once (``trial_uid``)."""
        return [
            TrialRecord.from_row(r) for r in _dedupe(self._rows("trials", "1 = 1", []), "trial_uid")
        ]

    def every_search(self) -> list[SearchRecord]:
        """Every search of every layer, each once (``search_id``)."""
        rows = _dedupe(self._rows("searches", "1 = 1", []), "search_id")
        return [SearchRecord.from_row(r) for r in rows]

    def searches(
        self,
        key: ResultKey,
        *,
        any_ort: bool = False,
        layer: int | None = None,
        limit: int | None = None,
    ) -> list[SearchRecord]:
        """Searches of ``key``, oldest first."""
        where, params = _key_filter(key, any_ort)
        rows = _dedupe(self._rows("searches", where, params, layer=layer, limit=limit), "search_id")
        rows.sort(key=lambda r: r["started_at"] or "")
        return [SearchRecord.from_row(r) for r in rows]

    def latest_search(self, model_digest: str, chip: str) -> SearchRecord | None:
        """The finished search of this model on this chip (any shapes) whose verdict ``show``
        reports, from the first layer that has one (the personal layer's verdicts come first,
        as in lookups), chosen by the lookup's rule (``records.current_verdict``)."""
        for layer in list(self.layers):
            rows = self._rows(
                "searches",
                "model_digest = ? and chip = ? and state = ?",
                [model_digest, chip, SearchState.DONE.value],
                layer=layer.index,
            )
            found = current_verdict(SearchRecord.from_row(r) for r in rows)
            if found is not None:
                return found
        return None

    def shape_signatures(self, model_digest: str, chip: str) -> list[tuple[str, int]]:
        """(shapes, default_shapes) pairs stored for this model on this chip."""
        seen: dict[str, int] = {}
        sql = (
            "SELECT shapes, max(CASE WHEN typeof(default_shapes) = 'integer' "
            "AND default_shapes = 1 THEN 1 ELSE 0 END) AS d FROM trials "
            "WHERE model_digest = ? AND chip = ? AND typeof(shapes) = 'text' "
            f"AND length(shapes) <= {MAX_VALUE_CHARS} GROUP BY shapes"
        )
        for layer in list(self.layers):
            if "trials" not in layer.columns:
                continue
            try:
                rows = layer.conn.execute(sql, [model_digest, chip]).fetchall()
            except sqlite3.DatabaseError as exc:
                self.layers.remove(layer)
                layer.conn.close()
                self._skip(layer.path, exc)
                continue
            for row in rows:
                seen[row["shapes"]] = max(seen.get(row["shapes"], 0), int(row["d"] or 0))
        return sorted(seen.items())

    def chips_of_model(self, model_digest: str) -> list[StoredChip]:
        """One row per chip holding trials of this model: its chip id, os and (newer rows)
        its stored chip descriptor; what the fallback ladder chooses from (text values only,
        capped like every read, at most MAX_ROWS_PER_KEY chips per layer)."""
        seen: dict[str, StoredChip] = {}
        for layer in list(self.layers):
            columns = layer.columns.get("trials")
            if columns is None:
                continue
            descriptor = "chip_descriptor" if "chip_descriptor" in columns else "NULL"
            os_column = "os" if "os" in columns else "NULL"
            sql = (
                f"SELECT chip, max({os_column}) AS os, max({descriptor}) AS chip_descriptor "
                "FROM trials WHERE model_digest = ? AND typeof(chip) = 'text' "
                f"AND length(chip) <= {MAX_VALUE_CHARS} GROUP BY chip LIMIT {MAX_ROWS_PER_KEY}"
            )
            try:
                rows = layer.conn.execute(sql, [model_digest]).fetchall()
            except sqlite3.DatabaseError as exc:
                self.layers.remove(layer)
                layer.conn.close()
                self._skip(layer.path, exc)
                continue
            for row in rows:
                clean = {
                    k: v if isinstance(v, str) and len(v) <= MAX_VALUE_CHARS else None
                    for k, v in row.items()
                }
                chip = clean["chip"]
                if chip is not None:
                    seen.setdefault(chip, StoredChip(chip, clean["os"], clean["chip_descriptor"]))
        return [seen[c] for c in sorted(seen)]

    def key_counts(self) -> list[KeySummary]:
        """The one aggregation of what the layers hold: per model × chip × ORT version × shapes,
        every trial and search counted once (trial counts by status, searches in any state),
        the model's name and the newest trial's time. A part a row lacks is "". ``summary``
        adds the verdicts; ``sharing.stats`` rolls the rows up per model × chip."""
        groups: dict[tuple[str, str, str, str], dict[str, Any]] = {}

        def group(row: TrialRecord | SearchRecord) -> dict[str, Any]:
            k = (row.model_digest, row.chip, row.ort_version, row.shapes)
            new: dict[str, Any] = {
                "model": None,
                "trials": 0,
                "failed": 0,
                "statuses": {},
                "searches": 0,
            }
            g = groups.setdefault(tuple(part or "" for part in k), new)  # type: ignore[arg-type]
            g["model"] = g["model"] or row.model_name
            return g

        for trial in self.every_trial():
            g = group(trial)
            g["trials"] += 1
            g["failed"] += 0 if trial.measured else 1
            status = trial.status or "unknown"
            g["statuses"][status] = g["statuses"].get(status, 0) + 1
            g["last"] = max(g.get("last", ""), trial.created_at or "")
        for search in self.every_search():
            group(search)["searches"] += 1
        return [
            KeySummary(model_digest=d, chip=c, ort_version=v, shapes=sh, **g)
            for (d, c, v, sh), g in groups.items()
        ]

    def summary(self) -> list[KeySummary]:
        """One row per model × chip × ORT version × shapes with trials: trial counts and the
        latest finished search's verdict (its outcome and speed-up; trial estimates are not
        verdicts)."""
        # each search once (its copy in the first layer holding it); per key, the verdict of
        # the first layer holding one (the personal layer's verdicts come first, as in
        # lookups), chosen by the lookup's rule (``records.current_verdict``)
        verdicts: dict[tuple[Any, ...], Any] = {}
        seen: set[str] = set()
        for layer in list(self.layers):
            rows = self._rows("searches", "state = ?", [SearchState.DONE.value], layer=layer.index)
            by_key: dict[tuple[Any, ...], list[SearchRecord]] = {}
            for r in _dedupe(rows, "search_id"):
                if r["search_id"] not in seen:
                    k = (r["model_digest"], r["chip"], r["ort_version"], r["shapes"])
                    by_key.setdefault(k, []).append(SearchRecord.from_row(r))
            seen.update(r["search_id"] for r in rows if r["search_id"] is not None)
            for k, searches in by_key.items():
                current = current_verdict(searches)
                if current and current.stored_verdict and k not in verdicts:
                    verdicts[k] = current.stored_verdict
        out = []
        for row in self.key_counts():
            k = (row.model_digest, row.chip, row.ort_version, row.shapes)
            if not row.trials or "" in k:
                continue
            verdict = verdicts.get(k)
            if verdict is not None:
                row = replace(
                    row, outcome=verdict.outcome, pick=verdict.pick_label, speedup=verdict.speedup
                )
            out.append(row)
        return sorted(out, key=lambda g: (g.model or "", g.chip, g.shapes))


def _key_filter(key: ResultKey, any_ort: bool) -> tuple[str, list[Any]]:
    """WHERE clause and parameters selecting one result key (any ORT version if asked)."""
    where = "model_digest = ? and chip = ? and shapes = ?"
    params: list[Any] = [key.model_digest, key.chip, key.shapes]
    if not any_ort:
        where += " and ort_version = ?"
        params.append(key.ort_version)
    return where, params


def _dedupe(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """The same trial may sit in several layers (a team database and a personal copy)."""
    seen: set[Any] = set()
    out = []
    for row in rows:
        if row[key] is None or row[key] in seen:
            continue
        seen.add(row[key])
        out.append(row)
    return out
