"""Busy-machine awareness, with a real program keeping a core busy (not a child of this test,
so it counts as another program, as a user's browser or build would)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from autotune.errors import SearchError
from autotune.measure.load import LoadMonitor
from autotune.store.database import Store
from autotune.tuning.search import SearchOptions, run_search
from tests.conftest import FAST


@pytest.fixture
def cpu_hog() -> Iterator[int]:
    """A busy loop in a process this test does not parent (the shell that starts it exits)."""
    out = subprocess.run(
        ["sh", "-c", f"{sys.executable} -c 'while True: pass' >/dev/null 2>&1 & echo $!"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(out.stdout.strip())
    time.sleep(0.3)
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGKILL)


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


def test_allow_busy_goes_on_and_marks_every_trial(mlp_path: Path, cpu_hog: int) -> None:
    outcome = run_search(mlp_path, SearchOptions(trials=2, protocol=FAST, allow_busy=True))
    with Store.open() as store:
        rows = store.trials(outcome.key)
    assert len(rows) == 2
    for row in rows:
        assert row.load_cores is not None and row.load_cores > 0.25
        assert (row.warning or "").startswith("machine busy during this trial: other programs use")
    assert outcome.busy["search"]["other_cores"] > 0.25
    # a head-to-head under that load issues no pick: it may not hold on a quiet machine
    if outcome.busy["head_to_head"]["other_cores"] > 0.25:
        assert outcome.outcome != "pick" and (outcome.pick is None or outcome.pick.is_default())
