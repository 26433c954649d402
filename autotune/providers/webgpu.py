"""The WebGPU execution provider as a plugin (``onnxruntime-ep-webgpu``): any GPU through Dawn
(Metal on macOS, Vulkan or D3D12 elsewhere; Linux needs ``libvulkan.so.1``).

Options are passed to ``add_provider_for_devices`` without their prefix; ORT stores them as
session entries ``ep.webgpuexecutionprovider.<key>``, and the EP reads them there. Keys and
values are the EP's own: ``onnxruntime/core/providers/webgpu/webgpu_provider_options.h`` and the
parser ``webgpu_provider_factory.cc`` (ParseEpConfig, ParseWebGpuContextConfig) in
microsoft/onnxruntime; a test checks every key and value against the strings of the shipped
``libonnxruntime_providers_webgpu.so`` (0.4.0). Booleans are ``"0"``/``"1"`` (anything else
throws). ``webgpuInstance``, ``webgpuDevice`` and ``dawnProcTable`` are raw pointers an app
passes in; ``deviceId`` names a context such a pointer pair created: never searched or applied
from a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autotune.providers.base import Option, ProviderSpace, SearchContext, TrialLike

EP_NAME = "WebGpuExecutionProvider"
PACKAGE = "onnxruntime-ep-webgpu"
KEY_PREFIX = "ep.webgpuexecutionprovider."
_BOOL = ("0", "1")
LAYOUTS = ("NCHW", "NHWC")
BUFFER_CACHE_MODES = ("disabled", "lazyRelease", "simple", "bucket")
VALIDATION_MODES = ("disabled", "wgpuOnly", "basic", "full")

OPTIONS = {
    o.key: o
    for o in (
        Option("preferredLayout", LAYOUTS),
        Option("enableGraphCapture", _BOOL),
        Option("storageBufferCacheMode", BUFFER_CACHE_MODES),
        Option("uniformBufferCacheMode", BUFFER_CACHE_MODES),
        Option("queryResolveBufferCacheMode", BUFFER_CACHE_MODES),
        Option("defaultBufferCacheMode", BUFFER_CACHE_MODES),
        Option("validationMode", VALIDATION_MODES),
        Option("powerPreference", ("high-performance", "low-power")),
        Option("dawnBackendType", ("Vulkan", "D3D12")),
        Option("enableInt64", _BOOL, default="0"),
        Option("enableRobustness", _BOOL),
        Option("preserveDevice", _BOOL, default="0"),
        Option("sessionBufferPoolGenerations", pattern=r"[0-9]{1,3}"),
        # the parser accepts 1 to 4096
        Option("maxNumPendingDispatches", pattern=r"[1-9][0-9]{0,3}"),
        Option("maxStorageBufferBindingSize", pattern=r"[1-9][0-9]{0,11}"),
        Option("deviceId", risk="pointer"),
        Option("webgpuInstance", risk="pointer"),
        Option("webgpuDevice", risk="pointer"),
        Option("dawnProcTable", risk="pointer"),
    )
}


def _suggest(trial: TrialLike, ctx: SearchContext) -> dict[str, str]:
    options = {
        "preferredLayout": trial.suggest_categorical("webgpu.preferredLayout", LAYOUTS),
        "storageBufferCacheMode": trial.suggest_categorical(
            "webgpu.storageBufferCacheMode", BUFFER_CACHE_MODES
        ),
        "uniformBufferCacheMode": trial.suggest_categorical(
            "webgpu.uniformBufferCacheMode", BUFFER_CACHE_MODES
        ),
        # Dawn's validation costs CPU time per dispatch; "disabled" skips it
        "validationMode": trial.suggest_categorical("webgpu.validationMode", ("basic", "disabled")),
    }
    if not ctx.has_dynamic_inputs and not ctx.has_subgraphs:
        # replays the recorded dispatches; needs fixed shapes and every node on the GPU
        options["enableGraphCapture"] = trial.suggest_categorical(
            "webgpu.enableGraphCapture", _BOOL
        )
    return options


def pending_dispatches_in_range(
    options: Mapping[str, str], session: Mapping[str, Any]
) -> str | None:
    value = options.get("maxNumPendingDispatches")
    if value is not None and not 1 <= int(value) <= 4096:
        return f"maxNumPendingDispatches must be 1 to 4096, not {value}"
    return None


SPACE = ProviderSpace(
    name=EP_NAME,
    short="webgpu",
    options=OPTIONS,
    suggest=_suggest,
    constraints={"pending_dispatches_in_range": pending_dispatches_in_range},
    compile_cost=1,  # shader compiles on first run
    pip_package=PACKAGE,
)
