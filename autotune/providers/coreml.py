"""The CoreML execution provider (macOS arm64 ``onnxruntime`` wheels, string options from 1.21).

Booleans are ``"1"``/``"0"``: CoreML compares ``== "1"``, so ``"True"`` would silently mean false.
Keys and values are ORT's, case-sensitive (ORT's CoreML execution provider page,
onnxruntime.ai/docs/execution-providers/CoreML-ExecutionProvider.html, and its source,
onnxruntime/core/providers/coreml/coreml_options.cc).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autotune.providers.base import Option, ProviderSpace, SearchContext, TrialLike

_BOOL = ("0", "1")
COMPUTE_UNITS = ("CPUOnly", "CPUAndGPU", "CPUAndNeuralEngine", "ALL")
GPU_UNITS = ("CPUAndGPU", "ALL")

OPTIONS = {
    o.key: o
    for o in (
        Option("ModelFormat", ("MLProgram", "NeuralNetwork"), default="NeuralNetwork"),
        Option("MLComputeUnits", COMPUTE_UNITS, default="ALL"),
        Option("RequireStaticInputShapes", _BOOL, default="0"),
        Option("EnableOnSubgraphs", _BOOL, default="0"),
        Option("SpecializationStrategy", ("Default", "FastPrediction")),
        Option("AllowLowPrecisionAccumulationOnGPU", _BOOL, default="0"),
        # Only logs (per-op device and cost of an MLProgram); never searched, it cannot be faster.
        Option("ProfileComputePlan", _BOOL, default="0"),
        # autotune points it at its own per-model cache (CoreML caches ignore model changes)
        Option("ModelCacheDirectory", risk="writes_files"),
    )
}


def _suggest(trial: TrialLike, ctx: SearchContext) -> dict[str, str]:
    units = trial.suggest_categorical("coreml.MLComputeUnits", COMPUTE_UNITS)
    options = {
        "ModelFormat": trial.suggest_categorical(
            "coreml.ModelFormat", ("MLProgram", "NeuralNetwork")
        ),
        "MLComputeUnits": units,
        "RequireStaticInputShapes": trial.suggest_categorical(
            "coreml.RequireStaticInputShapes", _BOOL
        ),
        "SpecializationStrategy": trial.suggest_categorical(
            "coreml.SpecializationStrategy", ("Default", "FastPrediction")
        ),
    }
    if ctx.has_subgraphs:  # only Loop/If/Scan bodies are affected
        options["EnableOnSubgraphs"] = trial.suggest_categorical("coreml.EnableOnSubgraphs", _BOOL)
    if units in GPU_UNITS:
        options["AllowLowPrecisionAccumulationOnGPU"] = trial.suggest_categorical(
            "coreml.AllowLowPrecisionAccumulationOnGPU", _BOOL
        )
    return options


def low_precision_needs_gpu(options: Mapping[str, str], session: Mapping[str, Any]) -> str | None:
    units = options.get("MLComputeUnits", "ALL")
    if options.get("AllowLowPrecisionAccumulationOnGPU") == "1" and units not in GPU_UNITS:
        return f"AllowLowPrecisionAccumulationOnGPU=1 does nothing with MLComputeUnits={units}"
    return None


def profile_compute_plan_needs_mlprogram(
    options: Mapping[str, str], session: Mapping[str, Any]
) -> str | None:
    # ORT only profiles when the model is created as an MLProgram.
    if options.get("ProfileComputePlan") == "1" and options.get("ModelFormat") != "MLProgram":
        return "ProfileComputePlan=1 only works with ModelFormat=MLProgram"
    return None


SPACE = ProviderSpace(
    name="CoreMLExecutionProvider",
    short="coreml",
    options=OPTIONS,
    suggest=_suggest,
    constraints={
        "low_precision_needs_gpu": low_precision_needs_gpu,
        "profile_compute_plan_needs_mlprogram": profile_compute_plan_needs_mlprogram,
    },
    cache_options={"ModelCacheDirectory": "coreml"},
    compile_cost=3,  # an MLProgram compiles for seconds
)
