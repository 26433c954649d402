"""The CoreML execution provider (macOS arm64 ``onnxruntime`` wheels, string options from 1.21).

Searched only with onnxruntime >= 1.21. Before ORT #22675 ("[CoreML] Create EP by
AppendExecutionProvider", 1.21.0) the Python binding read only a ``flags`` entry for CoreML and
ignored every other key: the 1.20.1 macOS wheel's binding holds none of the option names below,
the 1.21.0 one holds them all with "Unknown option: ". Under 1.20 every CoreML trial would run
NeuralNetwork on ALL whatever its options said, and a pick's options would do nothing.

Booleans are ``"1"``/``"0"``: CoreML compares ``== "1"``, so ``"True"`` would silently mean false.
Keys and values are ORT's, case-sensitive (ORT's CoreML execution provider page,
onnxruntime.ai/docs/execution-providers/CoreML-ExecutionProvider.html, and its source,
onnxruntime/core/providers/coreml/coreml_options.cc).
"""

from __future__ import annotations

import re
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
        # Debugging only: it logs every op's device and cost of an MLProgram at every load, and
        # ORT's model.mm waits up to 5 minutes on a semaphore its completion handler does not
        # signal on error, so a stored row must never carry it into an app. Never searched.
        Option("ProfileComputePlan", _BOOL, default="0", risk="debug"),
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
    }
    if specialization_applies(ctx.macos_version):
        options["SpecializationStrategy"] = trial.suggest_categorical(
            "coreml.SpecializationStrategy", ("Default", "FastPrediction")
        )
    if ctx.has_subgraphs:  # only Loop/If/Scan bodies are affected
        options["EnableOnSubgraphs"] = trial.suggest_categorical("coreml.EnableOnSubgraphs", _BOOL)
    if units in GPU_UNITS:
        options["AllowLowPrecisionAccumulationOnGPU"] = trial.suggest_categorical(
            "coreml.AllowLowPrecisionAccumulationOnGPU", _BOOL
        )
    return options


def specialization_applies(macos_version: str | None) -> bool:
    """Whether Core ML applies SpecializationStrategy on this macOS: from 14.4 (ORT's model.mm
    sets optimization hints only when HAS_COREML8_OR_LATER, else it warns "iOS 17.4+/macOS 14.4+
    or later is required to ConfigureOptimizationHints"). Unknown (not a Mac): searched."""
    if not macos_version:
        return True
    parts = [int(p) for p in re.findall(r"\d+", macos_version)[:2]]
    return tuple(parts + [0] * (2 - len(parts))) >= (14, 4)


def low_precision_needs_gpu(options: Mapping[str, str], session: Mapping[str, Any]) -> str | None:
    units = options.get("MLComputeUnits", "ALL")
    if options.get("AllowLowPrecisionAccumulationOnGPU") == "1" and units not in GPU_UNITS:
        return f"AllowLowPrecisionAccumulationOnGPU=1 does nothing with MLComputeUnits={units}"
    return None


SPACE = ProviderSpace(
    name="CoreMLExecutionProvider",
    short="coreml",
    options=OPTIONS,
    suggest=_suggest,
    constraints={
        "low_precision_needs_gpu": low_precision_needs_gpu,
    },
    cache_options={"ModelCacheDirectory": "coreml"},
    compile_cost=3,  # an MLProgram compiles for seconds
    min_ort=(1, 21),
)
