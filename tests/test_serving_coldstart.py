"""Cold start: the cache of ORT's optimized model (keyed, never stale), and a search in fresh
processes where that cache changes which start is fastest."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from autotune.config import DEFAULT_CONFIG
from autotune.serving.coldstart import (
    CACHE_FILE,
    KEY_FILE,
    NONE,
    ORT_FORMAT,
    StartChoice,
    cache_key,
    entry_dir,
    start_session,
    valid_entry,
)


def folding(path: Path, n: int = 1024, chain: int = 4) -> Path:
    """y = x @ (A^(chain+1)): the weight is a chain of MatMuls of a constant, which ORT folds
    when it optimizes the graph (a slow build) and an optimized model stores folded."""
    rng = np.random.default_rng(0)
    a = numpy_helper.from_array((rng.standard_normal((n, n)) / np.sqrt(n)).astype(np.float32), "a")
    nodes, current = [], "a"
    for i in range(chain):
        nodes.append(helper.make_node("MatMul", [current, "a"], [f"w{i}"]))
        current = f"w{i}"
    nodes.append(helper.make_node("MatMul", ["x", current], ["y"]))
    graph = helper.make_graph(
        nodes,
        "folding",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n])],
        [a],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def small_folding(tmp_path: Path) -> Path:
    return folding(tmp_path / "folding.onnx", n=64, chain=2)


def test_the_cache_is_filled_once_then_loaded(small_folding: Path, tmp_path: Path) -> None:
    choice = StartChoice(DEFAULT_CONFIG, ORT_FORMAT)
    x = {"x": np.ones((1, 64), np.float32)}
    first, state1 = start_session(str(small_folding), choice, "d1", tmp_path / "c")
    again, state2 = start_session(str(small_folding), choice, "d1", tmp_path / "c")
    assert (state1, state2) == ("first", "cached")
    np.testing.assert_allclose(again.run(None, x)[0], first.run(None, x)[0], rtol=1e-5)
    _, state = start_session(str(small_folding), StartChoice(DEFAULT_CONFIG), "d1", tmp_path)
    assert state == "none"


@pytest.mark.parametrize("damage", ["ort_version", "os_build", "file", "no_key"])
def test_a_stale_or_broken_cache_is_never_reused(
    small_folding: Path, tmp_path: Path, damage: str
) -> None:
    """An entry written by another ORT version or OS build, or whose file changed, or left
    without its key by a killed build: removed, and the next start builds afresh."""
    choice = StartChoice(DEFAULT_CONFIG, ORT_FORMAT)
    root = tmp_path / "c"
    start_session(str(small_folding), choice, "d1", root)
    key = cache_key("d1", DEFAULT_CONFIG)
    directory = entry_dir(root, key)
    marker = directory / KEY_FILE
    if damage == "file":
        with open(directory / CACHE_FILE, "ab") as f:
            f.write(b"\0")
    elif damage == "no_key":
        marker.unlink()
    else:
        stored = json.loads(marker.read_text())
        stored["key"][damage] = "something else"
        marker.write_text(json.dumps(stored))
    assert valid_entry(directory, key) is None
    assert not directory.exists()
    _, state = start_session(str(small_folding), choice, "d1", root)
    assert state == "first"


def test_the_key_carries_model_ort_os_and_configuration() -> None:
    key = cache_key("d1", DEFAULT_CONFIG)
    assert set(key) == {"model_digest", "ort_version", "os_build", "config_id"}
    other = cache_key("d1", replace(DEFAULT_CONFIG, graph_optimization_level="ORT_ENABLE_BASIC"))
    assert entry_dir(Path("/r"), key) != entry_dir(Path("/r"), other)
    assert entry_dir(Path("/r"), key) != entry_dir(Path("/r"), cache_key("d2", DEFAULT_CONFIG))


def test_a_cold_start_search_picks_the_cached_optimized_model(tmp_path: Path) -> None:
    """Folding the constant chain makes every uncached launch slow; the cached optimized model
    starts far sooner in a fresh process, with the same warm latency. Without a cache the
    answer would be one of the uncached choices; with it, the cached one wins the paired,
    replicated head-to-head against ORT's defaults."""
    from autotune.serving.coldstart_search import ColdStartOptions, search_coldstart

    model = folding(tmp_path / "folding.onnx", n=768, chain=3)
    cached = StartChoice(DEFAULT_CONFIG, ORT_FORMAT)
    options = ColdStartOptions(
        warm_budget_ms=50,
        generations=3,
        rounds=2,
        warm_runs=3,
        choices=[
            StartChoice(DEFAULT_CONFIG),
            StartChoice(replace(DEFAULT_CONFIG, graph_optimization_level="ORT_ENABLE_BASIC")),
            cached,
        ],
    )
    outcome = search_coldstart(model, "digest-of-folding", {"x": (1, 768)}, options)
    assert outcome.verdict.outcome == "pick", outcome.verdict.reason
    assert outcome.pick == cached
    # every generation starts from an empty cache: one first-ever launch, then cache hits
    assert outcome.states[2] == ["first", "cached", "cached"] * 3
    assert outcome.states[0] == [NONE] * 6
    first, cold = outcome.first_ever_ms[2], outcome.cold_ms[2]
    assert first is not None and cold is not None and cold < first
    assert outcome.details()["contenders"][2]["label"].endswith("(cached)")


def test_best_start_serves_the_stored_pick_from_its_cache(small_folding: Path) -> None:
    """No verdict: ORT's defaults, no cache. A stored cached pick: the first launch fills the
    cache, the next loads from it; both give the outputs of a plain session."""
    import onnxruntime as ort

    from autotune.serving.results import COLDSTART, ServingKey, store_verdict
    from autotune.serving.runtime import best_start

    _, how = best_start(small_folding)
    assert how == "none"
    cached = StartChoice(DEFAULT_CONFIG, ORT_FORMAT)
    store_verdict(
        None,
        ServingKey(small_folding, COLDSTART),
        outcome="pick",
        pick=json.dumps(cached.to_dict()),
        pick_label=cached.label(),
    )
    x = {"x": np.ones((2, 64), np.float32)}
    expected = ort.InferenceSession(str(small_folding)).run(None, x)[0]
    first, how1 = best_start(small_folding)
    again, how2 = best_start(small_folding)
    assert (how1, how2) == ("first", "cached")
    np.testing.assert_allclose(again.run(None, x)[0], expected, rtol=1e-5)
    np.testing.assert_allclose(first.run(None, x)[0], expected, rtol=1e-5)


def test_the_providers_compile_cache_is_filled_once_then_used(
    small_folding: Path, tmp_path: Path
) -> None:
    """OpenVINO's CACHE_DIR as a cold-start cache: the first start compiles and fills the
    entry's folder, the next finds it ("cached"), both answer as a plain session does; an entry
    whose key another ORT version wrote is removed, never used."""
    from autotune.serving.coldstart import EP_CACHE
    from autotune.serving.coldstart_search import openvino_plugin_configs

    configs = openvino_plugin_configs()
    if not configs:
        pytest.skip("the OpenVINO plugin EP reports no device here")
    choice = StartChoice(configs[0], EP_CACHE)
    assert choice.label().endswith("from the provider's compile cache")
    root = tmp_path / "c"
    first, state1 = start_session(str(small_folding), choice, "d1", root)
    again, state2 = start_session(str(small_folding), choice, "d1", root)
    assert (state1, state2) == ("first", "cached")
    key = cache_key("d1", configs[0])
    folder = valid_entry(entry_dir(root, key), key, EP_CACHE)
    assert folder is not None and any(folder.rglob("*.blob"))
    x = {"x": np.ones((1, 64), np.float32)}
    np.testing.assert_allclose(again.run(None, x)[0], first.run(None, x)[0], rtol=1e-5)
    marker = entry_dir(root, key) / KEY_FILE
    stored = json.loads(marker.read_text())
    stored["key"]["ort_version"] = "0.0.1"
    marker.write_text(json.dumps(stored))
    _, state = start_session(str(small_folding), choice, "d1", root)
    assert state == "first"


def test_a_choice_whose_first_result_is_wrong_is_left_out(
    small_folding: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate itself, on real outputs: the OpenVINO plugin's first result passes, the same
    result off by 10% does not. The screen leaves out a choice the gate fails (that fault is
    injected: no real provider here answers wrongly) and keeps ORT's CPU EP choices unlaunched."""
    from autotune.serving import coldstart_search
    from autotune.serving.coldstart import accuracy

    configs = coldstart_search.openvino_plugin_configs()
    x = {"x": np.ones((1, 64), np.float32)}
    if configs:
        from autotune.build import build_session

        outputs = build_session(str(small_folding), configs[0]).run(None, x)
        assert accuracy(str(small_folding), configs[0], x, outputs) is None
        wrong = accuracy(str(small_folding), configs[0], x, [o * 1.1 for o in outputs])
        assert wrong is not None and "fp32" in wrong
    assert accuracy(str(small_folding), DEFAULT_CONFIG, x, [np.zeros(1)]) is None  # CPU EP
    launched: list[str] = []

    def fake_launch(
        model: Path, digest: str, shapes: object, c: StartChoice, *a: object
    ) -> dict[str, str]:
        launched.append(c.label())
        return {"accuracy": "output 0 differs (fp32)"}

    monkeypatch.setattr(coldstart_search, "launch", fake_launch)
    plugin_like = replace(
        DEFAULT_CONFIG, plugin={"package": "p", "version": "1", "device": "CPU/1/0"}
    )
    kept, left_out = coldstart_search.screen_accuracy(
        small_folding,
        "d1",
        {"x": (1, 64)},
        [StartChoice(DEFAULT_CONFIG), StartChoice(plugin_like)],
        coldstart_search.ColdStartOptions(),
    )
    assert kept == [StartChoice(DEFAULT_CONFIG)]
    problem = "output 0 differs (fp32)"
    assert left_out == [{"label": StartChoice(plugin_like).label(), "problem": problem}]
    assert launched == [StartChoice(plugin_like).label()]
