"""A large effect is decided end to end, with real processes, on a quiet machine and under the
light load of an ordinary background program (about 0.3 of a core): picked in both.

The model (``tests.models.shape_folding``) recomputes a shape-derived bias on every run unless
its batch dimension is fixed (``free_dimension_overrides``): about 3-4x faster fixed. That
change is not a thread setting, so a pick measured under light load stands when it clears the
margin widened by the load's measured effect."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from autotune.measure.verdict import PICK
from autotune.store.database import Store
from autotune.tuning.search import SearchOptions, SearchResult, run_search
from tests import models
from tests.conftest import FAST
from tests.programs import other_program

pytestmark = pytest.mark.slow

# the planned processes of the real protocol's head-to-head, with FAST's short blocks
PROTOCOL = dataclasses.replace(FAST, generations=3, max_generations=6, final_rounds=12)

# about 0.3 of a core: busy 30 ms, asleep 70 ms, in a process this test does not parent
DUTY_CYCLE = (
    "import time\n"
    "while True:\n"
    "    t = time.perf_counter()\n"
    "    while time.perf_counter() - t < 0.03: pass\n"
    "    time.sleep(0.07)\n"
)


@pytest.fixture
def light_load() -> Iterator[int]:
    with other_program(DUTY_CYCLE) as pid:
        yield pid


def _search(tmp_path: Path) -> SearchResult:
    model = models.shape_folding(tmp_path / "shape_folding.onnx")
    return run_search(model, SearchOptions(trials=14, protocol=PROTOCOL, seed=1, patience=None))


def _assert_picked_free_dims(outcome: SearchResult) -> None:
    assert outcome.outcome == PICK, outcome.reason
    assert outcome.pick is not None and dict(outcome.pick.free_dimension_overrides) == {"N": 1}
    assert (outcome.speedup_low or 0) > 1.5


def test_a_large_effect_is_picked_on_a_quiet_machine(tmp_path: Path) -> None:
    outcome = _search(tmp_path)
    _assert_picked_free_dims(outcome)


def test_a_large_effect_is_picked_under_light_load(tmp_path: Path, light_load: int) -> None:
    outcome = _search(tmp_path)
    _assert_picked_free_dims(outcome)
    with Store.open() as store:
        (row,) = store.searches(outcome.key)
    # the verdict stores the load it was measured under
    assert row.verdict["load"]["level"] in ("quiet", "light", "heavy")
    assert row.verdict["load"]["other_cores"] > 0.1
