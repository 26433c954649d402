from __future__ import annotations

from pathlib import Path

import pytest

from autotune.measure.manager import Protocol
from tests import models

# A quick protocol: enough rounds to exercise pairing, pruning and the guard, in little time.
# Its blocks are short (5 ms), so their medians are noisy: a looser guard (2x the floor) keeps
# a loaded test machine from dropping most rounds as slow phases.
FAST = Protocol(
    block_seconds=0.005,
    rounds=3,
    max_rounds=6,
    final_rounds=6,
    generations=2,
    small_generations=2,
    max_generations=3,
    extra_seconds=5.0,
    guard=2.0,
)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own database and cache; nothing touches the user's."""
    monkeypatch.setenv("AUTOTUNE_DB", str(tmp_path / "autotune.db"))
    monkeypatch.setenv("AUTOTUNE_CACHE_DIR", str(tmp_path / "cache"))
    # a test machine runs other work (other tests, builds): searches here go on and mark it;
    # tests of the busy-machine rule unset this
    monkeypatch.setenv("AUTOTUNE_ALLOW_BUSY", "1")


@pytest.fixture
def mlp_path(tmp_path: Path) -> Path:
    return models.mlp(tmp_path / "mlp.onnx")


@pytest.fixture
def dynamic_path(tmp_path: Path) -> Path:
    return models.dynamic(tmp_path / "dynamic.onnx")
