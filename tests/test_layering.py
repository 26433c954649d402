"""The store package owns every SQL statement on the tuning database (issue 11): the commands,
the search, the outputs and sharing read and write through it."""

from __future__ import annotations

import re
from pathlib import Path

import autotune

PACKAGE = Path(autotune.__file__).parent
# the store, and the digest cache (its own small SQLite file beside the user's cache, not the
# tuning database)
OWNERS = {
    PACKAGE / "store" / "database.py",
    PACKAGE / "store" / "rows.py",
    PACKAGE / "store" / "schema.py",
    PACKAGE / "digest.py",
}
SQL = re.compile(r"\.execute(many|script)?\(|\bsqlite3\.connect\(|\bBEGIN IMMEDIATE\b")


def test_no_sql_outside_the_store() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in OWNERS
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if SQL.search(line)
    ]
    assert offenders == []


def test_the_check_finds_sql() -> None:
    assert SQL.search('    conn.execute("SELECT 1")')
    assert SQL.search("sqlite3.connect(path)")
    assert not SQL.search("executor.submit(job)")
