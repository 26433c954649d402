"""The persistent compile cache (``autotune.compile_cache``): keying, kill-safety, locking,
retry, pruning, trials sharing one compile, load objectives, device policies.

Core ML cannot run here. What is driven by a real compiling EP runs on the OpenVINO plugin
(``onnxruntime-ep-openvino``, its ``CACHE_DIR`` inside ``load_config``) through the same code
path; OpenVINO recompiles over a damaged blob by itself, so what only Core ML does (a
half-written ``.mlpackage`` that fails to compile on every later launch) is emulated by
``coreml_like_build``, a stand-in that says so. Processes are really started and really killed.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import platform
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

import autotune
from autotune import compile_cache, plugins
from autotune.build import build_session, build_trial_session
from autotune.compile_cache import build_cached, compile_key, prune
from autotune.config import SessionConfig
from autotune.errors import ConfigError
from autotune.output.tables import load_text
from autotune.store.records import TrialRecord
from autotune.tuning import objectives
from tests.test_resolver import _store_pick

COREML = "CoreMLExecutionProvider"
OPENVINO = "onnxruntime-ep-openvino"


def _coreml(**options: str) -> SessionConfig:
    return SessionConfig(providers=((COREML, {"ModelFormat": "MLProgram", **options}),))


def openvino_config(**session: Any) -> SessionConfig | None:
    """A configuration on the OpenVINO plugin's CPU device, or None where it reports none (also
    ``scripts/bench_compile_cache.py``'s)."""
    pkg = next((p for p in plugins.discover() if p.package == OPENVINO), None)
    devices = plugins.devices_of(pkg) if pkg else []
    if pkg is None or not devices:
        return None
    return SessionConfig(
        providers=(("OpenVINOExecutionProvider", {"load_config": '{"CPU":{"NUM_STREAMS":"1"}}'}),),
        plugin={
            "package": OPENVINO,
            "version": pkg.version,
            "device": plugins.device_selector(devices[0]),
        },
        **session,
    ).canonical()


def _need_openvino(**session: Any) -> SessionConfig:
    config = openvino_config(**session)
    if config is None:
        pytest.skip("the OpenVINO plugin reports no device on this machine (an AMD CPU)")
    return config


# -- a stand-in for what only Core ML does ---------------------------------------------------


def coreml_like_build(directory: Path, step: Any = None) -> str:
    """STAND-IN for ORT's CoreML EP with ``ModelCacheDirectory`` (Core ML cannot run here),
    following ``model_builder.cc`` and ``model.mm``: an existing ``…/model`` package counts as
    cached and is compiled as it is, and compiling a package without its manifest fails
    ("Error compiling model"); otherwise the package folder is created first, the weights are
    written, the manifest last, and the compiled model is moved beside it. Each compile is
    appended to ``compiles.log`` beside the directory. ``step`` (an Event) is set once the
    folder exists, so a test can kill the process in the middle of the write."""
    package = directory / "coreml" / "1234" / "0_dynamic_mlprogram" / "model"
    if package.exists():
        if not (package / "Manifest.json").exists():
            raise RuntimeError("Error compiling model: the package is not a valid .mlpackage")
        return "cached"
    package.mkdir(parents=True)  # MPL::ModelPackage(path, create=true) in the constructor
    if step is not None:
        step.set()
        time.sleep(600)  # the 10-15 s compile: killed while here
    (package / "weight.bin").write_bytes(b"\0" * 1024)
    (package / "Manifest.json").write_text("{}")
    (package.parent / "compiled_model.mlmodelc").mkdir()
    with open(directory.parent / "compiles.log", "a") as log:
        log.write(f"{os.getpid()}\n")
    return "compiled"


def _killed_mid_compile(directory: str, step: Any, cached: bool) -> None:
    path = Path(directory)
    if cached:
        build_cached(path, lambda d: coreml_like_build(d, step))
    else:
        coreml_like_build(path, step)


def _kill_during_compile(directory: Path, *, through_cache: bool) -> None:
    ctx = multiprocessing.get_context("spawn")
    step = ctx.Event()
    child = ctx.Process(target=_killed_mid_compile, args=(str(directory), step, through_cache))
    child.start()
    try:
        assert step.wait(120), "the child never started its compile"
    finally:
        os.kill(child.pid or 0, signal.SIGKILL)  # an app force-quit during its first compile
        child.join()
    assert child.exitcode == -signal.SIGKILL


def test_the_stand_in_fails_forever_after_a_kill_as_core_ml_does(tmp_path: Path) -> None:
    directory = tmp_path / "entry"
    _kill_during_compile(directory, through_cache=False)
    for _ in range(2):  # every later launch
        with pytest.raises(RuntimeError, match="Error compiling model"):
            coreml_like_build(directory)


def test_a_compile_killed_part_way_is_wiped_and_rebuilt(tmp_path: Path) -> None:
    directory = tmp_path / "entry"
    _kill_during_compile(directory, through_cache=True)
    assert directory.exists() and not (directory / compile_cache.MARKER).exists()
    built = build_cached(directory, coreml_like_build)
    assert built.session == "compiled" and built.cold
    assert built.wiped == "a build that stopped part-way left it incomplete"
    again = build_cached(directory, coreml_like_build)
    assert again.session == "cached" and not again.cold and again.wiped is None
    assert again.cold_ms == built.cold_ms  # the cold compile, as recorded when it was paid


def _build_and_die(directory: str, model: str, config_json: str) -> None:
    def build(d: Path) -> Any:
        build_session(model, SessionConfig.from_json(config_json), cache_dir=d)
        os.kill(os.getpid(), signal.SIGKILL)  # killed after ORT wrote, before it was marked

    build_cached(Path(directory), build)


def test_a_real_openvino_cache_left_unmarked_is_rebuilt(mlp_path: Path, tmp_path: Path) -> None:
    config = _need_openvino()
    directory = tmp_path / "entry"
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(
        target=_build_and_die, args=(str(directory), str(mlp_path), config.to_json())
    )
    child.start()
    child.join()
    assert child.exitcode == -signal.SIGKILL
    assert list(directory.rglob("*.blob")) and not (directory / compile_cache.MARKER).exists()
    built = build_cached(directory, lambda d: build_session(mlp_path, config, cache_dir=d))
    assert built.cold and built.wiped is not None
    assert built.session.get_providers()[0] == "OpenVINOExecutionProvider"
    assert list(directory.rglob("*.blob")) and (directory / compile_cache.MARKER).exists()


def _start_together(directory: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    built = build_cached(Path(directory), lambda d: coreml_like_build(d))
    results.put((built.session, built.cold))


def test_two_instances_starting_together_compile_once(tmp_path: Path) -> None:
    directory = tmp_path / "entry"
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    children = [
        ctx.Process(target=_start_together, args=(str(directory), barrier, results))
        for _ in range(2)
    ]
    for child in children:
        child.start()
    outcomes = sorted(results.get(timeout=120) for _ in children)
    for child in children:
        child.join()
    assert outcomes == [("cached", False), ("compiled", True)]
    assert len((tmp_path / "compiles.log").read_text().split()) == 1


def test_a_filled_cache_that_fails_is_wiped_and_retried_once(tmp_path: Path) -> None:
    directory = tmp_path / "entry"
    build_cached(directory, coreml_like_build)
    manifest = next(directory.rglob("Manifest.json"))
    manifest.unlink()  # damaged after it was marked complete (an upgrade, a disk error)
    built = build_cached(directory, coreml_like_build)
    assert built.session == "compiled" and built.cold and built.wiped == "it failed to build"

    calls = []

    def always_fails(d: Path) -> None:
        calls.append(d)
        (d / "partial").mkdir(parents=True, exist_ok=True)
        raise RuntimeError("Error compiling model")

    with pytest.raises(RuntimeError, match="Error compiling model"):
        build_cached(directory, always_fails)
    assert len(calls) == 2 and not directory.exists()  # retried once, nothing broken left

    calls.clear()
    with pytest.raises(RuntimeError):
        build_cached(directory, always_fails)
    assert len(calls) == 1  # an empty cache is not retried: the cache is not what failed


def test_autotunes_own_errors_leave_the_cache_alone(tmp_path: Path) -> None:
    directory = tmp_path / "entry"
    build_cached(directory, coreml_like_build)

    def refused(d: Path) -> None:
        raise ConfigError("onnxruntime-ep-foo is not installed")

    with pytest.raises(ConfigError):
        build_cached(directory, refused)
    assert build_cached(directory, coreml_like_build).session == "cached"


# -- keying -----------------------------------------------------------------------------------


def test_load_time_options_share_a_compile_key() -> None:
    base = compile_key(_coreml())
    # applied to the MLModelConfiguration when the compiled model is loaded (model.mm)
    for same in (
        _coreml(MLComputeUnits="CPUAndNeuralEngine"),
        _coreml(SpecializationStrategy="FastPrediction"),
        _coreml(MLComputeUnits="CPUAndGPU", AllowLowPrecisionAccumulationOnGPU="1"),
        SessionConfig(providers=_coreml().providers, intra_op_num_threads=2),
        SessionConfig(
            providers=_coreml().providers,
            session_entries={"session.intra_op.allow_spinning": "0"},
        ),
    ):
        assert compile_key(same) == base, same.describe()
    # what changes the compiled model (format, static shapes, subgraphs, the graph ORT hands over)
    for other in (
        _coreml(ModelFormat="NeuralNetwork"),
        _coreml(RequireStaticInputShapes="1"),
        _coreml(EnableOnSubgraphs="1"),
        SessionConfig(providers=_coreml().providers, graph_optimization_level="ORT_ENABLE_BASIC"),
        SessionConfig(providers=_coreml().providers, free_dimension_overrides={"batch": 1}),
        SessionConfig(
            providers=_coreml().providers,
            session_entries={"optimization.enable_gelu_approximation": "1"},
        ),
    ):
        assert compile_key(other) != base, other.describe()


def test_the_entry_is_keyed_by_ort_version_os_build_and_architecture(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _coreml()
    first = compile_cache.entry_dir("ab" * 32, config)
    assert first.parent.name == compile_cache.runtime_tag()
    assert ort.__version__ in first.parent.name
    # another ORT (an upgrade: partitions differ) and another OS build (another Core ML
    # compiler) must never reuse it; injected, since neither can be installed side by side here
    monkeypatch.setattr(ort, "__version__", "1.99.0")
    upgraded = compile_cache.entry_dir("ab" * 32, config)
    assert upgraded != first and "ort1.99.0" in upgraded.parent.name
    monkeypatch.setattr(platform, "release", lambda: "another-build")
    assert compile_cache.entry_dir("ab" * 32, config) != upgraded
    # on macOS the build is kern.osversion, read by sysctlbyname (a fake sysctl here)
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(compile_cache, "_sysctl_string", lambda name: "23E224")
    assert compile_cache.os_build() == "23E224"
    assert "23E224" in compile_cache.entry_dir("ab" * 32, config).parent.name


# -- pruning ----------------------------------------------------------------------------------


def _entry(root: Path, digest: str, key: str, *, age: float, size: int = 10) -> Path:
    directory = root / digest / "tag" / key

    def compile_into(d: Path) -> None:
        d.mkdir()
        (d / "blob").write_bytes(b"x" * size)

    build_cached(directory, compile_into)
    stamp = time.time() - age
    os.utime(directory / compile_cache.MARKER, (stamp, stamp))
    return directory


def test_prune_keeps_the_most_recently_used(tmp_path: Path) -> None:
    root = tmp_path / "compiled"
    old = _entry(root, "d1", "k1", age=3000)
    middle = _entry(root, "d1", "k2", age=2000)
    new = _entry(root, "d2", "k1", age=1000)
    build_cached(middle, coreml_like_build)  # used again: now the most recent
    assert prune(root, max_entries=2) == [old]
    assert middle.exists() and new.exists()
    # a size bound too: the older of the two no longer fits
    assert prune(root, max_entries=10, max_bytes=_size(middle) + 5) == [new]
    assert not (root / "d2").exists()  # empty parents go with it


def _size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def test_prune_skips_a_directory_being_built_and_drops_abandoned_ones(tmp_path: Path) -> None:
    root = tmp_path / "compiled"
    kept = _entry(root, "d1", "k1", age=5000)
    abandoned = root / "d1" / "tag" / "k2"
    abandoned.mkdir()
    abandoned.with_name("k2.lock").touch()  # a build killed part-way: no marker, lock free
    with compile_cache._locked(kept.with_name("k1.lock")):  # another process is building
        assert prune(root, max_entries=0) == [abandoned]
    assert kept.exists()
    assert prune(root, max_entries=0) == [kept]


# -- trials, load objectives ------------------------------------------------------------------


def test_trials_differing_only_at_run_time_share_one_compile(
    mlp_path: Path, tmp_path: Path
) -> None:
    first = _need_openvino()
    second = _need_openvino(intra_op_num_threads=1)  # scheduling only: the same compiled model
    assert first.config_id != second.config_id and compile_key(first) == compile_key(second)
    root = str(tmp_path / "trials")
    dir_a, dir_b = compile_cache.trial_dir(root, first), compile_cache.trial_dir(root, second)
    assert dir_a == dir_b
    session, cold_ms, cached_ms = build_trial_session(str(mlp_path), first, dir_a)
    assert session.get_providers()[0] == "OpenVINOExecutionProvider"
    assert cached_ms is not None  # built again from the cache, in a fresh process
    session, cold_b, cached_b = build_trial_session(str(mlp_path), second, dir_b)
    assert cold_b == cold_ms  # the cold compile is the key's, recorded once
    assert cached_b is not None and cached_b != cold_ms
    assert len(list(Path(root).iterdir())) == 2  # one directory and its lock


def test_load_objectives_rank_compiling_eps_by_the_cached_load() -> None:
    default = TrialRecord(
        config_id="default", ratio=1.0, session_create_ms=40.0, first_run_ms=5.0, session_rss_mb=9
    )
    coreml = TrialRecord(
        config_id="coreml",
        ratio=0.5,
        session_create_ms=12000.0,  # the cold compile, paid once
        cached_session_create_ms=30.0,  # each later launch
        first_run_ms=5.0,
        session_rss_mb=9,
    )
    assert objectives.load_ms(coreml) == 35.0 and coreml.load_ms == 12005.0
    score = objectives.score(coreml, "load", default)
    assert score is not None and score < 1
    # faster and, at each launch, quicker to load: the cold compile no longer hides that
    ranked = objectives.choose([default, coreml], "load", default)
    assert [r.config_id for r in ranked] == ["coreml"]
    assert load_text(35.0, 12005.0) == "35.00 ms (cold 12005 ms)"
    assert load_text(45.0, 45.0) == "45.00 ms"


# -- device policies and the run-time resolver ------------------------------------------------


def test_device_policy_sessions_get_a_cache_for_coreml(
    mlp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = SessionConfig(device_policy="PREFER_CPU").canonical()
    assert not compile_cache.uses_compile_cache(policy)  # no compiling EP in this ORT
    # what a macOS arm64 wheel lists (injected: CoreML cannot be installed here)
    real = ort.get_available_providers()
    monkeypatch.setattr(ort, "get_available_providers", lambda: [COREML, *real])
    assert compile_cache.uses_compile_cache(policy)
    _store_pick(mlp_path, policy)
    session = autotune.best_session(mlp_path)  # a real session; ORT selects the CPU here
    key = "ep.coremlexecutionprovider.ModelCacheDirectory"
    directory = Path(session.get_session_options().get_session_config_entry(key))
    assert directory.is_dir() and directory.name == "coreml"
    entry = directory.parent
    assert entry.name == compile_key(policy) and (entry / compile_cache.MARKER).exists()
    assert ort.__version__ in entry.parent.name


def test_an_unusable_cache_directory_builds_without_one(
    mlp_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    policy = SessionConfig(device_policy="PREFER_CPU").canonical()
    real = ort.get_available_providers()
    monkeypatch.setattr(ort, "get_available_providers", lambda: [COREML, *real])  # as above
    _store_pick(mlp_path, policy)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("AUTOTUNE_CACHE_DIR", str(blocker / "cache"))  # mkdir fails for real
    with caplog.at_level(logging.WARNING, logger="autotune"):
        session = autotune.best_session(mlp_path, strict=True)  # the pick, not a fallback
    assert session.run(None, {"x": np.ones((1, 16), np.float32)})
    (record,) = caplog.records
    assert "unusable" in record.getMessage() and "without a compile cache" in record.getMessage()


def test_best_session_fills_then_reuses_the_cache(
    mlp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _need_openvino()
    _store_pick(mlp_path, config)
    session = autotune.best_session(mlp_path)
    assert session.get_providers()[0] == "OpenVINOExecutionProvider"
    (marker,) = (Path(os.environ["AUTOTUNE_CACHE_DIR"]) / "compiled").rglob(compile_cache.MARKER)
    assert marker.parent.name == compile_key(config)
    assert marker.parent.parent.name == compile_cache.runtime_tag()
    assert list(marker.parent.rglob("*.blob")), "OpenVINO compiled into autotune's cache"
    recorded = json.loads(marker.read_text())
    autotune.best_session(mlp_path)  # the next launch loads it: the cold compile stays recorded
    assert json.loads(marker.read_text()) == recorded
    # a launch killed part-way leaves blobs and no marker: the next one starts over
    for blob in marker.parent.rglob("*.blob"):
        blob.write_bytes(blob.read_bytes()[:10])
    marker.unlink()
    with caplog.at_level(logging.INFO, logger="autotune"):
        session = autotune.best_session(mlp_path)
    assert session.get_providers()[0] == "OpenVINOExecutionProvider"
    assert "rebuilt: a build that stopped part-way left it incomplete" in caplog.text
    assert marker.exists()


# -- the Swift resolver -----------------------------------------------------------------------


def test_the_manifest_gives_the_swift_resolver_each_entrys_compile_key(mlp_path: Path) -> None:
    from autotune import manifest

    coreml = _coreml(MLComputeUnits="CPUAndNeuralEngine")
    _store_pick(mlp_path, SessionConfig(intra_op_num_threads=1).canonical())
    data = manifest.build(mlp_path)
    (entry,) = data["entries"]
    assert entry["compile_key"] == compile_key(SessionConfig.from_dict(entry["config"]))
    (read,) = manifest.parse(json.dumps(data)).entries  # autotune's own reader accepts it
    # the key a Swift app files a CoreML compile under ignores the load-time options too
    keyed = replace(read, config=coreml).to_dict()["compile_key"]
    assert keyed == compile_key(_coreml()) != compile_key(_coreml(ModelFormat="NeuralNetwork"))


def test_the_swift_compile_cache_is_keyed_and_guarded_as_autotunes() -> None:
    """No Swift compiler installs here (tests/test_manifest.py parses the file with tree-sitter's
    Swift grammar): the Swift cache is checked to name what autotune.compile_cache names."""
    from autotune.output.snippets import manifest_swift
    from autotune.providers import SPACES

    swift = manifest_swift("model.autotune.json")
    cache = swift.split("struct AutotuneCompileCache {", 1)[1]
    (folder,) = SPACES[COREML].cache_options.values()
    assert f'static let marker = "{compile_cache.MARKER}"' in cache
    assert f"static let maxEntries = {compile_cache.MAX_ENTRIES}" in cache
    assert f'dir.appendingPathComponent("{folder}")' in swift
    assert 'providerOptions["ModelCacheDirectory"] = folder.path' in swift
    # <digest16>/<ort VERSION-Darwin BUILD-ARCH>/<compile key>, as runtime_tag() and entry_dir()
    assert '"ort\\(ORTVersion() ?? "unknown")-Darwin\\(sysctlString("kern.osversion")' in cache
    assert "String(modelDigest.prefix(16))" in cache
    assert 'open(directory.path + ".lock", O_RDWR | O_CREAT, 0o644)' in cache
    assert "flock(lock, LOCK_EX)" in cache
    # no marker: wiped first; a failure on a filled cache: wiped and retried once
    assert "if !filled { try? files.removeItem(at: directory) }" in cache
    assert "if attempt == 1 || !filled { throw error }" in cache
