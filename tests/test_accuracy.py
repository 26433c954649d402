"""The accuracy gate: a configuration whose outputs differ from the CPU-EP fp32 reference beyond
tolerance is stored as inaccurate and never picked."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from autotune.build import build_session
from autotune.config import CPU, SessionConfig
from autotune.errors import SearchError
from autotune.examples import write_example
from autotune.measure.accuracy import (
    check,
    check_tolerances,
    judge,
    judged_alike,
    reduced_precision,
    tier,
    tier_for,
)
from autotune.measure.manager import Manager, Protocol, WorkerSetup
from autotune.model import load_model_info, resolve_shapes, synthetic_feeds
from autotune.store.records import Status, TrialRecord
from tests import models
from tests.conftest import FAST

# ORT's tanh approximation of GELU: a real configuration that changes outputs by ~1e-3
APPROX = SessionConfig(session_entries={"optimization.enable_gelu_approximation": "1"})


@pytest.fixture(scope="module")
def transformer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_example("transformer", tmp_path_factory.mktemp("m") / "transformer.onnx")


def _worker(path: Path, protocol: Protocol) -> Manager:
    info = load_model_info(path)
    feeds = synthetic_feeds(info, resolve_shapes(info))
    return Manager(WorkerSetup(str(path), feeds, protocol))


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


def test_fp32_tier_by_dtype() -> None:
    ref: list[Any] = [np.array([1.0, 2.0], np.float32), np.array([1, 2], np.int64)]
    assert judge(ref, [ref[0] + 1e-6, ref[1]]).ok
    bad = judge(ref, [ref[0] + 0.1, ref[1]])
    assert not bad.ok and bad.max_abs_err == pytest.approx(0.1, rel=1e-3)
    assert "0.1" in (bad.problem or "") and bad.tier == "fp32"
    assert not judge(ref, [ref[0], ref[1] + 1]).ok
    half: list[Any] = [np.array([1.0], np.float16)]
    assert judge(half, [half[0] + np.float16(0.005)]).ok  # fp16 outputs: rtol 1e-2
    nan = [np.array([np.nan, 1.0], np.float32)]
    assert not judge([np.array([0.0, 1.0], np.float32)], nan).ok


# -- accuracy tiers: a model computed in fp16 against the fp32 reference ----------------------


def _fp32_and_fp16_outputs(path: Path) -> tuple[list[Any], list[Any]]:
    """The CPU reference of the fp32 model (ORT_DISABLE_ALL, as the gate's) and the outputs of
    its fp16 twin on the same inputs."""
    half_path = path.with_name(path.stem + "-fp16.onnx")
    onnx.save(models.fp16_twin(onnx.load(str(path))), str(half_path))
    info = load_model_info(path)
    feeds = synthetic_feeds(info, resolve_shapes(info))
    reference = build_session(path, SessionConfig(graph_optimization_level="ORT_DISABLE_ALL")).run(
        None, feeds
    )
    half_feeds = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in feeds.items()}
    outputs = build_session(half_path, SessionConfig()).run(None, half_feeds)
    assert outputs[0].dtype == np.float16
    return reference, outputs


def test_fp16_computation_fails_fp32_and_passes_the_fp16_tiers(
    tmp_path: Path, transformer: Path
) -> None:
    for name, path in (
        ("transformer", transformer),
        ("mobilenetv2", write_example("mobilenetv2", tmp_path / "mobilenetv2.onnx")),
    ):
        reference, outputs = _fp32_and_fp16_outputs(path)
        exact = judge(reference, outputs, tier("fp32"))
        assert not exact.ok and "fp32 tier" in (exact.problem or ""), name
        assert 1e-3 < exact.max_abs_err < 1e-2, name  # fp16 rounding, not a broken model
        for accepted in ("fp16", "cosine:0.9999", "topk:5"):
            judged = judge(reference, outputs, tier(accepted))
            assert judged.ok and judged.tier == accepted and judged.err_to_tol <= 1, (name, judged)
        # a stricter task metric than fp16 rounding meets
        assert not judge(reference, outputs, tier("cosine:0.9999999")).ok, name
    # top-1 agreement is stricter than top-5: fp16 moves the transformer's top token to second
    # place on some row
    reference, outputs = _fp32_and_fp16_outputs(transformer)
    top1 = judge(reference, outputs, tier("topk:1"))
    assert not top1.ok and top1.err_to_tol == 2.0
    assert "top 1" in (top1.problem or "")
    # the fp16 tier still fails what is wrong, not rounded: another model's outputs
    wrong = [np.roll(np.asarray(outputs[0]), 1, axis=-1)]
    assert not judge(reference, wrong, tier("fp16")).ok
    assert not judge(reference, wrong, tier("topk:5")).ok


def test_every_tier_fails_shapes_nans_and_integers() -> None:
    ref: list[Any] = [np.array([[1.0, 2.0]], np.float32), np.array([3], np.int64)]
    for name in ("fp32", "fp16", "cosine:0.9", "topk:1"):
        chosen = tier(name)
        assert judge(ref, [ref[0], ref[1]], chosen).ok
        assert not judge(ref, [ref[0].reshape(2, 1), ref[1]], chosen).ok
        assert not judge(ref, [np.array([[np.nan, 2.0]], np.float32), ref[1]], chosen).ok
        assert not judge(ref, [ref[0], ref[1] + 1], chosen).ok


def test_accuracy_option_spellings() -> None:
    assert check("auto") == "auto" and check("FP16") == "fp16" and check(" fp32 ") == "fp32"
    assert check("cosine:0.9990") == "cosine:0.999" and check("topk:5") == "topk:5"
    for bad in ("fp8", "cosine", "cosine:1", "cosine:x", "topk:0", "topk:2.5", "fp16:3", ""):
        with pytest.raises(SearchError, match="is not one of auto, fp32, fp16, cosine:T"):
            check(bad)
    assert check_tolerances("auto", 1e-2, None) == "auto"
    with pytest.raises(SearchError, match="--rtol applies to the fp32 and fp16 tiers, not to "):
        check_tolerances("cosine:0.99", 1e-2, None)
    with pytest.raises(SearchError, match="--atol must be a number from 0 up, not -1"):
        check_tolerances("fp16", None, -1.0)


def _config(name: str, options: dict[str, str], **kwargs: Any) -> SessionConfig:
    return SessionConfig(providers=((name, options), (CPU, {})), **kwargs)


def test_auto_judges_accelerators_that_compute_in_fp16_at_the_fp16_tier() -> None:
    coreml, ov = "CoreMLExecutionProvider", "OpenVINOExecutionProvider"
    f16 = '{"CPU": {"INFERENCE_PRECISION_HINT": "f16"}}'
    # a load_config of several devices (MULTI, HETERO): any one of them in bf16 is enough
    two = '{"CPU": {"NUM_STREAMS": "1"}, "GPU": {"INFERENCE_PRECISION_HINT": "bf16"}}'
    fp16 = {
        "Core ML ALL": _config(coreml, {}),
        "Core ML on the GPU": _config(coreml, {"MLComputeUnits": "CPUAndGPU"}),
        "Core ML on the Neural Engine": _config(coreml, {"MLComputeUnits": "CPUAndNeuralEngine"}),
        "OpenVINO FP16": _config(ov, {"device_type": "GPU", "precision": "FP16"}),
        "OpenVINO GPU": _config(ov, {"device_type": "GPU"}),
        "OpenVINO f16 hint": _config(ov, {"device_type": "CPU", "load_config": f16}),
        "OpenVINO bf16 on one of two": _config(ov, {"device_type": "CPU", "load_config": two}),
        "TensorRT fp16": _config("TensorrtExecutionProvider", {"trt_fp16_enable": "1"}),
        "a plugin EP's GPU": _config(
            "MLXExecutionProvider", {}, plugin={"package": "p", "version": "1", "device": "GPU/1/2"}
        ),
    }
    fp32 = {
        "the CPU EP": SessionConfig(intra_op_num_threads=2),
        "Core ML CPUOnly": _config(coreml, {"MLComputeUnits": "CPUOnly"}),
        "OpenVINO CPU": _config(ov, {"device_type": "CPU", "precision": "ACCURACY"}),
        "OpenVINO GPU FP32": _config(ov, {"device_type": "GPU", "precision": "FP32"}),
        "OpenVINO f32 hint": _config(
            ov, {"device_type": "CPU", "load_config": f16.replace("f16", "f32")}
        ),
        "OpenVINO, load_config not JSON": _config(ov, {"device_type": "CPU", "load_config": "{"}),
        "TensorRT fp32": _config("TensorrtExecutionProvider", {"trt_fp16_enable": "0"}),
        "a plugin EP's CPU": _config(
            "MLXExecutionProvider", {}, plugin={"package": "p", "version": "1", "device": "CPU/1/2"}
        ),
    }
    for label, config in fp16.items():
        chosen, why = tier_for(config, "auto")
        assert chosen.name == "fp16" and why, label
        assert tier_for(config, "fp32") == (tier("fp32"), None), label  # the user's tier wins
    for label, config in fp32.items():
        assert tier_for(config, "auto") == (tier("fp32"), None), label
        assert tier_for(config, "topk:3")[0].name == "topk:3", label
    assert "MLComputeUnits=CPUAndNeuralEngine" in (
        reduced_precision(fp16["Core ML on the Neural Engine"]) or ""
    )
    # a device policy: where ORT put the nodes decides
    policy = SessionConfig(device_policy="PREFER_GPU")
    assert reduced_precision(policy, {"nodes": {CPU: 12}}) is None
    on_gpu = reduced_precision(policy, {"nodes": {CPU: 2, "CoreMLExecutionProvider": 10}})
    assert on_gpu == "device policy PREFER_GPU placed nodes on CoreMLExecutionProvider"


def test_stored_trials_judged_at_another_tier_are_not_reused() -> None:
    coreml = _config("CoreMLExecutionProvider", {"MLComputeUnits": "ALL"}).to_json()
    cpu = SessionConfig(intra_op_num_threads=1).to_json()

    def row(config: str, status: str, accuracy: str | None) -> TrialRecord:
        return TrialRecord(config=config, status=status, accuracy=accuracy)

    inaccurate_at_fp32 = row(coreml, Status.INACCURATE, "fp32")
    assert judged_alike(inaccurate_at_fp32, "fp32")
    assert not judged_alike(inaccurate_at_fp32, "auto")  # auto judges it at fp16: measure again
    assert judged_alike(row(coreml, Status.OK, "fp16"), "auto")
    assert not judged_alike(row(coreml, Status.OK, "fp16"), "fp32")
    assert judged_alike(row(cpu, Status.OK, None), "auto")  # before tiers: fp32
    assert not judged_alike(row(cpu, Status.OK, None), "cosine:0.99")
    assert judged_alike(row(coreml, Status.CRASHED, None), "cosine:0.99")  # never judged


def test_a_search_stores_its_accuracy_and_each_trial_tier(transformer: Path) -> None:
    from autotune.output.tables import outcome_text
    from autotune.store.database import Store
    from autotune.tuning.search import SearchOptions, run_search

    protocol = Protocol(**{**FAST.__dict__, "accuracy": "cosine:0.9999"})
    worker = _worker(transformer, protocol)
    try:
        result = worker.measure(APPROX, timeout=120)
    finally:
        worker.close()
    # the GELU approximation (inaccurate at fp32) is well within the task metric
    assert result.status == Status.OK and result.accuracy == "cosine:0.9999"
    outcome = run_search(transformer, SearchOptions(trials=2, protocol=protocol, seed=1))
    with Store.open() as store:
        search = store.searches(outcome.key)[0]
        rows = store.trials(outcome.key)
    assert search.accuracy == "cosine:0.9999"
    assert {r.accuracy for r in rows if r.measured} == {"cosine:0.9999"}
    assert all(c["accuracy"] == "cosine:0.9999" for c in outcome.compared)
    assert outcome.resumed == 0
    # the same search again resumes its trials; one at another tier measures them again
    again = run_search(transformer, SearchOptions(trials=2, protocol=protocol, seed=1))
    assert again.resumed == 2 and again.measured == 0
    exact = Protocol(**{**FAST.__dict__, "accuracy": "fp32"})
    other = run_search(transformer, SearchOptions(trials=2, protocol=exact, seed=1))
    assert other.resumed == 0 and other.measured == 2
    # the outcome's text states each contender's tier, and a pick's
    text = outcome_text(other)
    assert "accuracy" in text and "cosine" not in text
    assert all(c["accuracy"] == "fp32" for c in other.compared)
    why = "Core ML runs fp32 models in fp16 on the GPU and Neural Engine (MLComputeUnits=ALL)"
    pick = SessionConfig(intra_op_num_threads=1)
    entry = {**other.compared[0], "config_id": pick.config_id, "accuracy": "fp16"}
    picked = replace(other, outcome="pick", pick=pick, compared=[{**entry, "accuracy_why": why}])
    assert f"at the fp16 tier (--accuracy auto: {why}), not at fp32" in outcome_text(picked)
    with pytest.raises(SearchError, match="--accuracy 'fp8' is not one of"):
        run_search(transformer, SearchOptions(trials=1, protocol=Protocol(accuracy="fp8")))


def test_show_and_best_state_the_picks_tier(mlp_path: Path) -> None:
    from click.testing import CliRunner

    from autotune.chip import current_chip
    from autotune.commands.cli import cli
    from autotune.digest import model_digest
    from autotune.store.database import Store
    from autotune.store.records import SearchRecord

    pick = SessionConfig(intra_op_num_threads=1).canonical()
    why = "Core ML runs fp32 models in fp16 on the GPU and Neural Engine (MLComputeUnits=ALL)"
    chip = current_chip()
    key = {"model_digest": model_digest(mlp_path), "chip": chip.chip_id,
           "ort_version": chip.ort_version, "shapes": "x=1x16", "default_shapes": 1,
           "search_id": "s1"}  # fmt: skip
    compared = [{"config_id": pick.config_id, "accuracy": "fp16", "accuracy_why": why}]
    with Store.open(write=True) as store:
        store.upsert_search(SearchRecord.from_row({
            **key, "state": "done", "outcome": "pick", "pick_config": pick.to_json(),
            "pick_config_id": pick.config_id, "speedup": 1.25, "accuracy": "auto",
            "finished_at": "2026-12-01T10:00:00+00:00",
            "verdict": json.dumps({"reason": "r", "compared": compared})}))  # fmt: skip
        store.record_trial(TrialRecord.from_row({
            **key, "trial_uid": "t1", "config_id": pick.config_id, "config": pick.to_json(),
            "status": "ok", "ratio": 0.8, "accuracy": "fp16"}))  # fmt: skip
    runner = CliRunner()
    best = runner.invoke(cli, ["best", str(mlp_path)])
    assert best.exit_code == 0, best.output
    assert f"accuracy:    fp16 tier ({why})" in best.output
    shown = runner.invoke(cli, ["show", str(mlp_path)])
    assert f"outputs at the fp16 tier ({why})" in shown.output
    assert (
        json.loads(runner.invoke(cli, ["best", str(mlp_path), "--json"]).output)["accuracy"]
        == f"fp16 ({why})"
    )
