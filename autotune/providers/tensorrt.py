"""The TensorRT execution provider (``onnxruntime-gpu`` plus TensorRT's own libraries).

Engines take seconds to minutes to build, so the space always turns the engine and timing caches
on; their paths are autotune's (per model and configuration: TensorRT caches ignore model
changes). Options that load libraries (engine decryption, plugins), take pointers, or read and
write files of their own choosing are listed so they are refused by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autotune.providers.base import Option, ProviderSpace, SearchContext, TrialLike

_BOOL = ("0", "1")
_INPUT = r"[A-Za-z0-9_.\-]{1,128}"
_SHAPES = rf"{_INPUT}:[0-9]{{1,7}}(x[0-9]{{1,7}}){{0,7}}"  # input:1x3x224x224
_OP_TYPE = r"[A-Za-z][A-Za-z0-9_]{0,63}"

OPTIONS = {
    o.key: o
    for o in (
        Option("device_id", pattern=r"[0-9]{1,2}", default="0"),
        # precision and build
        Option("trt_fp16_enable", _BOOL, default="0"),
        Option("trt_bf16_enable", _BOOL),
        Option("trt_int8_enable", _BOOL, default="0"),
        Option("trt_int8_use_native_calibration_table", _BOOL),
        Option("trt_builder_optimization_level", ("0", "1", "2", "3", "4", "5"), default="3"),
        Option("trt_max_workspace_size", pattern=r"[0-9]{1,20}"),
        Option("trt_min_subgraph_size", pattern=r"[1-9][0-9]{0,5}", default="1"),
        Option("trt_max_partition_iterations", pattern=r"[1-9][0-9]{0,5}", default="1000"),
        Option("trt_layer_norm_fp32_fallback", _BOOL),
        Option("trt_sparsity_enable", _BOOL),
        Option("trt_build_heuristics_enable", _BOOL),
        Option("trt_tactic_sources", pattern=r"[+-]?[A-Z_]{1,32}(,[+-]?[A-Z_]{1,32}){0,15}"),
        Option("trt_auxiliary_streams", pattern=r"-1|[0-9]{1,2}", default="-1"),
        Option("trt_cuda_graph_enable", _BOOL),
        Option("trt_context_memory_sharing_enable", _BOOL),
        Option("trt_force_sequential_engine_build", _BOOL),
        Option("trt_dla_enable", _BOOL),
        Option("trt_dla_core", pattern=r"[0-9]{1,2}"),
        Option("trt_engine_hw_compatible", _BOOL),
        Option(
            "trt_preview_features",
            pattern=r"[+-]?[A-Za-z0-9_]{1,64}(,[+-]?[A-Za-z0-9_]{1,64}){0,15}",
        ),
        Option("trt_op_types_to_exclude", pattern=rf"({_OP_TYPE}(,{_OP_TYPE}){{0,63}})?"),
        Option("trt_detailed_build_log", _BOOL),
        Option("trt_weight_stripped_engine_enable", _BOOL),
        Option("trt_ep_context_embed_mode", _BOOL),
        # dynamic-shape profiles: every dynamic input, e.g. "input:1x3x224x224,mask:1x224"
        Option("trt_profile_min_shapes", pattern=rf"{_SHAPES}(,{_SHAPES}){{0,31}}"),
        Option("trt_profile_opt_shapes", pattern=rf"{_SHAPES}(,{_SHAPES}){{0,31}}"),
        Option("trt_profile_max_shapes", pattern=rf"{_SHAPES}(,{_SHAPES}){{0,31}}"),
        # caches: enabled by the space, located by autotune
        Option("trt_engine_cache_enable", _BOOL),
        Option("trt_timing_cache_enable", _BOOL),
        Option("trt_force_timing_cache", _BOOL),
        Option("trt_engine_cache_prefix", pattern=r"[A-Za-z0-9_\-]{1,64}"),
        Option("trt_engine_cache_path", risk="writes_files"),
        Option("trt_timing_cache_path", risk="writes_files"),
        Option("trt_engine_decryption_enable", _BOOL),  # see engine_decryption_needs_library
        # never applied from a stored configuration
        Option("trt_engine_decryption_lib_path", risk="loads_library"),
        Option("trt_extra_plugin_lib_paths", risk="loads_library"),
        Option("trt_dump_subgraphs", risk="writes_files"),
        Option("trt_dump_ep_context_model", risk="writes_files"),
        Option("trt_ep_context_file_path", risk="writes_files"),
        Option("trt_int8_calibration_table_name", risk="reads_files"),
        Option("trt_onnx_model_folder_path", risk="reads_files"),
        Option("trt_onnx_bytestream", risk="pointer"),
        Option("trt_external_data_bytestream", risk="pointer"),
        Option("has_user_compute_stream", risk="pointer"),
        Option("user_compute_stream", risk="pointer"),
    )
}


def _suggest(trial: TrialLike, ctx: SearchContext) -> dict[str, str]:
    level = trial.suggest_int("tensorrt.trt_builder_optimization_level", 0, 5)
    options = {
        "trt_engine_cache_enable": "1",
        "trt_timing_cache_enable": "1",
        "trt_fp16_enable": trial.suggest_categorical("tensorrt.trt_fp16_enable", _BOOL),
        "trt_builder_optimization_level": str(level),
    }
    # ORT refuses CUDA graphs for models with control-flow nodes; a graph captured at one
    # input shape is wrong at another.
    if not ctx.has_subgraphs and not ctx.has_dynamic_inputs:
        options["trt_cuda_graph_enable"] = trial.suggest_categorical(
            "tensorrt.trt_cuda_graph_enable", _BOOL
        )
    return options


def engine_decryption_needs_library(
    options: Mapping[str, str], session: Mapping[str, Any]
) -> str | None:
    if options.get("trt_engine_decryption_enable") == "1":
        return (
            "trt_engine_decryption_enable=1 needs trt_engine_decryption_lib_path, "
            "which autotune never applies"
        )
    return None


def dla_core_needs_dla(options: Mapping[str, str], session: Mapping[str, Any]) -> str | None:
    if "trt_dla_core" in options and options.get("trt_dla_enable") != "1":
        return "trt_dla_core does nothing without trt_dla_enable=1"
    return None


def native_calibration_needs_int8(
    options: Mapping[str, str], session: Mapping[str, Any]
) -> str | None:
    if (
        options.get("trt_int8_use_native_calibration_table") == "1"
        and options.get("trt_int8_enable") != "1"
    ):
        return "trt_int8_use_native_calibration_table=1 does nothing without trt_int8_enable=1"
    return None


SPACE = ProviderSpace(
    name="TensorrtExecutionProvider",
    short="tensorrt",
    options=OPTIONS,
    suggest=_suggest,
    constraints={
        "engine_decryption_needs_library": engine_decryption_needs_library,
        "dla_core_needs_dla": dla_core_needs_dla,
        "native_calibration_needs_int8": native_calibration_needs_int8,
    },
    cache_options={
        "trt_engine_cache_path": "tensorrt/engines",
        "trt_timing_cache_path": "tensorrt/timing",
    },
    compile_cost=3,  # engine builds take seconds to minutes
    pip_package="onnxruntime-gpu",
)
