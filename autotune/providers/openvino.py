"""The OpenVINO execution provider (its own wheel, ``onnxruntime-openvino``; never co-install it
with ``onnxruntime``). It runs on this x86 CPU, so it is the one accelerator EP testable here.

Booleans are ``"true"``/``"false"``: OpenVINO rejects ``"1"``. An invalid value (a precision the
device lacks, a device that is absent) makes ORT drop the EP silently and run on CPU, so
``precision_valid_for_device`` refuses such combinations before a session is built.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from autotune.providers.base import Option, ProviderSpace, SearchContext, TrialLike

_BOOL = ("false", "true")
_DEVICE = r"CPU|GPU(\.[0-9])?|NPU"
# precisions each device accepts (ORT's OpenVINO execution provider page,
# onnxruntime.ai/docs/execution-providers/OpenVINO-ExecutionProvider.html)
PRECISIONS = {
    "CPU": ("FP32", "ACCURACY"),
    "GPU": ("FP32", "FP16", "ACCURACY"),
    "NPU": ("FP16",),
}
_INPUT = r"[A-Za-z0-9_.\-]{1,128}"
_DIMS = r"[0-9]{1,7}(\.\.[0-9]{1,7})?(,[0-9]{1,7}(\.\.[0-9]{1,7})?){0,7}"

OPTIONS = {
    o.key: o
    for o in (
        Option(
            "device_type",
            pattern=rf"({_DEVICE})|(AUTO|HETERO|MULTI):({_DEVICE})(,({_DEVICE})){{0,3}}",
        ),
        Option("precision", ("FP32", "FP16", "ACCURACY")),
        Option("num_of_threads", pattern=r"[1-9][0-9]{0,3}"),
        Option("num_streams", pattern=r"[1-8]"),
        Option("model_priority", ("LOW", "MEDIUM", "HIGH", "DEFAULT"), default="DEFAULT"),
        Option("enable_qdq_optimizer", _BOOL),
        Option("disable_dynamic_shapes", _BOOL),
        Option("enable_opencl_throttling", _BOOL),
        Option("enable_causallm", _BOOL),
        Option("reshape_input", pattern=rf"{_INPUT}\[{_DIMS}\](,{_INPUT}\[{_DIMS}\]){{0,31}}"),
        Option("layout", pattern=rf"{_INPUT}\[[A-Z?]{{1,8}}\](,{_INPUT}\[[A-Z?]{{1,8}}\]){{0,31}}"),
        Option("cache_dir", risk="writes_files"),
        # a JSON of OpenVINO properties: it can set CACHE_DIR and anything else
        Option("load_config", risk="writes_files"),
        Option("context", risk="pointer"),  # an OpenCL context
    )
}


def _suggest(trial: TrialLike, ctx: SearchContext) -> dict[str, str]:
    # Only the CPU device: SearchContext does not say whether an Intel GPU or NPU is present,
    # and asking for an absent device silently yields a CPU-EP session. AUTO:CPU is the CPU
    # plugin behind one more layer, so it is not a separate choice either.
    device = "CPU"
    options = {
        "device_type": device,
        # per-device parameter names: a device's precisions are a fixed set of choices
        "precision": trial.suggest_categorical(f"openvino.precision.{device}", PRECISIONS[device]),
        "num_streams": str(trial.suggest_int("openvino.num_streams", 1, min(8, max(1, ctx.cores)))),
        "num_of_threads": str(trial.suggest_int("openvino.num_of_threads", 1, max(1, ctx.cores))),
    }
    if ctx.has_dynamic_inputs:  # recompiles per input shape; a no-op for static models
        options["disable_dynamic_shapes"] = trial.suggest_categorical(
            "openvino.disable_dynamic_shapes", _BOOL
        )
    return options


def _latency_setup(ctx: SearchContext) -> dict[str, Any]:
    """The first OpenVINO trial: fp32, one stream, a thread per core (the CPU plugin's latency
    setup; the EP's own defaults come from its build), so OpenVINO's own gain is measured
    before the sampler varies its options."""
    return {
        "openvino.precision.CPU": "FP32",
        "openvino.num_streams": 1,
        "openvino.num_of_threads": max(1, ctx.cores),
        "openvino.disable_dynamic_shapes": "false",
    }


def _devices(device_type: str) -> list[str]:
    """``AUTO:GPU.0,CPU`` -> ``["GPU", "CPU"]``."""
    listed = device_type.split(":", 1)[-1]
    return [re.sub(r"\.[0-9]+$", "", d) for d in listed.split(",")]


def precision_valid_for_device(
    options: Mapping[str, str], session: Mapping[str, Any]
) -> str | None:
    precision = options.get("precision")
    if precision is None:
        return None
    device_type = options.get("device_type", "CPU")
    for device in _devices(device_type):
        if precision not in PRECISIONS.get(device, ()):
            allowed = ", ".join(PRECISIONS.get(device, ()))
            return f"precision {precision} is not available on {device} (allowed: {allowed})"
    return None


def qdq_optimizer_needs_npu_or_gpu(
    options: Mapping[str, str], session: Mapping[str, Any]
) -> str | None:
    devices = _devices(options.get("device_type", "CPU"))
    if options.get("enable_qdq_optimizer") == "true" and not {"GPU", "NPU"} & set(devices):
        return "enable_qdq_optimizer=true only acts on NPU and GPU devices"
    return None


SPACE = ProviderSpace(
    name="OpenVINOExecutionProvider",
    short="openvino",
    options=OPTIONS,
    suggest=_suggest,
    first_point=_latency_setup,
    constraints={
        "precision_valid_for_device": precision_valid_for_device,
        "qdq_optimizer_needs_npu_or_gpu": qdq_optimizer_needs_npu_or_gpu,
    },
    cache_options={"cache_dir": "openvino"},
    compile_cost=2,
    pip_package="onnxruntime-openvino",
)
