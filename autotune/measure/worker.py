"""The session process: builds one session, reports how that went, then times blocks of runs
when the parent asks (the parent side is ``autotune.measure.manager``). Imports onnxruntime,
never optuna; the messages it exchanges are ``autotune.measure.messages``.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys
import time
from collections import Counter
from typing import Any

from autotune.build import (
    build_session,
    build_trial_session,
    dropped_providers,
    placement_supported,
)
from autotune.config import CPU, SessionConfig
from autotune.measure.messages import (
    BlockTimes,
    BuildFailed,
    Built,
    ProcessSetup,
    RunBlock,
)

COMPILING_EPS = {
    "CoreMLExecutionProvider",
    "OpenVINOExecutionProvider",
    "TensorrtExecutionProvider",
    "QNNExecutionProvider",
    "DmlExecutionProvider",
}


def worker_main(conn: Any, setup: ProcessSetup) -> None:
    """Entry point of a session process: build, report, then time blocks on request."""
    # Ctrl-C is the parent's to handle: it must not kill a trial and be recorded as a crash
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # held while it was spawned
    _die_with_parent()
    import onnxruntime as ort

    ort.set_default_logger_severity(4)  # ORT's errors reach the trial's error, not the terminal
    try:
        session, built = _build(setup)
    except Exception as exc:  # noqa: BLE001 - any build or run failure is a result
        conn.send(BuildFailed(one_line(exc)))
        return
    conn.send(built)
    run = session.run
    feeds = setup.feeds
    clock = time.perf_counter
    while True:
        try:
            msg = conn.recv()
            if not isinstance(msg, RunBlock):
                return
            run(None, feeds)  # one discarded run: caches, threads waking up
            times = []
            for _ in range(msg.runs):
                t0 = clock()
                run(None, feeds)
                times.append((clock() - t0) * 1000.0)
            conn.send(BlockTimes(times, _peak_rss_mb()))
        except (EOFError, BrokenPipeError, ConnectionResetError):
            return  # the parent is gone (killed): nothing left to measure for


def _build(setup: ProcessSetup) -> tuple[Any, Built]:
    reference_outputs = None
    if setup.reference_outputs:
        ref = build_session(
            setup.model_path, SessionConfig(graph_optimization_level="ORT_DISABLE_ALL")
        )
        reference_outputs = ref.run(None, setup.feeds)
        del ref
    config = SessionConfig.from_json(setup.config)
    rss_before = _rss_mb()
    # the cold compile (recorded once per compile key) and the load from the compile cache
    session, session_create_ms, cached_ms = build_trial_session(
        setup.model_path, config, setup.cache_dir
    )
    dropped = dropped_providers(session, config)
    placement = placement_of(session, config)
    t0 = time.perf_counter()
    outputs = session.run(None, setup.feeds)
    first_run_ms = (time.perf_counter() - t0) * 1000.0
    rss_after = _rss_mb()
    rss = None
    if rss_before is not None and rss_after is not None:
        rss = max(0.0, rss_after - rss_before)
    built = Built(
        session_create_ms=session_create_ms,
        first_run_ms=first_run_ms,
        outputs=outputs,
        placement=placement,
        dropped=list(dropped),
        cached_session_create_ms=cached_ms,
        session_rss_mb=rss,
        reference_outputs=reference_outputs,
    )
    return session, built


def placement_of(session: Any, config: SessionConfig) -> dict[str, Any]:
    """Nodes per provider, partitions per compiling provider, and op types that fell to CPU."""
    if not placement_supported():
        return {"available": False}
    try:
        subgraphs = session.get_provider_graph_assignment_info()
    except Exception as exc:  # noqa: BLE001 - placement is diagnostic only
        return {"available": False, "error": str(exc)[:200]}
    nodes: Counter[str] = Counter()
    partitions: Counter[str] = Counter()
    cpu_ops: Counter[str] = Counter()
    for sg in subgraphs:
        sg_nodes = sg.get_nodes()
        nodes[sg.ep_name] += len(sg_nodes)
        if sg.ep_name in COMPILING_EPS:
            partitions[sg.ep_name] += 1
        if sg.ep_name == CPU:
            for n in sg_nodes:
                cpu_ops[n.op_type] += 1
    requested = [n for n, _ in config.canonical().providers if n != CPU]
    return {
        "available": True,
        "nodes": dict(nodes),
        "partitions": dict(partitions),
        "cpu_fallback_ops": dict(cpu_ops.most_common()) if requested else {},
        "requested": requested,
    }


def one_line(exc: BaseException) -> str:
    """An exception as one line, for a trial's error."""
    from autotune.model import sentences

    return sentences(str(exc), 500) or type(exc).__name__


def _rss_mb() -> float | None:
    """The memory this process holds, in MB: on macOS its physical footprint, elsewhere psutil's
    resident set size; None when neither can be read.

    The footprint is what Activity Monitor shows as Memory: it also counts the Metal and
    IOSurface buffers a Core ML model on the GPU or Neural Engine holds, which RSS misses.
    psutil 7.2 does not report it (its macOS ``memory_full_info()`` adds only ``uss``), so it is
    read with ``proc_pid_rusage``, as ``top`` does."""
    if _MACOS:
        footprint = _phys_footprint()
        if footprint is not None:
            return footprint / 2**20
    import psutil

    try:
        return float(psutil.Process().memory_info().rss) / 2**20
    except (psutil.Error, OSError):
        return None


_MACOS = sys.platform == "darwin"
RUSAGE_INFO_V0 = 0  # the flavor of proc_pid_rusage that fills a struct rusage_info_v0


class _RusageInfoV0(ctypes.Structure):
    """``struct rusage_info_v0`` of macOS's <sys/resource.h>."""

    _fields_ = [("ri_uuid", ctypes.c_uint8 * 16)] + [
        (name, ctypes.c_uint64)
        for name in (
            "ri_user_time",
            "ri_system_time",
            "ri_pkg_idle_wkups",
            "ri_interrupt_wkups",
            "ri_pageins",
            "ri_wired_size",
            "ri_resident_size",
            "ri_phys_footprint",
            "ri_proc_start_abstime",
            "ri_proc_exit_abstime",
        )
    ]


def _libproc() -> Any:
    return ctypes.CDLL("/usr/lib/libSystem.B.dylib", use_errno=True)


def _phys_footprint() -> int | None:
    """``ri_phys_footprint`` of ``proc_pid_rusage(getpid(), RUSAGE_INFO_V0)`` in bytes (macOS),
    or None when the call fails (a sandbox that refuses it)."""
    info = _RusageInfoV0()
    try:
        failed = _libproc().proc_pid_rusage(os.getpid(), RUSAGE_INFO_V0, ctypes.pointer(info))
    except (OSError, AttributeError):
        return None
    return None if failed else int(info.ri_phys_footprint)


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _die_with_parent() -> None:
    """On Linux, have the kernel kill this process when the search process dies (kill -9):
    a frozen orphan would otherwise wait forever."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
