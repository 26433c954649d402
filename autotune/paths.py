"""Where autotune keeps its files: the tuning database(s) and its cache.

``AUTOTUNE_DB`` (or ``--db``) wins and may list several databases separated by the OS path
separator (the first is written, the others are read-only team databases); otherwise a per-user
data directory. ``AUTOTUNE_CACHE_DIR`` overrides the cache (model digests, compiled-model caches).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

import platformdirs


def database_paths(explicit: str | None = None) -> list[Path]:
    """The database list: ``explicit``, else ``$AUTOTUNE_DB``, else the per-user default."""
    value = explicit or os.environ.get("AUTOTUNE_DB")
    if value:
        return [Path(p).expanduser() for p in value.split(os.pathsep) if p]
    return [Path(platformdirs.user_data_dir("autotune", appauthor=False)) / "autotune.db"]


def cache_dir() -> Path:
    value = os.environ.get("AUTOTUNE_CACHE_DIR")
    if value:
        return Path(value).expanduser()
    return Path(platformdirs.user_cache_dir("autotune", appauthor=False))


def open_regular(path: str | os.PathLike[str]) -> BinaryIO | None:
    """``path`` opened for binary reading, or None if it is not a regular file (a FIFO, a
    device, a directory: reading one can block forever or never end). Opened without blocking,
    then checked, so a FIFO cannot hang the caller. Raises OSError if it cannot be opened."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
        if regular:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    if not regular:
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")
