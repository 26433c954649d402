"""Fault-injecting worker entry points for the tests.

A real configuration that segfaults or hangs ONNX Runtime cannot be produced on demand, so
these wrap the real worker and inject the fault for one kind of configuration (one intra-op
thread). This is the only fake in the suite; everything else runs the real onnxruntime.
"""

from __future__ import annotations

import ctypes
import time
from typing import Any

from autotune import measure
from autotune.config import SessionConfig


def _inject(fault: str) -> None:
    real_build = measure.build_session

    def build(path: Any, config: SessionConfig, **kwargs: Any) -> Any:
        if config.intra_op_num_threads == 1:
            if fault == "crash":
                ctypes.string_at(0)  # a real segmentation fault in the worker process
            else:
                time.sleep(3600)  # a hang
        return real_build(path, config, **kwargs)

    measure.build_session = build  # type: ignore[assignment]


def crashing_worker(conn: Any, setup: measure.ProcessSetup) -> None:
    _inject("crash")
    measure.worker_main(conn, setup)


def hanging_worker(conn: Any, setup: measure.ProcessSetup) -> None:
    _inject("hang")
    measure.worker_main(conn, setup)
