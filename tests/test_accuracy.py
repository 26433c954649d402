"""The accuracy gate: a configuration whose outputs differ from the CPU-EP fp32 reference beyond
tolerance is stored as inaccurate and never picked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autotune.config import SessionConfig
from autotune.examples import write_example
from autotune.measure.manager import (
    MeasuringWorker,
    Protocol,
    WorkerSetup,
    compare_outputs,
)
from autotune.model import load_model_info, resolve_shapes, synthetic_feeds
from autotune.store.records import Status
from tests.conftest import FAST

# ORT's tanh approximation of GELU: a real configuration that changes outputs by ~1e-3
APPROX = SessionConfig(session_entries={"optimization.enable_gelu_approximation": "1"})


@pytest.fixture(scope="module")
def transformer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_example("transformer", tmp_path_factory.mktemp("m") / "transformer.onnx")


def _worker(path: Path, protocol: Protocol) -> MeasuringWorker:
    info = load_model_info(path)
    feeds = synthetic_feeds(info, resolve_shapes(info))
    return MeasuringWorker(WorkerSetup(str(path), feeds, protocol))


@pytest.mark.slow
def test_gelu_approximation_is_rejected_by_default(transformer: Path) -> None:
    worker = _worker(transformer, FAST)
    try:
        result = worker.measure(APPROX, timeout=120)
        exact = worker.measure(
            SessionConfig(graph_optimization_level="ORT_ENABLE_EXTENDED"), timeout=120
        )
    finally:
        worker.close()
    assert result.status == Status.INACCURATE
    assert result.err_to_tol is not None and result.err_to_tol > 1
    assert "differ from the CPU reference" in (result.error or "")
    assert exact.status == Status.OK and exact.err_to_tol is not None and exact.err_to_tol < 1


@pytest.mark.slow
def test_looser_tolerance_accepts_it(transformer: Path) -> None:
    worker = _worker(transformer, Protocol(**{**FAST.__dict__, "rtol": 1e-2, "atol": 5e-3}))
    try:
        result = worker.measure(APPROX, timeout=120)
    finally:
        worker.close()
    assert result.status == Status.OK


@pytest.mark.slow
def test_search_never_picks_an_inaccurate_configuration(transformer: Path) -> None:
    from autotune.store.database import Store
    from autotune.tuning.search import SearchOptions, run_search

    outcome = run_search(transformer, SearchOptions(trials=14, protocol=FAST, seed=3))
    with Store.open() as store:
        rows = store.trials(outcome.key)
    inaccurate = {r.config_id for r in rows if r.status == Status.INACCURATE}
    assert inaccurate, "the one-knob variants include the GELU approximation at ORT_ENABLE_ALL"
    for r in rows:
        if r.status == Status.INACCURATE:
            assert r.err_to_tol is not None and r.err_to_tol > 1
        elif r.status in (Status.OK, Status.PRUNED):
            assert r.err_to_tol is not None and r.err_to_tol <= 1
    assert all(c["config_id"] not in inaccurate for c in outcome.compared)
    if outcome.pick is not None:  # None: an inconclusive verdict on a noisy machine
        assert outcome.pick.config_id not in inaccurate
        assert "enable_gelu_approximation" not in outcome.pick.to_json()


def test_compare_outputs_by_dtype() -> None:
    ref: list[Any] = [np.array([1.0, 2.0], np.float32), np.array([1, 2], np.int64)]
    assert compare_outputs(ref, [ref[0] + 1e-6, ref[1]], None, None)[0]
    ok, max_abs, _worst, why = compare_outputs(ref, [ref[0] + 0.1, ref[1]], None, None)
    assert not ok and max_abs == pytest.approx(0.1, rel=1e-3) and "0.1" in (why or "")
    assert not compare_outputs(ref, [ref[0], ref[1] + 1], None, None)[0]
    half: list[Any] = [np.array([1.0], np.float16)]
    assert compare_outputs(half, [half[0] + np.float16(0.005)], None, None)[0]  # fp16: rtol 1e-2
    nan = [np.array([np.nan, 1.0], np.float32)]
    assert not compare_outputs([np.array([0.0, 1.0], np.float32)], nan, None, None)[0]
