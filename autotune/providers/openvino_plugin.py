"""The OpenVINO execution provider as a plugin (``onnxruntime-ep-openvino``), beside plain
``onnxruntime`` in one environment. It reports a device per Intel CPU, GPU and NPU it finds
(none on an AMD CPU: there the ``onnxruntime-openvino`` wheel, in an environment of its own, is
the route; see :mod:`autotune.providers.openvino`).

Through ``add_provider_for_devices`` the plugin takes the device from the EP device and ignores
the classic options (``device_type``, ``precision``, ``num_of_threads``, ``num_streams``,
``cache_dir``…): it logs "Provider option … is ignored. Please set it via the load_config" and
unknown keys are ignored silently. So every setting goes through ``load_config``: a JSON object
``{"CPU": {"PERFORMANCE_HINT": "LATENCY", …}}`` of OpenVINO properties, strings only. autotune
accepts only the properties below (names and values as OpenVINO spells them; a test finds each
in the shipped OpenVINO libraries), never ``CACHE_DIR`` or a file path from a database: it sets
``CACHE_DIR`` itself, per model and configuration. Precision names are lower case (``f32``,
``bf16``, ``f16``): the CPU plugin rejects ``F32``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from autotune.providers.base import Option, ProviderSpace, SearchContext, TrialLike

EP_NAME = "OpenVINOExecutionProvider"
PACKAGE = "onnxruntime-ep-openvino"
DEVICE_RE = re.compile(r"CPU|GPU(\.[0-9])?|NPU")
# OpenVINO property -> allowed values (a tuple) or a regular expression (a str)
PROPERTIES: dict[str, tuple[str, ...] | str] = {
    "PERFORMANCE_HINT": ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT"),
    "NUM_STREAMS": r"[1-9][0-9]{0,2}",
    "INFERENCE_NUM_THREADS": r"[1-9][0-9]{0,3}",
    "INFERENCE_PRECISION_HINT": ("f32", "bf16", "f16"),
    "EXECUTION_MODE_HINT": ("PERFORMANCE", "ACCURACY"),
    "MODEL_PRIORITY": ("LOW", "MEDIUM", "HIGH"),
    "NPU_QDQ_OPTIMIZATION": ("YES", "NO"),
}


def check_load_config(value: str) -> str | None:
    """Why ``value`` is not a load_config autotune applies, or None."""
    try:
        data = json.loads(value)
    except ValueError:
        return "must be a JSON object of OpenVINO properties (never a file path)"
    if not isinstance(data, dict) or len(data) != 1:
        return 'must be a JSON object with one device, e.g. {"CPU": {...}}'
    ((device, props),) = data.items()
    if not isinstance(device, str) or not DEVICE_RE.fullmatch(device):
        return f"device {str(device)[:20]!r} is not CPU, GPU, GPU.N or NPU"
    if not isinstance(props, dict):
        return f"properties of {device} must be an object"
    for key, v in props.items():
        rule = PROPERTIES.get(key)
        if rule is None:
            return (
                f"OpenVINO property {str(key)[:40]!r} is not one autotune applies "
                f"(allowed: {', '.join(sorted(PROPERTIES))})"
            )
        ok = isinstance(v, str) and (
            v in rule if isinstance(rule, tuple) else re.fullmatch(rule, v) is not None
        )
        if not ok:
            return f"OpenVINO property {key} has an invalid value {v!r:.40}"
    return None


def load_config(device: str, props: Mapping[str, str]) -> str:
    """Canonical JSON (sorted, no spaces), so equal settings get equal configuration ids."""
    return json.dumps({device: dict(props)}, sort_keys=True, separators=(",", ":"))


OPTIONS = {o.key: o for o in (Option("load_config", validator=check_load_config),)}


def _with_cache(options: dict[str, str], cache_dir: Path | None) -> dict[str, str]:
    """Point OpenVINO's CACHE_DIR (inside load_config) at autotune's own per-model cache."""
    if cache_dir is None or "load_config" not in options:
        return options
    data = json.loads(options["load_config"])
    ((device, props),) = data.items()
    path = cache_dir / "openvino"
    path.mkdir(parents=True, exist_ok=True)
    return {**options, "load_config": json.dumps({device: {**props, "CACHE_DIR": str(path)}})}


def precisions(capabilities: str, ov_device: str) -> tuple[str, ...]:
    """The inference precisions worth trying on a device, from its OPTIMIZATION_CAPABILITIES."""
    caps = set(capabilities.split())
    out = ["f32"]
    if ov_device == "CPU" and "BF16" in caps:
        out.append("bf16")
    if ov_device != "CPU" and "FP16" in caps:
        out.append("f16")
    return tuple(out)


def suggest_for(
    ov_device: str, capabilities: str = ""
) -> Callable[[TrialLike, SearchContext], dict[str, str]]:
    """The define-by-run space of one OpenVINO device (parameter names carry the device, so each
    keeps a fixed set of choices)."""
    kind = ov_device.split(".", 1)[0]
    choices = precisions(capabilities, kind)

    def suggest(trial: TrialLike, ctx: SearchContext) -> dict[str, str]:
        props = {
            "PERFORMANCE_HINT": trial.suggest_categorical(
                f"ovplugin.{kind}.PERFORMANCE_HINT", ("LATENCY", "THROUGHPUT")
            )
        }
        if kind in ("CPU", "GPU"):
            cap = min(8, max(1, ctx.cores)) if kind == "CPU" else 4
            props["NUM_STREAMS"] = str(trial.suggest_int(f"ovplugin.{kind}.NUM_STREAMS", 1, cap))
        if kind == "CPU":
            props["INFERENCE_NUM_THREADS"] = str(
                trial.suggest_int("ovplugin.CPU.INFERENCE_NUM_THREADS", 1, max(1, ctx.cores))
            )
        # the accuracy gate decides whether a lower precision is allowed
        props["INFERENCE_PRECISION_HINT"] = trial.suggest_categorical(
            f"ovplugin.{kind}.INFERENCE_PRECISION_HINT.{'+'.join(choices)}", choices
        )
        return {"load_config": load_config(ov_device, props)}

    return suggest


def _suggest_cpu(trial: TrialLike, ctx: SearchContext) -> dict[str, str]:
    return suggest_for("CPU")(trial, ctx)


def latency_setup(ctx: SearchContext) -> dict[str, Any]:
    """The first trial of an OpenVINO device: the latency hint, one stream, (on a CPU) a thread
    per core, and f32 inference: the precision the fp32 accuracy gate judges (a CPU with AMX
    would otherwise infer in bf16); lower precisions are left to the sampler and the gate."""
    point: dict[str, Any] = {}
    for kind in ("CPU", "GPU", "NPU"):
        point[f"ovplugin.{kind}.PERFORMANCE_HINT"] = "LATENCY"
        point[f"ovplugin.{kind}.NUM_STREAMS"] = 1
        for lower in ("", "+bf16", "+f16"):  # the parameter is named by the device's choices
            point[f"ovplugin.{kind}.INFERENCE_PRECISION_HINT.f32{lower}"] = "f32"
    point["ovplugin.CPU.INFERENCE_NUM_THREADS"] = max(1, ctx.cores)
    return point


SPACE = ProviderSpace(
    name=EP_NAME,
    short="ovplugin",
    options=OPTIONS,
    suggest=_suggest_cpu,
    first_point=latency_setup,
    compile_cost=2,
    pip_package=PACKAGE,
    runtime_hook=_with_cache,
)
