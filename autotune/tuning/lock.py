"""One search per model at a time on this machine: two would disturb each other's timings.

A public lock, shared by ``autotune search`` and ``autotune adapt`` (which must not measure a
model while a search of it runs). An advisory ``flock`` on a file under autotune's cache
directory, named by the model's digest: it is released by the kernel when the process dies,
so a killed search never leaves a stale lock. The file holds the holder's pid for the message.
"""

from __future__ import annotations

import fcntl
import os

from autotune.errors import SearchError
from autotune.paths import cache_dir


class ModelLock:
    """One search per model at a time on this machine: two would disturb each other's timings."""

    def __init__(self, digest: str) -> None:
        directory = cache_dir() / "locks"
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{digest[:32]}.lock"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "another process"
            os.close(self.fd)
            raise SearchError(
                f"a search of this model is already running here (pid {other}); wait for it "
                "to finish, since two searches would disturb each other's timings"
            ) from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
