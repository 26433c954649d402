"""The model's identity: SHA-256 of the file's bytes, cached by (path, size, mtime, inode).

A multi-hundred-MB model is hashed once; later calls (``best_session`` on every app start) cost a
stat and one indexed SQLite lookup. Nothing here imports onnx.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

from autotune.errors import ModelError
from autotune.paths import cache_dir

_memo: dict[tuple[str, int, int, int], str] = {}


def _stat_key(path: Path) -> tuple[str, int, int, int]:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ModelError(f"{path}: no such file; give the path of an .onnx model") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read it ({exc.strerror})") from None
    if path.is_dir():
        raise ModelError(f"{path} is a directory; give the path of an .onnx model file")
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _connect() -> sqlite3.Connection | None:
    try:
        directory = cache_dir()
        directory.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(directory / "digests.sqlite", timeout=5)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS digests (path TEXT, size INTEGER, mtime_ns INTEGER, "
            "inode INTEGER, sha256 TEXT, PRIMARY KEY (path, size, mtime_ns, inode))"
        )
        return conn
    except (OSError, sqlite3.Error):
        return None  # a read-only or broken cache only costs a re-hash


def model_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of the model file; raises ModelError if it is missing or a directory."""
    p = Path(path)
    key = _stat_key(p)
    if key in _memo:
        return _memo[key]
    conn = _connect()
    digest = None
    if conn is not None:
        try:
            row = conn.execute(
                "SELECT sha256 FROM digests WHERE path=? AND size=? AND mtime_ns=? AND inode=?",
                key,
            ).fetchone()
            digest = row[0] if row else None
        except sqlite3.Error:
            digest = None
    if digest is None:
        digest = _hash_file(p)
        if conn is not None:
            try:
                with conn:
                    conn.execute("DELETE FROM digests WHERE path=?", (key[0],))
                    conn.execute(
                        "INSERT OR REPLACE INTO digests VALUES (?,?,?,?,?)", (*key, digest)
                    )
            except sqlite3.Error:
                pass
    if conn is not None:
        conn.close()
    _memo[key] = digest
    return digest
