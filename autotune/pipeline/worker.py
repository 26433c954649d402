"""The measuring process of one pipeline arrangement: builds every stage's session, replays the
call pattern once, reports, then times blocks of whole pipeline runs when asked. It speaks the
single model's messages (``autotune.measure.messages``: ``ProcessSetup.model_path`` is the
pipeline file, ``config`` the arrangement's JSON, ``feeds`` each stage's inputs), so the
manager's processes, freezing, paired rounds and accuracy gate measure pipelines unchanged."""

from __future__ import annotations

import signal
import time
from typing import Any

from autotune.config import SessionConfig
from autotune.measure.messages import BlockTimes, BuildFailed, Built, ProcessSetup, RunBlock
from autotune.measure.worker import _die_with_parent, _peak_rss_mb, _rss_mb, one_line
from autotune.pipeline.arrangement import Arrangement
from autotune.pipeline.replay import Replay, build_sessions
from autotune.pipeline.spec import PipelineSpec, load_pipeline

REFERENCE = SessionConfig(graph_optimization_level="ORT_DISABLE_ALL")


def pipeline_worker(conn: Any, setup: ProcessSetup) -> None:
    """Entry point of a pipeline's measuring process (a ``WorkerTarget``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    _die_with_parent()
    import onnxruntime as ort

    ort.set_default_logger_severity(4)
    try:
        replay, built = _build(setup)
    except Exception as exc:  # noqa: BLE001 - any build or run failure is a result
        conn.send(BuildFailed(one_line(exc)))
        return
    conn.send(built)
    while True:
        try:
            msg = conn.recv()
            if not isinstance(msg, RunBlock):
                return
            replay.run()  # one discarded run
            conn.send(BlockTimes([_timed(replay) for _ in range(msg.runs)], _peak_rss_mb()))
        except (EOFError, BrokenPipeError, ConnectionResetError):
            return


def _timed(replay: Replay) -> float:
    """One pipeline run, in milliseconds."""
    t0 = time.perf_counter()
    replay.run()
    return (time.perf_counter() - t0) * 1000.0


def flat_outputs(spec: PipelineSpec, outputs: dict[str, list[Any]]) -> list[Any]:
    """Every stage's last outputs, in stage order: what the accuracy gate compares."""
    return [o for s in spec.stages for o in outputs[s.name]]


def _build(setup: ProcessSetup) -> tuple[Replay, Built]:
    spec = load_pipeline(setup.model_path)
    arrangement = Arrangement.from_json(setup.config, len(spec.stages))
    reference = None
    if setup.reference_outputs:  # ORT's defaults (per-session pools): no shared pool here
        plain = Replay(
            spec, build_sessions(spec, Arrangement((REFERENCE,) * len(spec.stages))), setup.feeds
        )
        reference = flat_outputs(spec, plain.run())
        plain.close()
        del plain
    rss_before = _rss_mb()
    t0 = time.perf_counter()
    replay = Replay(spec, build_sessions(spec, arrangement), setup.feeds)
    create_ms = (time.perf_counter() - t0) * 1000.0
    t0 = time.perf_counter()
    outputs = replay.run()
    first_run_ms = (time.perf_counter() - t0) * 1000.0
    rss_after = _rss_mb()
    rss = None if rss_before is None or rss_after is None else max(0.0, rss_after - rss_before)
    return replay, Built(
        session_create_ms=create_ms,
        first_run_ms=first_run_ms,
        outputs=flat_outputs(spec, outputs),
        placement={},
        dropped=replay.dropped(arrangement),
        session_rss_mb=rss,
        reference_outputs=reference,
    )
