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

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    import sqlite_utils

from autotune.errors import DatabaseError
from autotune.paths import database_paths

MIGRATION_SET = "autotune"
# the names of autotune.schema's migrations; a database with others is from a newer autotune
KNOWN_MIGRATIONS = frozenset(
    {"m001_initial", "m002_cached_load_time", "m003_verdict", "m005_chip_descriptor"}
)
SQLITE_HEADER = b"SQLite format 3\x00"


def __getattr__(name: str) -> Any:
    if name == "migrations":  # loaded lazily: it imports sqlite-utils
        from autotune.schema import migrations

        return migrations
    raise AttributeError(name)


JSON_COLUMNS = {
    "config",
    "placement",
    "params",
    "ort_build",
    "pick_config",
    "verdict",
    "ratios",
    "busy",
}


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
            "upgrade autotune with: pip install -U autotune"
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

    from autotune.schema import migrations

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
            # IMMEDIATE takes the write lock first, so two processes creating one database at
            # once migrate it once; the migrations run as savepoints inside this transaction.
            conn.execute("BEGIN IMMEDIATE")
            try:
                migrations.apply(db)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"database {path} cannot be opened ({exc}); check the file") from None
    except OSError as exc:
        raise DatabaseError(f"database {path} cannot be created ({exc.strerror})") from None
    return db


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


class Store:
    """The layered tuning database. Reads use plain sqlite3 (fast to import: the run-time path);
    the writable layer is also wrapped by sqlite-utils for inserts."""

    def __init__(self, paths: list[Path], *, write: bool) -> None:
        self.paths = paths
        self.writable: sqlite_utils.Database | None = None
        self.layers: list[tuple[sqlite3.Connection, set[str]]] = []
        for i, path in enumerate(paths):
            if i == 0 and write:
                self.writable = open_writable(path)
                reader = sqlite3.connect(str(path), timeout=30)
                reader.execute("PRAGMA busy_timeout = 30000")
                reader.row_factory = _dict_row
                self.layers.append((reader, _tables(reader)))
            else:
                opened = _open_reader(path)
                if opened is not None:
                    self.layers.append(opened)

    @classmethod
    def open(cls, explicit: str | None = None, *, write: bool = False) -> Store:
        return cls(database_paths(explicit), write=write)

    def close(self) -> None:
        for conn, _ in self.layers:
            conn.close()
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
        """A short write transaction that takes the write lock first (BEGIN IMMEDIATE), so it
        waits for other writers (busy timeout) instead of failing on a stale read snapshot."""
        db = self._db()
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise
        db.conn.execute("COMMIT")

    def record_trial(self, row: dict[str, Any]) -> None:
        """Insert one trial in its own short transaction (durable at once, WAL)."""
        with self._write() as db:
            db["trials"].insert(_encode(row))  # type: ignore[union-attr]

    def upsert_search(self, row: dict[str, Any]) -> None:
        with self._write() as db:
            db["searches"].upsert(_encode(row), pk="search_id")  # type: ignore[union-attr]

    def mark_abandoned(self, model_digest: str, host_id: str) -> int:
        """Searches of this model on this host still marked running, from a process that was
        killed (kill -9, a power cut): the caller holds the model's search lock, so none of them
        is alive. They are marked interrupted. Returns how many."""
        with self._write() as db:
            cursor = db.conn.execute(
                "UPDATE searches SET state = 'interrupted' "
                "WHERE state = 'running' AND model_digest = ? AND host_id = ?",
                [model_digest, host_id],
            )
            return int(cursor.rowcount)

    # -- reading ---------------------------------------------------------------------------
    def _rows(
        self, table: str, where: str, params: list[Any], order: str | None = None
    ) -> list[dict[str, Any]]:
        # table, where and order are this module's own constants; values are bound parameters
        sql = f"SELECT * FROM {table} WHERE {where}" + (f" ORDER BY {order}" if order else "")
        out: list[dict[str, Any]] = []
        for conn, tables in self.layers:
            if table in tables:
                out += conn.execute(sql, params).fetchall()
        return out

    def trials(self, key: ResultKey, *, any_ort: bool = False) -> list[dict[str, Any]]:
        where, params = _key_filter(key, any_ort)
        return _dedupe(self._rows("trials", where, params, "id"), "trial_uid")

    def trials_of_model(self, model_digest: str, chip: str | None = None) -> list[dict[str, Any]]:
        where, params = "model_digest = ?", [model_digest]
        if chip:
            where += " and chip = ?"
            params.append(chip)
        return _dedupe(self._rows("trials", where, params, "id"), "trial_uid")

    def searches(self, key: ResultKey, *, any_ort: bool = False) -> list[dict[str, Any]]:
        where, params = _key_filter(key, any_ort)
        return _dedupe(self._rows("searches", where, params, "started_at"), "search_id")

    def latest_search(self, model_digest: str, chip: str) -> dict[str, Any] | None:
        """The most recently finished search of this model on this chip (any shapes)."""
        rows = self._rows(
            "searches", "model_digest = ? and chip = ? and state = 'done'", [model_digest, chip]
        )
        return max(rows, key=lambda r: r["finished_at"] or "", default=None)

    def shape_signatures(self, model_digest: str, chip: str) -> list[tuple[str, int]]:
        """(shapes, default_shapes) pairs stored for this model on this chip."""
        seen: dict[str, int] = {}
        sql = (
            "SELECT shapes, max(coalesce(default_shapes, 0)) AS d FROM trials "
            "WHERE model_digest = ? AND chip = ? GROUP BY shapes"
        )
        for conn, tables in self.layers:
            if "trials" in tables:
                for row in conn.execute(sql, [model_digest, chip]):
                    seen[row["shapes"]] = max(seen.get(row["shapes"], 0), row["d"] or 0)
        return sorted(seen.items())

    def chips_of_model(self, model_digest: str) -> list[dict[str, Any]]:
        """One row per chip holding trials of this model: its chip id, os and (newer rows)
        its stored chip descriptor; what the fallback ladder chooses from."""
        seen: dict[str, dict[str, Any]] = {}
        for conn, tables in self.layers:
            if "trials" not in tables:
                continue
            columns = {
                r["name"] if isinstance(r, dict) else r[1]
                for r in conn.execute("PRAGMA table_info(trials)")
            }
            descriptor = "chip_descriptor" if "chip_descriptor" in columns else "NULL"
            sql = (
                f"SELECT chip, max(os) AS os, max({descriptor}) AS chip_descriptor FROM trials "
                "WHERE model_digest = ? GROUP BY chip"
            )
            for row in conn.execute(sql, [model_digest]):
                seen.setdefault(row["chip"], row)
        return [seen[c] for c in sorted(seen)]

    def summary(self) -> list[dict[str, Any]]:
        """One row per model × chip × ORT version × shapes: trial counts and the latest
        finished search's verdict (its outcome and speed-up; trial estimates are not verdicts)."""
        groups: dict[tuple[str, ...], dict[str, Any]] = {}
        rows = _dedupe(self._rows("trials", "1 = 1", [], "id"), "trial_uid")
        for row in rows:
            k = (row["model_digest"], row["chip"], row["ort_version"], row["shapes"])
            g = groups.setdefault(
                k,
                {
                    "model": row["model_name"],
                    "model_digest": row["model_digest"],
                    "chip": row["chip"],
                    "ort_version": row["ort_version"],
                    "shapes": row["shapes"],
                    "trials": 0,
                    "failed": 0,
                    "outcome": None,
                    "pick": None,
                    "speedup": None,
                    "last": "",
                },
            )
            g["trials"] += 1
            if row["status"] not in ("ok", "pruned"):
                g["failed"] += 1
            g["last"] = max(g["last"], row["created_at"] or "")
        searches = _dedupe(self._rows("searches", "state = 'done'", [], "finished_at"), "search_id")
        for search in searches:  # oldest first: the latest verdict of a group stays
            k = (search["model_digest"], search["chip"], search["ort_version"], search["shapes"])
            if k in groups:
                legacy = "pick" if search.get("pick_config") else "inconclusive"
                groups[k]["outcome"] = search.get("outcome") or legacy
                groups[k]["pick"] = search.get("pick_label")
                ratio = search.get("pick_ratio")
                groups[k]["speedup"] = search.get("speedup") or (1 / ratio if ratio else None)
        return sorted(groups.values(), key=lambda g: (g["model"] or "", g["chip"], g["shapes"]))


def _key_filter(key: ResultKey, any_ort: bool) -> tuple[str, list[Any]]:
    """WHERE clause and parameters selecting one result key (any ORT version if asked)."""
    where = "model_digest = ? and chip = ? and shapes = ?"
    params: list[Any] = [key.model_digest, key.chip, key.shapes]
    if not any_ort:
        where += " and ort_version = ?"
        params.append(key.ort_version)
    return where, params


def _encode(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if k in JSON_COLUMNS and v is not None and not isinstance(v, str):
            v = json.dumps(v, sort_keys=True)
        out[k] = v
    return out


def _dedupe(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """The same trial may sit in several layers (a team database and a personal copy)."""
    seen: set[Any] = set()
    out = []
    for row in rows:
        if row[key] in seen:
            continue
        seen.add(row[key])
        out.append(row)
    return out


def decode_json(value: Any) -> Any:
    if value is None or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return None
