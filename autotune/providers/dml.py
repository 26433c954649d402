"""The DirectML execution provider (``onnxruntime-directml``, Windows only).

DirectML memory is not byte-addressable, so memory patterns cannot work, and it runs one node at a
time: the session must have ``enable_mem_pattern=False`` and ``execution_mode=ORT_SEQUENTIAL``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autotune.providers.base import Option, ProviderSpace, SearchContext, TrialLike

PREFERENCES = ("default", "high_performance", "minimum_power")
_BOOL = ("False", "True")  # the spelling the DirectML wheel documents

OPTIONS = {
    o.key: o
    for o in (
        Option("device_id", pattern=r"[0-9]{1,2}", default="0"),
        Option("performance_preference", PREFERENCES),
        Option("device_filter", ("gpu", "npu", "any")),
        Option("disable_metacommands", _BOOL, default="False"),
    )
}


def _suggest(trial: TrialLike, ctx: SearchContext) -> dict[str, str]:
    # device_filter is left to ORT: nothing in SearchContext says whether an NPU exists.
    return {
        "performance_preference": trial.suggest_categorical(
            "dml.performance_preference", PREFERENCES
        ),
        "disable_metacommands": trial.suggest_categorical("dml.disable_metacommands", _BOOL),
    }


def dml_needs_mem_pattern_off(options: Mapping[str, str], session: Mapping[str, Any]) -> str | None:
    if session.get("enable_mem_pattern", True):
        return "DirectML needs enable_mem_pattern=False"
    return None


def dml_needs_sequential(options: Mapping[str, str], session: Mapping[str, Any]) -> str | None:
    mode = session.get("execution_mode", "ORT_SEQUENTIAL")
    if mode != "ORT_SEQUENTIAL":
        return f"DirectML needs execution_mode ORT_SEQUENTIAL, not {mode}"
    return None


SPACE = ProviderSpace(
    name="DmlExecutionProvider",
    short="dml",
    options=OPTIONS,
    suggest=_suggest,
    constraints={
        "dml_needs_mem_pattern_off": dml_needs_mem_pattern_off,
        "dml_needs_sequential": dml_needs_sequential,
    },
    session_requirements={"enable_mem_pattern": False, "execution_mode": "ORT_SEQUENTIAL"},
    compile_cost=1,
    pip_package="onnxruntime-directml",
)
