"""Optuna storages for a search shared by several workers: ``journal:/path`` (a journal file
on a shared file system) or an RDB URL (``postgresql://user@host/db``), opened with retries
(workers that start together on a new database race to create Optuna's tables)."""

from __future__ import annotations

import time
from typing import Any

from autotune.errors import SearchError


def open_storage(url: str | None) -> Any:
    """An Optuna storage: ``journal:/path`` (a journal file on a shared file system) or an RDB
    URL such as ``postgresql://user:pass@host/db``; None for an in-memory study."""
    if url is None:
        return None
    if url.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = url[len("journal:") :]
        if not path:
            raise SearchError(
                "--storage journal: needs a file path, e.g. journal:/shared/study.log"
            )
        return JournalStorage(JournalFileBackend(path))
    if "://" not in url:
        raise SearchError(
            f"--storage {url!r} is not a storage URL; use journal:/path/to/file or an RDB URL "
            "such as postgresql://user@host/db"
        )
    from optuna.storages import RDBStorage
    from sqlalchemy.exc import SQLAlchemyError

    scheme = url.split("://", 1)[0]
    attempt = 0
    while True:
        attempt += 1
        try:
            return RDBStorage(url)
        except ImportError:
            raise SearchError(
                f"--storage {scheme}://…: the database driver is not installed; for PostgreSQL: "
                "pip install 'psycopg[binary]'"
            ) from None
        except SQLAlchemyError as exc:
            # workers starting at once on a new database race to create Optuna's tables (on
            # PostgreSQL: "duplicate key ... pg_type_typname_nsp_index"): the loser retries
            if attempt == 5:
                reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:200]
                raise SearchError(
                    f"--storage {scheme}://…: cannot open the study database ({reason})"
                ) from None
            time.sleep(0.5 * attempt)
