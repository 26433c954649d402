"""The QNN execution provider (``onnxruntime-qnn``, a plugin EP for Qualcomm NPUs and GPUs).

The backend is chosen by ``backend_type``; ``backend_path`` (a library to load) is never applied,
nor are the saver and IR backends, which record the model to files instead of running it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autotune.providers.base import Option, ProviderSpace, SearchContext, TrialLike

_BOOL = ("0", "1")
PERFORMANCE_MODES = (
    "burst",
    "balanced",
    "default",
    "high_performance",
    "high_power_saver",
    "low_balanced",
    "extreme_power_saver",
    "low_power_saver",
    "power_saver",
    "sustained_high_performance",
)
# the modes that do not lower clocks on purpose: the others can only be slower
FAST_MODES = ("default", "burst", "high_performance", "sustained_high_performance")
HTP_ONLY = (
    "htp_performance_mode",
    "htp_graph_finalization_optimization_mode",
    "enable_htp_fp16_precision",
)

OPTIONS = {
    o.key: o
    for o in (
        Option("backend_type", ("cpu", "gpu", "htp")),  # saver and ir write files: refused
        Option("htp_performance_mode", PERFORMANCE_MODES, default="default"),
        Option("htp_graph_finalization_optimization_mode", ("0", "1", "2", "3")),
        Option("enable_htp_fp16_precision", _BOOL),
        Option("htp_bf16_enable", _BOOL),
        Option("enable_htp_fp16_clamp_overflow", _BOOL),
        Option("qnn_context_priority", ("low", "normal", "normal_high", "high")),
        Option("vtcm_mb", pattern=r"[0-9]{1,4}"),
        Option("rpc_control_latency", pattern=r"[0-9]{1,6}"),
        Option("profiling_level", ("off", "basic", "detailed", "optrace")),
        Option("soc_model", pattern=r"[0-9]{1,4}"),
        Option("htp_arch", pattern=r"[0-9]{1,3}"),
        Option("device_id", pattern=r"[0-9]{1,2}"),
        Option("offload_graph_io_quantization", _BOOL),
        Option("enable_htp_spill_fill_buffer", _BOOL),
        Option("enable_htp_shared_memory_allocator", _BOOL),
        Option("extended_udma", _BOOL),
        Option("enable_vtcm_backup_buffer_sharing", _BOOL),
        Option("htp_share_resource_optimization", _BOOL),
        Option("skip_qnn_version_check", _BOOL),
        Option("backend_path", risk="loads_library"),
        Option("qnn_saver_path", risk="loads_library"),
        Option("qnn_ir_backend_path", risk="loads_library"),
        Option("op_packages", risk="loads_library"),
        Option("profiling_file_path", risk="writes_files"),
        Option("dump_qnn_ir_dlc", risk="writes_files"),
        Option("dump_qnn_ir_dlc_dir", risk="writes_files"),
        Option("dump_json_qnn_graph", risk="writes_files"),
        Option("json_qnn_graph_dir", risk="writes_files"),
    )
}


def _suggest(trial: TrialLike, ctx: SearchContext) -> dict[str, str]:
    # The CPU backend is QNN's reference implementation, never faster than ORT's own CPU EP.
    backend = trial.suggest_categorical("qnn.backend_type", ("htp", "gpu"))
    options = {"backend_type": backend}
    if backend == "htp":
        options["htp_performance_mode"] = trial.suggest_categorical(
            "qnn.htp_performance_mode", FAST_MODES
        )
        level = trial.suggest_int("qnn.htp_graph_finalization_optimization_mode", 0, 3)
        options["htp_graph_finalization_optimization_mode"] = str(level)
        options["enable_htp_fp16_precision"] = trial.suggest_categorical(
            "qnn.enable_htp_fp16_precision", _BOOL
        )
    return options


def htp_options_need_htp(options: Mapping[str, str], session: Mapping[str, Any]) -> str | None:
    # without backend_type, the device the EP was created for decides the backend
    backend = options.get("backend_type")
    used = [key for key in HTP_ONLY if key in options]
    if used and backend is not None and backend != "htp":
        return f"{', '.join(used)} only act with backend_type=htp, not {backend}"
    return None


def bf16_needs_soc_model(options: Mapping[str, str], session: Mapping[str, Any]) -> str | None:
    if options.get("htp_bf16_enable") == "1" and "soc_model" not in options:
        return "htp_bf16_enable=1 needs soc_model"
    return None


SPACE = ProviderSpace(
    name="QNNExecutionProvider",
    short="qnn",
    options=OPTIONS,
    suggest=_suggest,
    constraints={
        "htp_options_need_htp": htp_options_need_htp,
        "bf16_needs_soc_model": bf16_needs_soc_model,
    },
    compile_cost=3,  # HTP graph finalization takes seconds
    pip_package="onnxruntime-qnn",
)
