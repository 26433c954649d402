"""The CUDA execution provider (``onnxruntime-gpu``). Keys from the 1.31.1 provider library.

CUDA parses booleans as ``0/1/true/false/True/False``; autotune writes and accepts only ``"0"`` and
``"1"`` so one setting has one spelling (and one config id). Pointer options (user streams,
external allocators) are listed so they are refused by name, never applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autotune.providers.base import Option, ProviderSpace, SearchContext, TrialLike

_BOOL = ("0", "1")
ALGO_SEARCH = ("EXHAUSTIVE", "HEURISTIC", "DEFAULT")
ARENA_EXTEND = ("kNextPowerOfTwo", "kSameAsRequested")

OPTIONS = {
    o.key: o
    for o in (
        Option("device_id", pattern=r"[0-9]{1,2}", default="0"),
        Option("gpu_mem_limit", pattern=r"[1-9][0-9]{0,19}"),  # bytes, at most SIZE_MAX's width
        Option("arena_extend_strategy", ARENA_EXTEND, default="kNextPowerOfTwo"),
        Option("cudnn_conv_algo_search", ALGO_SEARCH, default="EXHAUSTIVE"),
        Option("do_copy_in_default_stream", _BOOL, default="1"),
        Option("cudnn_conv_use_max_workspace", _BOOL, default="1"),
        Option("cudnn_conv1d_pad_to_nc1d", _BOOL, default="0"),
        Option("enable_cuda_graph", _BOOL, default="0"),
        Option("enable_skip_layer_norm_strict_mode", _BOOL, default="0"),
        Option("prefer_nhwc", _BOOL, default="0"),
        Option("use_ep_level_unified_stream", _BOOL, default="0"),
        Option("use_tf32", _BOOL, default="1"),
        Option("tunable_op_enable", _BOOL, default="0"),
        Option("tunable_op_tuning_enable", _BOOL, default="0"),
        Option("tunable_op_max_tuning_duration_ms", pattern=r"[0-9]{1,7}"),
        Option("sdpa_kernel", pattern=r"[0-9]{1,4}", default="0"),  # attention-backend bitmask
        Option("fuse_conv_bias", _BOOL, default="0"),
        Option("enable_cudnn", _BOOL),  # new in 1.31
        Option("has_user_compute_stream", risk="pointer"),
        Option("user_compute_stream", risk="pointer"),
        Option("gpu_external_alloc", risk="pointer"),
        Option("gpu_external_free", risk="pointer"),
        Option("gpu_external_empty_cache", risk="pointer"),
    )
}


def _suggest(trial: TrialLike, ctx: SearchContext) -> dict[str, str]:
    options = {
        "cudnn_conv_algo_search": trial.suggest_categorical(
            "cuda.cudnn_conv_algo_search", ALGO_SEARCH
        ),
        "cudnn_conv_use_max_workspace": trial.suggest_categorical(
            "cuda.cudnn_conv_use_max_workspace", _BOOL
        ),
        "prefer_nhwc": trial.suggest_categorical("cuda.prefer_nhwc", _BOOL),
        "use_tf32": trial.suggest_categorical("cuda.use_tf32", _BOOL),
        "arena_extend_strategy": trial.suggest_categorical(
            "cuda.arena_extend_strategy", ARENA_EXTEND
        ),
    }
    # A CUDA graph replays fixed kernels on fixed buffers: ORT refuses it for models with
    # control-flow nodes, and a graph captured at one input shape is wrong at another, so it
    # is only tried on models whose inputs are all static.
    if not ctx.has_subgraphs and not ctx.has_dynamic_inputs:
        options["enable_cuda_graph"] = trial.suggest_categorical("cuda.enable_cuda_graph", _BOOL)
    return options


def cuda_graph_needs_sequential(
    options: Mapping[str, str], session: Mapping[str, Any]
) -> str | None:
    mode = session.get("execution_mode", "ORT_SEQUENTIAL")
    if options.get("enable_cuda_graph") == "1" and mode != "ORT_SEQUENTIAL":
        return f"enable_cuda_graph=1 needs execution_mode ORT_SEQUENTIAL, not {mode}"
    return None


SPACE = ProviderSpace(
    name="CUDAExecutionProvider",
    short="cuda",
    options=OPTIONS,
    suggest=_suggest,
    constraints={"cuda_graph_needs_sequential": cuda_graph_needs_sequential},
    # ORT switches a CUDA session to sequential execution itself (with a warning), so
    # parallel-mode trials would only repeat sequential ones.
    session_requirements={"execution_mode": "ORT_SEQUENTIAL"},
    compile_cost=1,
    pip_package="onnxruntime-gpu",
)
