"""Latency is not all: load time and memory, the Pareto set, and choosing by objective."""

from __future__ import annotations

import logging
import os
from collections import namedtuple
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

import autotune
from autotune.config import DEFAULT_CONFIG, SessionConfig
from autotune.errors import SearchError
from autotune.measure import worker
from autotune.measure.messages import ProcessSetup
from autotune.store.database import Store
from autotune.store.records import SearchRecord, TrialRecord
from autotune.tuning import objectives
from autotune.tuning.search import SearchOptions, run_search
from tests.conftest import FAST


def _row(cid: str, ratio: float, load: float, mem: float) -> TrialRecord:
    return TrialRecord(config_id=cid, ratio=ratio, session_create_ms=load - 1, first_run_ms=1.0,
                       session_rss_mb=mem)  # fmt: skip


def test_pareto_and_choice() -> None:
    fast = _row("fast", 0.8, 300, 50)
    light = _row("light", 1.1, 40, 10)
    both_worse = _row("worse", 1.2, 400, 60)
    default = _row("default", 1.0, 100, 20)
    rows = [fast, light, both_worse, default]
    assert {r.config_id for r in objectives.pareto(rows)} == {"fast", "light", "default"}
    # on latency and load time alone, a row kept only for its memory drops out
    lean = _row("lean", 1.05, 120, 5)
    assert lean in objectives.pareto([*rows, lean])
    assert lean not in objectives.pareto([*rows, lean], memory=False)
    assert {r.config_id for r in objectives.pareto(rows, memory=False)} == {
        "fast", "light", "default"
    }  # fmt: skip
    assert objectives.choose(rows, "latency", default)[0] is fast
    assert objectives.choose(rows, "load", default)[0] is light
    assert objectives.choose(rows, "memory", default)[0] is light
    # balanced: 0.8 * sqrt(3) = 1.39 > 1.1 * sqrt(0.4) = 0.70
    assert objectives.choose(rows, "balanced", default)[0] is light
    assert objectives.score(light, "load", default) == pytest.approx(0.4)
    with pytest.raises(SearchError, match="not one of latency, load, memory, balanced"):
        objectives.check("speed")


@pytest.mark.parametrize("memory", [5.0, None], ids=["memory", "memory unknown (macOS before)"])
def test_best_session_prefers_load_when_asked(
    mlp_path: Path, caplog: pytest.LogCaptureFixture, memory: float | None
) -> None:
    from autotune.chip import current_chip
    from autotune.digest import model_digest

    quick_load = SessionConfig(graph_optimization_level="ORT_DISABLE_ALL").canonical()
    fast_run = SessionConfig(intra_op_num_threads=1).canonical()
    base = {"model_digest": model_digest(mlp_path), "chip": current_chip().chip_id,
            "ort_version": current_chip().ort_version, "shapes": "x=1x16", "default_shapes": 1,
            "status": "ok", "first_run_ms": 1.0, "session_rss_mb": memory}  # fmt: skip
    with Store.open(write=True) as store:
        # the trials of a finished latency search whose head-to-head picked fast_run
        store.upsert_search(SearchRecord.from_row(
            {**{k: base[k] for k in ("model_digest", "chip", "ort_version",
                             "shapes", "default_shapes")}, "search_id": "s1", "state": "done",
                             "objective": "latency", "pick_config": fast_run.to_json(),
                             "pick_ratio": 0.85}))  # fmt: skip
        for uid, cfg, ratio, create in (
            ("a", DEFAULT_CONFIG, 1.0, 50.0),
            ("b", quick_load, 1.05, 5.0),
            ("c", fast_run, 0.85, 60.0),
        ):
            store.record_trial(TrialRecord.from_row(
                {**base, "trial_uid": uid, "config_id": cfg.config_id,
                                "search_id": "s1", "config": cfg.to_json(), "ratio": ratio,
                                "session_create_ms": create}))  # fmt: skip
    assert autotune.best_config(mlp_path).config == fast_run  # type: ignore[union-attr]
    chosen = autotune.best_config(mlp_path, prefer="load")
    assert chosen is not None and chosen.config == quick_load and chosen.source == "pareto:load"
    with caplog.at_level(logging.WARNING, logger="autotune"):
        session = autotune.best_session(mlp_path, prefer="load")
    assert str(session.get_session_options().graph_optimization_level).endswith("DISABLE_ALL")
    assert not caplog.records


@pytest.mark.slow
def test_search_for_load_time(mlp_path: Path) -> None:
    outcome = run_search(mlp_path, SearchOptions(trials=6, protocol=FAST, objective="load"))
    with Store.open() as store:
        search = store.searches(outcome.key)[0]
        rows = store.trials(outcome.key)
    assert search.objective == "load"
    assert all(r.status != "pruned" for r in rows)  # no pruning on latency for load
    if outcome.pick is not None and not outcome.pick.is_default():  # None: inconclusive
        default = next(r for r in rows if r.config_id == DEFAULT_CONFIG.config_id)
        picked = next(r for r in rows if r.config_id == outcome.pick.config_id)
        assert picked.load_ms < default.load_ms  # type: ignore[operator]


# -- memory that could not be measured (macOS before the footprint was read) -------------------


def _no_memory(cid: str, ratio: float, load: float) -> TrialRecord:
    return TrialRecord(config_id=cid, ratio=ratio, session_create_ms=load - 1, first_run_ms=1.0)


def test_rows_without_memory_are_ranked_on_latency_and_load() -> None:
    fast = _no_memory("fast", 0.8, 300)
    light = _no_memory("light", 1.1, 40)
    worse = _no_memory("worse", 1.2, 400)
    default = _no_memory("default", 1.0, 100)
    rows = [fast, light, worse, default]
    assert objectives.pareto(rows) == [fast, light, default]
    assert objectives.choose(rows, "load", default)[0] is light
    assert objectives.choose(rows, "balanced", default)[0] is light
    assert objectives.choose(rows, "latency", default)[0] is fast
    assert objectives.choose(rows, "memory", default) == []  # nothing to rank memory by


def test_a_missing_memory_figure_compares_on_the_figures_both_rows_have() -> None:
    lean = _row("lean", 1.0, 100, 5)  # kept: the least memory
    unknown_beaten = _no_memory("unknown beaten", 1.1, 120)  # lean is faster and loads sooner
    unknown_fast = _no_memory("unknown fast", 0.7, 90)
    known_beaten = _row("known beaten", 0.9, 95, 3)  # unknown_fast beats it on both it has
    rows = [lean, unknown_beaten, unknown_fast, known_beaten]
    assert objectives.pareto(rows) == [unknown_fast]
    assert objectives.pareto([lean, unknown_beaten]) == [lean]
    same = _no_memory("same figures", 1.0, 100)  # equal on both figures: neither dominates
    assert objectives.pareto([lean, same]) == [lean, same]


def _dominates(a: TrialRecord, b: TrialRecord) -> bool:
    figures = [(a.ratio, b.ratio), (a.load_ms, b.load_ms)]
    if a.session_rss_mb is not None and b.session_rss_mb is not None:
        figures.append((a.session_rss_mb, b.session_rss_mb))
    return all(x <= y for x, y in figures) and any(x < y for x, y in figures)  # type: ignore[operator]


def test_pareto_matches_the_pairwise_definition() -> None:
    rng = np.random.default_rng(7)
    for trial in range(200):
        n = int(rng.integers(1, 25))
        rows = [
            TrialRecord(
                config_id=f"{trial}-{i}",
                ratio=float(rng.choice([0.8, 0.9, 1.0, 1.1])),
                session_create_ms=float(rng.choice([10.0, 20.0, 30.0])),
                first_run_ms=1.0,
                session_rss_mb=None if rng.random() < 0.3 else float(rng.choice([5.0, 9.0])),
            )
            for i in range(n)
        ]
        expected = [b for b in rows if not any(_dominates(a, b) for a in rows)]
        assert objectives.pareto(rows) == expected


# the session process on macOS, injected on Linux: no /proc, the footprint from proc_pid_rusage


class _MacLibproc:
    """Stands in for macOS's libSystem, which Linux lacks: ``proc_pid_rusage`` fills
    ``ri_phys_footprint`` with the next of ``footprints`` (bytes), or fails (-1) when None."""

    def __init__(self, *footprints: int | None) -> None:
        self.footprints = list(footprints)

    def proc_pid_rusage(self, pid: int, flavor: int, info: Any) -> int:
        assert pid == os.getpid() and flavor == worker.RUSAGE_INFO_V0
        footprint = self.footprints.pop(0)
        if footprint is None:
            return -1
        info.contents.ri_phys_footprint = footprint
        return 0


_MacMemory = namedtuple("_MacMemory", "rss vms pfaults pageins")


class _MacProcess:
    """Stands in for psutil.Process on macOS: ``memory_info()`` is (rss, vms, pfaults,
    pageins) there (psutil 7.2 ``_psosx.py``)."""

    def memory_info(self) -> Any:
        return _MacMemory(123 * 2**20, 400 * 2**30, 9000, 12)


def test_session_memory_on_macos_is_its_footprint(
    mlp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker, "_MACOS", True)
    libproc = _MacLibproc(100 * 2**20, 160 * 2**20)
    monkeypatch.setattr(worker, "_libproc", lambda: libproc)
    feeds = {"x": np.ones((1, 16), np.float32)}
    session, built = worker._build(ProcessSetup(str(mlp_path), feeds, DEFAULT_CONFIG.to_json()))
    assert built.session_rss_mb == pytest.approx(60.0)
    del session
    # a sandbox refusing proc_pid_rusage: psutil's resident set size, as macOS reports it
    libproc.footprints = [None]
    monkeypatch.setattr(psutil, "Process", _MacProcess)
    assert worker._rss_mb() == pytest.approx(123.0)


def test_session_memory_is_measured_here(mlp_path: Path) -> None:
    feeds = {"x": np.ones((1, 16), np.float32)}
    _, built = worker._build(ProcessSetup(str(mlp_path), feeds, DEFAULT_CONFIG.to_json()))
    assert built.session_rss_mb is not None and built.session_rss_mb >= 0
    assert worker._rss_mb() == pytest.approx(psutil.Process().memory_info().rss / 2**20, rel=0.1)
