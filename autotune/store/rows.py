"""Plain rows of the two tables, for export and merge: every SQL statement they run.

:mod:`autotune.store.sharing` moves rows between databases without turning them into records
(a row from a shared file is untrusted until it is validated, and unknown columns are counted,
not kept). It reads and writes only through this module, so that the store package owns every
statement. Table and column names always come from this autotune's schema (the caller passes
them), never from a source; values are always bound as parameters; nothing in a source (views,
triggers, SQL text) is executed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune.errors import DatabaseError, printable
from autotune.store.database import open_readonly, open_writable, write_transaction

Row = dict[str, Any]


@dataclass
class SourceTables:
    """What :func:`read_source` found: each known table's columns and rows (the known columns
    only), and the names of the tables and columns this schema does not have."""

    rows: dict[str, list[Row]] = field(default_factory=dict)
    other_tables: list[str] = field(default_factory=list)
    other_columns: dict[str, list[str]] = field(default_factory=dict)


def read_source(
    path: Path,
    schema: Mapping[str, Collection[str]],
    keys: Mapping[str, str],
    *,
    max_text_chars: int,
    ignored_columns: frozenset[str] = frozenset(),
) -> SourceTables | None:
    """Read every row of ``schema``'s tables from an untrusted autotune database, read-only.

    None if the file holds no autotune results (empty, or no trials table). A value that is a
    blob, or a text longer than ``max_text_chars``, reads as ``b"\\x00"`` (never loaded: SQLite's
    ``typeof()`` does not read the value), for the caller to refuse. Raises DatabaseError if the
    file is damaged, not SQLite, from a newer autotune, or one of the tables is not a plain table
    with its key column (a view, a virtual table, a generated column).
    """
    db = open_readonly(path)  # refuses non-SQLite files, foreign and newer databases
    if db is None:
        return None
    conn = db.conn
    found = SourceTables()
    try:
        conn.execute("PRAGMA trusted_schema = OFF")
        conn.execute("PRAGMA query_only = ON")
        check = conn.execute("PRAGMA quick_check").fetchone()
        if not check or check[0] != "ok":
            raise DatabaseError(f"database {path} is damaged; restore it from a copy")
        master = {
            name: (kind, sql or "")
            for kind, name, sql in conn.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE type IN ('table', 'view')"
            )
        }
        found.other_tables = [
            name
            for name in master
            if name not in schema and name != "_sqlite_migrations" and name[:7] != "sqlite_"
        ]
        for table, columns in schema.items():
            found.rows[table] = []
            if table not in master:
                continue  # e.g. an older autotune's database
            kind, sql = master[table]
            if kind != "table" or sql.lstrip()[:14].upper() == "CREATE VIRTUAL":
                raise DatabaseError(
                    f"{path} is not an autotune database ({table} is not a plain table); "
                    "give another file"
                )
            info = conn.execute(f'PRAGMA table_xinfo("{table}")').fetchall()
            generated = [r[1] for r in info if r[6] in (2, 3)]
            if generated:
                raise DatabaseError(
                    f"{path} is not an autotune database ({table}.{printable(generated[0], 40)} "
                    "is a generated column); give another file"
                )
            present = [r[1] for r in info]
            known = [c for c in columns if c in present]
            found.other_columns[table] = [
                c for c in present if c not in columns and c not in ignored_columns
            ]
            if keys[table] not in known:
                raise DatabaseError(
                    f"{path} is not an autotune database ({table} has no {keys[table]} "
                    "column); give another file"
                )
            names = ", ".join(
                f"CASE WHEN typeof(\"{c}\") = 'blob' OR (typeof(\"{c}\") = 'text' AND "
                f'length("{c}") > {int(max_text_chars)}) THEN X\'00\' ELSE "{c}" END'
                for c in known
            )
            found.rows[table] = [
                dict(zip(known, values, strict=True))
                for values in conn.execute(f'SELECT {names} FROM "{table}"')
            ]
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"database {path} cannot be read ({exc}); give another file") from None
    finally:
        conn.close()
    return found


class RowWriter:
    """Rows written inside one write transaction (:func:`writing`)."""

    def __init__(self, conn: sqlite3.Connection, keys: Mapping[str, str]) -> None:
        self._conn = conn
        self._keys = keys

    def insert(self, table: str, columns: Sequence[str], row: Row) -> None:
        self._conn.execute(_insert_sql(table, columns), [row.get(c) for c in columns])

    def insert_new(self, table: str, columns: Sequence[str], row: Row) -> bool:
        """Insert ``row`` unless a row with its key is present; True if it was inserted."""
        sql = _insert_sql(table, columns) + f' ON CONFLICT("{self._keys[table]}") DO NOTHING'
        return self._conn.execute(sql, [row.get(c) for c in columns]).rowcount == 1

    def find(self, table: str, columns: Sequence[str], key: str) -> Row | None:
        """The stored row with this key (``columns`` only), or None."""
        names = ", ".join(f'"{c}"' for c in columns)
        sql = f'SELECT {names} FROM "{table}" WHERE "{self._keys[table]}" = ?'
        found = self._conn.execute(sql, [key]).fetchone()
        return None if found is None else dict(zip(columns, found, strict=True))

    def replace(self, table: str, columns: Sequence[str], row: Row) -> None:
        """Overwrite the stored row with ``row``'s key by ``row``."""
        key = self._keys[table]
        rest = [c for c in columns if c != key]
        assignments = ", ".join(f'"{c}" = ?' for c in rest)
        sql = f'UPDATE "{table}" SET {assignments} WHERE "{key}" = ?'
        self._conn.execute(sql, [*(row.get(c) for c in rest), row[key]])


@contextmanager
def writing(
    path: Path, keys: Mapping[str, str], *, self_contained: bool = False
) -> Iterator[RowWriter]:
    """A :class:`RowWriter` on the database at ``path`` (created and migrated if missing), all
    its writes in one transaction: committed when the block ends, rolled back on any error.
    ``self_contained``: leave one file (rollback journal, no ``-wal``/``-shm`` beside it), as an
    export that is copied around must be."""
    conn = open_writable(path).conn
    try:
        with write_transaction(conn):
            yield RowWriter(conn, keys)
        if self_contained:
            conn.execute("PRAGMA journal_mode = DELETE")
    finally:
        conn.close()


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})'
