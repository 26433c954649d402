"""Fault-injecting worker entry points for the tests.

A real configuration that segfaults or hangs ONNX Runtime cannot be produced on demand, and
neither can two processes of one configuration that disagree every time, so these wrap the real
worker and inject the fault for one kind of configuration (one intra-op thread; the default's
fresh processes).

These are not the suite's only stand-ins. Every other one replaces something this machine
cannot be made to have, and says so where it is used:
- ``test_inspect.py``: onnxruntime's usability checker raising or logging (a checker failure);
- ``test_providers.py``: an ORT build that lists CoreML (``installed_providers``) and
  ``get_ep_devices`` answering with stand-in devices (other hardware);
- ``test_manifest.py``: ``resolver.current_chip``/``current_descriptor`` answering for another
  chip (Apple M3/M4 siblings, an AMD EPYC), to compare the two readers on the same data;
- spies that call the real function (``test_adapt.py``'s ``start_background``,
  ``test_model.py``'s ``_hash_file``) and a lowered size limit (``test_trust.py``).
Everything else runs the real onnxruntime, optuna, SQLite and PostgreSQL.
"""

from __future__ import annotations

import ctypes
import time
from typing import Any

from autotune import build as _build_module
from autotune.config import SessionConfig
from autotune.measure import worker as _worker_module
from autotune.measure.messages import ProcessSetup

worker: Any = _worker_module  # the session process's entry point
build: Any = _build_module  # its build_session is swapped for a faulty one in the child


def _swap(faulty: Any) -> None:
    """Every session the child builds goes through ``faulty`` (the trial's build, through
    ``autotune.build``, and the worker's own name for it)."""
    build.build_session = faulty
    worker.build_session = faulty


def _inject(fault: str) -> None:
    real_build = build.build_session

    def faulty(path: Any, config: SessionConfig, **kwargs: Any) -> Any:
        if config.intra_op_num_threads == 1:
            if fault == "crash":
                ctypes.string_at(0)  # a real segmentation fault in the worker process
            else:
                time.sleep(3600)  # a hang
        return real_build(path, config, **kwargs)

    _swap(faulty)


def crashing_worker(conn: Any, setup: ProcessSetup) -> None:
    _inject("crash")
    worker.worker_main(conn, setup)


def hanging_worker(conn: Any, setup: ProcessSetup) -> None:
    _inject("hang")
    worker.worker_main(conn, setup)


class _SlowSession:
    """A real session whose runs take ``delay`` seconds longer."""

    def __init__(self, session: Any, delay: float) -> None:
        self._session = session
        self._delay = delay

    def run(self, *args: Any, **kwargs: Any) -> Any:
        end = time.perf_counter() + self._delay
        out = self._session.run(*args, **kwargs)
        while time.perf_counter() < end:
            pass
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def slow_default_worker(conn: Any, setup: ProcessSetup) -> None:
    """Every fresh process of ORT's default configuration runs slower than the reference
    process (which runs the same configuration): the per-process disagreement seen on busy
    machines, made certain. The verdict must see the reference far outside its own fresh
    processes and issue none."""
    real_build = build.build_session
    slow = not setup.reference_outputs and SessionConfig.from_json(setup.config).is_default()

    def faulty(path: Any, config: SessionConfig, **kwargs: Any) -> Any:
        session = real_build(path, config, **kwargs)
        return _SlowSession(session, 0.0005) if slow else session

    _swap(faulty)
    worker.worker_main(conn, setup)
