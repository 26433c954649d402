"""An arrangement built and running: the sessions (or processes) and a thread-safe ``run``.

What ``autotune.best_serving`` returns, and what the throughput measurement drives, so that what
was measured is what an app gets. ``run`` may be called from any number of threads at once: a
request takes a free session (or process) and gives it back when done; ``run_as(client, ...)``
pins client ``i`` to session ``i % sessions`` (the measurement's N clients).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from multiprocessing.connection import Connection
from typing import Any

from autotune.build import build_session
from autotune.config import SessionConfig
from autotune.errors import SessionBuildError
from autotune.serving.arrangement import GLOBAL_POOL, PROCESSES, SHARED, Arrangement

_global_pool_lock = threading.Lock()
_global_pool_size: int | None = None


def _set_global_pool(threads: int) -> None:
    """Create ORT's process-wide intra-op pool once (``set_global_thread_pool_sizes``). From
    then on ORT refuses any new session of this process that has pools of its own ("use_per_
    session_threads must be false when using a global thread pool"; sessions built before keep
    theirs): an app serving from a global pool builds its other sessions on it too. A second
    arrangement asking for another size in the same process cannot have it."""
    import onnxruntime as ort

    global _global_pool_size
    with _global_pool_lock:
        if _global_pool_size is None:
            ort.set_global_thread_pool_sizes(threads, 1)
            _global_pool_size = threads
        elif _global_pool_size != threads:
            raise SessionBuildError(
                f"this process already has a global thread pool of "
                f"{_global_pool_size or 'default'} threads; an arrangement on "
                f"{threads or 'default'} threads needs its own process"
            )


def _build(model_path: str, config: SessionConfig, *, global_pool: bool) -> Any:
    import onnxruntime as ort

    from autotune.build import provider_list, session_options

    if not global_pool:
        return build_session(model_path, config)
    so = session_options(config)
    so.use_per_session_threads = False
    return ort.InferenceSession(model_path, sess_options=so, providers=provider_list(config, None))


def _serve(model_path: str, config_json: str, conn: Connection) -> None:
    """A serving process: one session; answers (output_names, feeds) with outputs or an
    error's text."""
    try:
        session = build_session(model_path, SessionConfig.from_json(config_json))
    except Exception as exc:  # noqa: BLE001 - sent to the parent, which raises
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request is None:
            return
        try:
            conn.send(("ok", session.run(*request)))
        except Exception as exc:  # noqa: BLE001 - sent to the parent, which raises
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class _Process:
    """One serving process and its pipe."""

    def __init__(self, model_path: str, config: SessionConfig) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_serve, args=(model_path, config.to_json(), child), daemon=True
        )
        self.process.start()
        child.close()
        try:
            kind, value = self.conn.recv()
        except EOFError:
            kind, value = "error", f"it exited with status {self.process.exitcode}"
        if kind != "ready":
            self.close()
            raise SessionBuildError(f"a serving process could not build its session: {value}")

    def run(self, output_names: Any, feeds: Any) -> Any:
        self.conn.send((output_names, feeds))
        kind, value = self.conn.recv()
        if kind != "ok":
            raise SessionBuildError(f"a serving process failed a request: {value}")
        return value

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class ServingPool:
    """The sessions of one arrangement. ``run(output_names, feeds)`` is safe from any thread;
    ``close()`` ends serving processes (also on ``with``)."""

    def __init__(self, model_path: str | os.PathLike[str], arrangement: Arrangement) -> None:
        self.arrangement = arrangement
        path, config = str(model_path), arrangement.config
        self.sessions: list[Any] = []
        try:
            if arrangement.kind == PROCESSES:
                self.sessions = [_Process(path, config) for _ in range(arrangement.sessions)]
            else:
                on_pool = arrangement.kind == GLOBAL_POOL
                if on_pool:
                    _set_global_pool(arrangement.pool_threads)
                self.sessions = [
                    _build(path, config, global_pool=on_pool) for _ in range(arrangement.sessions)
                ]
        except BaseException:
            self.close()
            raise
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for s in self.sessions:
            self._free.put(s)

    def run(self, output_names: Any, feeds: dict[str, Any]) -> Any:
        """One inference on a free session (waits for one when all are busy)."""
        if self.arrangement.kind == SHARED:
            return self.sessions[0].run(output_names, feeds)
        session = self._free.get()
        try:
            return session.run(output_names, feeds)
        finally:
            self._free.put(session)

    def run_as(self, client: int, output_names: Any, feeds: dict[str, Any]) -> Any:
        """One inference on client ``client``'s own session (``client % sessions``)."""
        return self.sessions[client % len(self.sessions)].run(output_names, feeds)

    def close(self) -> None:
        for s in self.sessions:
            if isinstance(s, _Process):
                s.close()
        self.sessions = []

    def __enter__(self) -> ServingPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
