"""The search space: an execution provider with its options, and the session options around it.

Plain define-by-run functions over a ``TrialLike`` (optuna's Trial, or a FixedTrial to replay a
stored point), so this module never imports optuna. Parameter names are stable: they are stored
with every trial so an interrupted search can be resumed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autotune.config import CPU, SessionConfig
from autotune.providers import SPACES, PluginSpace, ProviderSpace, SearchContext, TrialLike

POLICY_PREFIX = "policy:"
GELU_OPS = frozenset({"Erf", "Gelu", "com.microsoft:Gelu", "com.microsoft:BiasGelu"})

DEFAULT_PARAMS: dict[str, Any] = {
    "provider": CPU,
    "graph_optimization_level": "ORT_ENABLE_ALL",
    "intra_op_num_threads": 0,
    "intra_op_spinning": "1",
    "execution_mode": "ORT_SEQUENTIAL",
    "enable_mem_pattern": True,
    "enable_cpu_mem_arena": True,
    "free_dimension_overrides": False,
    "gelu_approximation": "0",
}


def graph_levels() -> list[str]:
    """The optimization levels this onnxruntime has (ORT_ENABLE_LAYOUT from 1.23)."""
    import onnxruntime as ort

    names = ["ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_LAYOUT"]
    return [n for n in names if hasattr(ort.GraphOptimizationLevel, n)] + ["ORT_ENABLE_ALL"]


def thread_choices(cores: int, performance_cores: int | None = None) -> list[int]:
    """0 (ORT's choice) and 1 … cores: 1, powers of two, the core count, and the
    performance-core count (12 on a 12P+4E chip, which powers of two miss)."""
    values = {0, 1, cores}
    if performance_cores and 1 <= performance_cores <= cores:
        values.add(performance_cores)
    n = 2
    while n < cores:
        values.add(n)
        n *= 2
    return sorted(values)


def suggest_config(
    trial: TrialLike,
    ctx: SearchContext,
    spaces: list[ProviderSpace],
    *,
    levels: list[str],
    policies: tuple[str, ...] = (),
    frozen: Mapping[str, Any] | None = None,
) -> SessionConfig:
    """Ask ``trial`` for one configuration. Parameters in ``frozen`` (dimensions measured to
    make no difference here) are not asked: they keep the given value."""
    fixed = frozen or {}

    def ask(name: str, choices: list[Any]) -> Any:
        return fixed[name] if name in fixed else trial.suggest_categorical(name, choices)

    choices = [s.name for s in spaces] + [POLICY_PREFIX + p for p in policies]
    provider = trial.suggest_categorical("provider", choices)
    options: dict[str, str] = {}
    required: dict[str, Any] = {}
    policy = None
    plugin: PluginSpace | None = None
    if provider.startswith(POLICY_PREFIX):
        policy = provider[len(POLICY_PREFIX) :]
    else:
        space = next((s for s in spaces if s.name == provider), None) or SPACES[provider]
        if isinstance(space, PluginSpace):
            plugin = space
        options = space.suggest(trial, ctx)
        required = dict(space.session_requirements)

    level = ask("graph_optimization_level", levels)
    threads = ask("intra_op_num_threads", thread_choices(ctx.cores, ctx.performance_cores))
    entries: dict[str, str] = {}
    if threads != 1:
        entries["session.intra_op.allow_spinning"] = ask("intra_op_spinning", ["1", "0"])
    mode = required.get("execution_mode") or ask(
        "execution_mode", ["ORT_SEQUENTIAL", "ORT_PARALLEL"]
    )
    inter = 0
    if mode == "ORT_PARALLEL":
        inter = ask("inter_op_num_threads", thread_choices(ctx.cores, ctx.performance_cores))
    if "enable_mem_pattern" in required:
        mem_pattern = bool(required["enable_mem_pattern"])
    else:
        mem_pattern = ask("enable_mem_pattern", [True, False])
    arena = ask("enable_cpu_mem_arena", [True, False])
    if ctx.op_types & GELU_OPS:
        # a faster tanh approximation of GELU; the accuracy gate decides whether it is allowed
        approx = ask("gelu_approximation", ["0", "1"])
        if approx == "1":
            entries["optimization.enable_gelu_approximation"] = "1"
    free_dims: dict[str, int] = {}
    if ctx.free_dims and ask("free_dimension_overrides", [False, True]):
        free_dims = dict(ctx.free_dims)

    providers: tuple[tuple[str, dict[str, str]], ...] = ((CPU, {}),)
    if policy is None and provider != CPU:
        providers = ((plugin.ep_name if plugin else provider, options), (CPU, {}))
    return SessionConfig(
        providers=providers,
        graph_optimization_level=level,
        execution_mode=mode,
        intra_op_num_threads=threads,
        inter_op_num_threads=inter,
        enable_mem_pattern=mem_pattern,
        enable_cpu_mem_arena=arena,
        session_entries=entries,
        free_dimension_overrides=free_dims,
        device_policy=policy,
        plugin=dict(plugin.plugin) if plugin else None,
    ).canonical()


def one_knob_variants(ctx: SearchContext, levels: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """The default configuration with one setting changed, for each CPU session setting:
    cheap to build, and together they show which dimensions matter here. (dimension, params)"""
    out: list[tuple[str, dict[str, Any]]] = []

    def variant(dimension: str, **change: Any) -> None:
        out.append((dimension, {**DEFAULT_PARAMS, **change}))

    if ctx.free_dims:
        # first: fixing the symbolic dimensions lets ORT fold shape-derived subgraphs at load,
        # which can be worth several times the run (measured: 3-4x on tests.models.shape_folding)
        variant("free_dimension_overrides", free_dimension_overrides=True)
    for level in levels:
        if level != DEFAULT_PARAMS["graph_optimization_level"]:
            variant("graph_optimization_level", graph_optimization_level=level)
    if ctx.cores > 1:
        variant("intra_op_num_threads", intra_op_num_threads=1)
        if ctx.system != "Darwin":
            # as many threads as ORT's default, but named: on Linux and Windows ORT then leaves
            # them unpinned (with 0 it pins each intra-op thread to a core, and a thread pinned
            # to a core another program is using cannot move away)
            variant("intra_op_num_threads", intra_op_num_threads=ctx.cores)
    if ctx.performance_cores and 1 < ctx.performance_cores < ctx.cores:
        # a hybrid chip: only the performance cores, so no thread waits for an efficiency core
        variant("intra_op_num_threads", intra_op_num_threads=ctx.performance_cores)
    variant("intra_op_spinning", intra_op_spinning="0")
    variant("execution_mode", execution_mode="ORT_PARALLEL", inter_op_num_threads=0)
    variant("enable_mem_pattern", enable_mem_pattern=False)
    variant("enable_cpu_mem_arena", enable_cpu_mem_arena=False)
    if ctx.op_types & GELU_OPS:
        variant("gelu_approximation", gelu_approximation="1")
    return out
