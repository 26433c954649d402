"""The ``serving`` table's reads and writes (its SQL lives here, in the store): verdicts of
the throughput, cold-start and long-run objectives. Reads use the layers' plain sqlite3
connections (the run-time path: ``autotune.best_serving``), newest first, the personal layer
before the others."""

from __future__ import annotations

import sqlite3
from typing import Any

from autotune.store.database import Store, _clean_value, write_transaction
from autotune.store.records import ServingRecord, column_types

TABLE = "serving"
COLUMN_TYPES = column_types(ServingRecord)  # type: ignore[arg-type]


def record_serving(store: Store, record: ServingRecord) -> None:
    """Insert one serving verdict in its own short transaction."""
    db = store.writable
    if db is None:
        from autotune.errors import DatabaseError

        raise DatabaseError("the database was opened read-only")
    with write_transaction(db.conn):
        db[TABLE].insert(record.to_row())  # type: ignore[union-attr]


def _has_table(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [TABLE]
    ).fetchone()
    return row is not None


def _record(row: dict[str, Any], present: set[str]) -> ServingRecord:
    cleaned = {
        name: _clean_value(kind, row.get(name)) if name in present else None
        for name, kind in COLUMN_TYPES.items()
    }
    return ServingRecord.from_row(cleaned)


def serving_verdicts(
    store: Store,
    model_digest: str,
    chip: str,
    *,
    objective: str | None,
    concurrency: int | None = None,
    arrival: str | None = None,
    ort_version: str | None = None,
) -> list[ServingRecord]:
    """Stored verdicts of ``objective`` (None: every objective) for a model on a chip (and
    concurrency, arrival and ORT version when given): the personal layer first, newest first
    within a layer."""
    out: list[ServingRecord] = []
    for layer in store.layers:
        conn = layer.conn
        try:
            if not _has_table(conn):
                continue
            present = {
                (r["name"] if isinstance(r, dict) else r[1])
                for r in conn.execute(f'PRAGMA table_info("{TABLE}")').fetchall()
            }
            where = ["model_digest = ?", "chip = ?"]
            args: list[Any] = [model_digest, chip]
            for column, value in (
                ("objective", objective),
                ("concurrency", concurrency),
                ("arrival", arrival),
                ("ort_version", ort_version),
            ):
                if value is not None:
                    where.append(f"{column} = ?")
                    args.append(value)
            cursor = conn.execute(
                f"SELECT * FROM {TABLE} WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT 200",
                args,
            )
            names = [d[0] for d in cursor.description]
            for values in cursor.fetchall():
                row = values if isinstance(values, dict) else dict(zip(names, values, strict=True))
                out.append(_record(row, present))
        except sqlite3.DatabaseError as exc:
            store.problems.append(f"database {layer.path} cannot be read ({exc})")
    return out
