"""The accuracy gate: a candidate's outputs against the CPU EP's fp32 reference (the same model
at ORT_DISABLE_ALL), judged at a tier.

Tiers, chosen by the search's ``--accuracy`` (docs/accuracy.md has the measurements):

``fp32``
    Elementwise, what ORT's optimizations may change in an fp32 model: rtol 1e-3, atol 1e-4
    (outputs that are fp16 themselves: 1e-2, 1e-3).
``fp16``
    Elementwise, what computing the model in fp16 changes: rtol 1e-2, atol 1e-2. Core ML runs
    fp32 models in fp16 on the GPU and the Neural Engine (the Neural Engine runs nothing else);
    at the fp32 tier those trials are marked inaccurate and the Neural Engine is never picked.
``cosine:T``
    A task metric for embeddings and features: each float output's cosine similarity to the
    reference is at least ``T`` (0 < T < 1).
``topk:K``
    A task metric for classifiers: on every row (the last axis) of each float output, the
    reference's top class is among the candidate's ``K`` highest scores.
``auto`` (the default)
    ``fp16`` for a configuration that computes in reduced precision on an accelerator
    (:func:`reduced_precision`: Core ML on the GPU or Neural Engine, OpenVINO at FP16, a plugin
    EP's GPU or NPU, TensorRT fp16), ``fp32`` for the rest, the CPU EP's configurations included.

At every tier a different shape, NaNs where the reference has none, or any difference in a
non-float output fails. ``--rtol``/``--atol`` replace an elementwise tier's tolerances.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autotune.config import CPU, SessionConfig, load_config_devices
from autotune.errors import ConfigError, SearchError
from autotune.store.records import Status, TrialRecord

AUTO, FP32, FP16, COSINE, TOPK = "auto", "fp32", "fp16", "cosine", "topk"
# (rtol, atol) of each elementwise tier for fp32 outputs; outputs that are fp16 themselves get
# HALF_OUTPUT at the fp32 tier
ELEMENTWISE = {FP32: (1e-3, 1e-4), FP16: (1e-2, 1e-2)}
HALF_OUTPUT = (1e-2, 1e-3)
CHOICES = "auto, fp32, fp16, cosine:T (0 < T < 1, e.g. cosine:0.999) or topk:K (e.g. topk:5)"


@dataclass(frozen=True)
class Tier:
    """How outputs are judged: ``kind`` fp32, fp16, cosine or topk, with the cosine threshold
    or the K of top-k."""

    kind: str
    threshold: float = 0.0

    @property
    def name(self) -> str:
        """``fp32``, ``fp16``, ``cosine:0.999``, ``topk:5``: as stored and shown."""
        if self.kind == COSINE:
            return f"{COSINE}:{self.threshold:g}"
        if self.kind == TOPK:
            return f"{TOPK}:{int(self.threshold)}"
        return self.kind


def check(accuracy: str) -> str:
    """``accuracy`` in its stored spelling (``auto`` or a tier's name); raises SearchError
    naming the choices."""
    return AUTO if accuracy.strip().lower() == AUTO else tier(accuracy).name


def check_tolerances(accuracy: str, rtol: float | None, atol: float | None) -> str:
    """:func:`check`, and that ``--rtol``/``--atol`` are numbers from 0 given with an elementwise
    tier (``auto``, ``fp32``, ``fp16``); raises SearchError naming the fix."""
    name = check(accuracy)
    for flag, value in (("--rtol", rtol), ("--atol", atol)):
        if value is None:
            continue
        if not (math.isfinite(value) and value >= 0):
            raise SearchError(f"{flag} must be a number from 0 up, not {value:g}")
        if name.partition(":")[0] in (COSINE, TOPK):
            raise SearchError(
                f"{flag} applies to the fp32 and fp16 tiers, not to --accuracy {name}; leave it out"
            )
    return name


def tier(accuracy: str) -> Tier:
    """The tier ``fp32``, ``fp16``, ``cosine:T`` or ``topk:K`` names (not ``auto``)."""
    text = accuracy.strip().lower()
    kind, _, value = text.partition(":")
    if kind in ELEMENTWISE and not value:
        return Tier(kind)
    try:
        number = float(value) if value else math.nan
    except ValueError:
        number = math.nan
    if kind == COSINE and 0 < number < 1:
        return Tier(COSINE, number)
    if kind == TOPK and number.is_integer() and 1 <= number <= 1000:
        return Tier(TOPK, number)
    raise SearchError(f"--accuracy {accuracy!r} is not one of {CHOICES}")


def reduced_precision(
    config: SessionConfig, placement: Mapping[str, Any] | None = None
) -> str | None:
    """Why ``config`` computes in fp16 (or lower) on an accelerator, in a few words, or None when
    it computes in fp32. ``placement`` (the trial's) tells where a device policy put the nodes."""
    if config.device_policy and config.device_policy != "PREFER_CPU":
        nodes = (placement or {}).get("nodes") or {}
        elsewhere = sorted(ep for ep, count in nodes.items() if ep != CPU and count)
        if elsewhere:
            return f"device policy {config.device_policy} placed nodes on {', '.join(elsewhere)}"
        return None
    if config.plugin:
        device = str(config.plugin.get("device", "")).split("/", 1)[0]
        if device in ("GPU", "NPU"):
            return f"{config.providers[0][0]} on the {device} (a plugin EP)"
    for name, options in config.providers:
        why = _REDUCED.get(name, _never)(options)
        if why:
            return why
    return None


def _never(options: Mapping[str, str]) -> str | None:
    return None


def _coreml(options: Mapping[str, str]) -> str | None:
    units = options.get("MLComputeUnits", "ALL")
    if units == "CPUOnly":
        return None
    return f"Core ML runs fp32 models in fp16 on the GPU and Neural Engine (MLComputeUnits={units})"


def _openvino(options: Mapping[str, str]) -> str | None:
    precision = options.get("precision")
    if precision == "FP16":
        return "OpenVINO precision=FP16"
    device = options.get("device_type", "CPU")
    if precision is None and ("GPU" in device or "NPU" in device):
        return f"OpenVINO on {device} infers in fp16 unless precision says otherwise"
    devices = load_config_devices(options.get("load_config") or "{}") or {}
    for device_name, values in devices.items():
        hint = values.get("INFERENCE_PRECISION_HINT", "")
        if hint.lower() in ("f16", "bf16"):
            return f"OpenVINO {device_name} INFERENCE_PRECISION_HINT={hint}"
    return None


def _tensorrt(options: Mapping[str, str]) -> str | None:
    for key in ("trt_fp16_enable", "trt_bf16_enable"):
        if options.get(key, "0").lower() in ("1", "true"):
            return f"TensorRT {key}"
    return None


_REDUCED = {
    "CoreMLExecutionProvider": _coreml,
    "OpenVINOExecutionProvider": _openvino,
    "TensorrtExecutionProvider": _tensorrt,
}


def tier_for(
    config: SessionConfig, accuracy: str, placement: Mapping[str, Any] | None = None
) -> tuple[Tier, str | None]:
    """The tier ``config``'s outputs are judged at under ``--accuracy``, and why when ``auto``
    chose fp16 (None otherwise)."""
    if check(accuracy) != AUTO:
        return tier(accuracy), None
    why = reduced_precision(config, placement)
    return (Tier(FP16), why) if why else (Tier(FP32), None)


@dataclass(frozen=True)
class Judgement:
    """The gate's answer for one candidate."""

    ok: bool
    max_abs_err: float  # the largest elementwise difference, whatever the tier
    err_to_tol: float  # the worst output's distance from failing: above 1 fails
    problem: str | None  # why it failed, in one line
    tier: str  # the tier's name
    why: str | None = None  # why ``auto`` judged it at fp16


def gate(
    config: SessionConfig,
    placement: Mapping[str, Any] | None,
    reference: Sequence[Any],
    outputs: Sequence[Any],
    accuracy: str = AUTO,
    rtol: float | None = None,
    atol: float | None = None,
) -> Judgement:
    """Judge ``config``'s ``outputs`` against the ``reference`` at the tier ``accuracy`` gives
    it."""
    chosen, why = tier_for(config, accuracy, placement)
    judged = judge(reference, outputs, chosen, rtol, atol)
    return Judgement(
        judged.ok, judged.max_abs_err, judged.err_to_tol, judged.problem, judged.tier, why
    )


def judge(
    reference: Sequence[Any],
    outputs: Sequence[Any],
    chosen: Tier = Tier(FP32),
    rtol: float | None = None,
    atol: float | None = None,
) -> Judgement:
    """``outputs`` against ``reference`` at ``chosen``; ``rtol``/``atol`` replace an elementwise
    tier's tolerances."""
    max_abs = 0.0
    worst = 0.0
    for i, (ref, out) in enumerate(zip(reference, outputs, strict=True)):
        ref_a, out_a = np.asarray(ref), np.asarray(out)
        if ref_a.shape != out_a.shape:
            return _failed(chosen, f"output {i} has shape {out_a.shape}, not {ref_a.shape}")
        if ref_a.dtype.kind not in "fc":
            if not np.array_equal(ref_a, out_a):
                return _failed(chosen, f"output {i} ({ref_a.dtype}) differs from the reference")
            continue
        ref64, out64 = ref_a.astype(np.float64), out_a.astype(np.float64)
        if not np.array_equal(np.isnan(ref64), np.isnan(out64)):
            return _failed(chosen, f"output {i} has NaNs where the reference has none")
        finite = ~np.isnan(ref64)
        diff = np.abs(ref64 - out64)[finite]
        if not diff.size:
            continue
        max_abs = max(max_abs, float(diff.max()))
        if chosen.kind == COSINE:
            worst = max(worst, (1 - _cosine(ref64[finite], out64[finite])) / (1 - chosen.threshold))
        elif chosen.kind == TOPK:
            worst = max(worst, _top_rank(ref64, out64) / chosen.threshold)
        else:
            r, a = _tolerances(chosen, ref_a.dtype.itemsize <= 2)
            r, a = rtol if rtol is not None else r, atol if atol is not None else a
            worst = max(worst, float((diff / (a + r * np.abs(ref64[finite]))).max()))
    if worst > 1.0:
        return Judgement(False, max_abs, worst, _problem(chosen, max_abs), chosen.name)
    return Judgement(True, max_abs, worst, None, chosen.name)


def _tolerances(chosen: Tier, half_output: bool) -> tuple[float, float]:
    if chosen.kind == FP32 and half_output:
        return HALF_OUTPUT
    return ELEMENTWISE[chosen.kind]


def _cosine(ref: Any, out: Any) -> float:
    norms = float(np.linalg.norm(ref) * np.linalg.norm(out))
    if norms == 0:
        return 1.0 if not ref.any() and not out.any() else 0.0
    return float(np.dot(ref.ravel(), out.ravel()) / norms)


def _top_rank(ref: Any, out: Any) -> float:
    """The worst row's rank (1 = first) of the reference's top class among the candidate's
    scores; ties count in the candidate's favour."""
    width = ref.shape[-1] if ref.ndim else 1
    ref_rows, out_rows = ref.reshape(-1, width), out.reshape(-1, width)
    top = np.where(np.isnan(ref_rows), -np.inf, ref_rows).argmax(axis=1)
    at_top = out_rows[np.arange(len(top)), top]
    return float((out_rows > at_top[:, None]).sum(axis=1).max() + 1)


def _problem(chosen: Tier, max_abs: float) -> str:
    if chosen.kind == COSINE:
        return f"outputs' cosine similarity to the CPU reference is below {chosen.threshold:g}"
    if chosen.kind == TOPK:
        return f"the reference's top class is not in the top {int(chosen.threshold)} on every row"
    return f"outputs differ from the CPU reference by up to {max_abs:.3g} ({chosen.name} tier)"


def _failed(chosen: Tier, problem: str) -> Judgement:
    return Judgement(False, math.inf, math.inf, problem, chosen.name)


def stored_tier(row: TrialRecord) -> str:
    """The tier a stored trial was judged at (rows from before tiers: fp32)."""
    return row.accuracy or FP32


def judged_alike(row: TrialRecord, accuracy: str) -> bool:
    """Whether a stored trial was judged at the tier a search with ``--accuracy accuracy`` would
    judge it at: a trial another tier rejected or accepted is not that search's result. Trials
    the gate never saw (failed, crashed) are alike at every tier."""
    if row.status not in (Status.OK, Status.PRUNED, Status.INACCURATE):
        return True
    try:
        config = SessionConfig.from_json(row.config or "")
    except ConfigError:
        return True  # not a configuration this autotune can take: nothing to measure again
    placement = row.placement if isinstance(row.placement, dict) else None
    return stored_tier(row) == tier_for(config, accuracy, placement)[0].name
