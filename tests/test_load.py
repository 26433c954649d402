"""Busy-machine awareness, with a real program keeping a core busy (not a child of this test,
so it counts as another program, as a user's browser or build would)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from autotune.errors import SearchError
from autotune.measure.conditions import Conditions, LoadLevel, classify
from autotune.measure.load import Load, LoadMonitor
from autotune.store.database import Store
from autotune.tuning.search import SearchOptions, run_search
from tests.conftest import FAST
from tests.programs import other_program


@pytest.fixture
def cpu_hog() -> Iterator[int]:
    """A busy loop in a process this test does not parent (the shell that starts it exits)."""
    with other_program("while True: pass") as pid:
        yield pid


def test_the_monitor_sees_another_program_and_names_it(cpu_hog: int) -> None:
    load = LoadMonitor().measure(1.0)
    assert load.other_cores > 0.6
    assert load.busy
    assert f"pid {cpu_hog}" in load.top


def test_the_monitor_does_not_count_this_search_itself() -> None:
    from autotune.measure.load import _machine_cpu

    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        hog = psutil.Process(child.pid)
        monitor = LoadMonitor()
        busy_before, _ = _machine_cpu()
        child_before = sum(hog.cpu_times()[:2])
        t0 = time.monotonic()
        time.sleep(1.0)
        load = monitor.sample()
        busy_after, _ = _machine_cpu()
        child_share = (sum(hog.cpu_times()[:2]) - child_before) / (time.monotonic() - t0)
    finally:
        child.kill()
        child.wait()
    machine = (busy_after - busy_before) / (time.monotonic() - t0)
    # the busy child belongs to this process tree: its share is not "other programs"
    assert child_share > 0.05  # on a saturated machine the child gets little; on CI, a core
    assert load.other_cores < machine - child_share + 0.1


def test_a_busy_machine_stops_the_search_before_anything_is_stored(
    mlp_path: Path, cpu_hog: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUTOTUNE_ALLOW_BUSY")
    options = SearchOptions(trials=2, protocol=FAST, busy_wait=1.0)
    assert not options.allow_busy
    with pytest.raises(SearchError, match=r"^machine busy: other programs use .*--allow-busy"):
        run_search(mlp_path, options)
    with Store.open() as store:
        assert store.summary() == []


@pytest.mark.slow
def test_allow_busy_goes_on_and_marks_every_trial(mlp_path: Path, cpu_hog: int) -> None:
    outcome = run_search(mlp_path, SearchOptions(trials=2, protocol=FAST, allow_busy=True))
    with Store.open() as store:
        rows = store.trials(outcome.key)
    assert len(rows) == 2
    for row in rows:
        assert row.load_cores is not None and row.load_cores > 0.25
        assert re.match(
            r"(light|heavy) load during this trial: other programs use", row.warning or ""
        )
    assert outcome.busy["search"]["other_cores"] > 0.25
    # a head-to-head under heavy load issues no pick: it may not hold on a quiet machine
    if outcome.busy["head_to_head"]["level"] == "heavy":
        assert outcome.outcome != "pick" and (outcome.pick is None or outcome.pick.is_default())


@pytest.mark.parametrize(
    ("cores", "threads", "others", "level"),
    [
        # a 2-core VM: 0.3 of a core (a browser tab) is light, a busy loop heavy
        (2, 2, 0.10, LoadLevel.QUIET),
        (2, 2, 0.30, LoadLevel.LIGHT),
        (2, 2, 1.00, LoadLevel.HEAVY),
        # an 8-core laptop: an IDE and a browser (1 core) are light
        (8, 8, 0.35, LoadLevel.QUIET),
        (8, 8, 1.00, LoadLevel.LIGHT),
        (8, 8, 2.50, LoadLevel.HEAVY),
        # ... and quiet for sessions that use 4 of its 8 cores
        (8, 4, 3.00, LoadLevel.QUIET),
        # a 16-core workstation
        (16, 16, 0.70, LoadLevel.QUIET),
        (16, 16, 3.50, LoadLevel.LIGHT),
        (16, 16, 4.50, LoadLevel.HEAVY),
    ],
)
def test_load_is_judged_against_the_cores_and_the_sessions_threads(
    cores: int, threads: int, others: float, level: LoadLevel
) -> None:
    assert classify(others, 0.0, cores, threads) == level
    load = Load(others, 0.0, 0.0, 1.0, cores=cores, threads=threads)
    assert load.level == level and load.busy == (level == LoadLevel.HEAVY)
    assert load.to_dict()["level"] == level.value


def test_a_reference_slowed_beyond_the_guard_counts_as_load_even_when_the_guest_sees_none() -> None:
    hidden = Conditions.measured(0.0, 0.0, cores=2, threads=2, slowdown=1.4)
    assert hidden.level == LoadLevel.LIGHT and hidden.widening == 1.4
    assert Conditions.measured(0.0, 0.0, cores=2, threads=2, slowdown=1.1).widening == 1.0


def _burn_in_a_child(cpu_seconds: float) -> None:
    code = f"import time\nwhile time.process_time() < {cpu_seconds}: pass"
    child = subprocess.Popen([sys.executable, "-c", code])
    child.wait()  # reaped: its CPU is now this process's children's


def test_finished_session_processes_are_not_other_programs_where_psutil_hides_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """macOS's psutil reports 0 for ``children_user``/``children_system`` ("not retrievable",
    psutil's _psosx.py): stood in for here by zeroing them on Linux. A session process that ran
    and was reaped between two samples must still count as this search's own CPU (else it reads
    as other programs' and the machine as busy)."""
    from autotune.measure import load as load_module

    real = psutil.Process.cpu_times

    def macos_cpu_times(self: psutil.Process) -> Any:
        return real(self)._replace(children_user=0.0, children_system=0.0)

    monkeypatch.setattr(psutil.Process, "cpu_times", macos_cpu_times)
    tree = load_module._TreeCpu(psutil.Process())
    before = tree()
    _burn_in_a_child(0.8)
    assert tree() - before > 0.75  # the reaped child's 0.8 s of CPU is this tree's


def test_without_getrusage_a_childs_cpu_is_kept_after_it_exits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Windows has no ``resource`` module and psutil has no reaped-children figure there: the
    monitor remembers each live child's CPU and keeps it once the child is gone."""
    from autotune.measure import load as load_module

    monkeypatch.setattr(load_module, "_reaped_cpu", lambda: None)
    tree = load_module._TreeCpu(psutil.Process())
    before = tree()
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)
        alive = tree()  # sees the live child
    finally:
        child.kill()
        child.wait()
    gone = tree()
    assert alive - before > 0.3
    assert gone >= alive - 0.01  # the child's CPU stays counted after it exits
