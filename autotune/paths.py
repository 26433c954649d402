"""Where autotune keeps its files: the tuning database(s) and its cache.

``AUTOTUNE_DB`` (or ``--db``) wins and may list several databases separated by the OS path
separator (the first is written, the others are read-only team databases); otherwise a per-user
data directory. ``AUTOTUNE_CACHE_DIR`` overrides the cache (model digests, compiled-model caches).
"""

from __future__ import annotations

import os
from pathlib import Path

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
