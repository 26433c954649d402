"""Turn a SessionConfig into ``onnxruntime.SessionOptions`` and an ``InferenceSession``.

Shared by the measuring worker and the run-time resolver, so what was measured is exactly what an
app gets. Cache directories for compiling EPs are added here, under autotune's own cache
(``autotune.compile_cache`` keys, locks and prunes them).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from autotune.config import CPU, SessionConfig
from autotune.errors import ConfigError

RECORD_PLACEMENT = "session.record_ep_graph_assignment_info"
log = logging.getLogger("autotune")


def session_options(config: SessionConfig, *, record_placement: bool = False) -> Any:
    """``onnxruntime.SessionOptions`` for ``config``.

    Raises ConfigError if this onnxruntime lacks a setting."""
    import onnxruntime as ort

    c = config.canonical()
    so = ort.SessionOptions()
    level = getattr(ort.GraphOptimizationLevel, c.graph_optimization_level, None)
    if level is None:
        raise ConfigError(
            f"{c.graph_optimization_level} needs a newer onnxruntime than {ort.__version__}"
        )
    so.graph_optimization_level = level
    so.execution_mode = getattr(ort.ExecutionMode, c.execution_mode)
    so.intra_op_num_threads = c.intra_op_num_threads
    so.inter_op_num_threads = c.inter_op_num_threads
    so.enable_mem_pattern = c.enable_mem_pattern
    so.enable_cpu_mem_arena = c.enable_cpu_mem_arena
    for key, value in c.session_entries.items():
        so.add_session_config_entry(key, value)
    for name, size in c.free_dimension_overrides.items():
        so.add_free_dimension_override_by_name(name, size)
    if record_placement and placement_supported():
        so.add_session_config_entry(RECORD_PLACEMENT, "1")
    if c.device_policy:
        policies = getattr(ort, "OrtExecutionProviderDevicePolicy", None)
        if policies is None or not hasattr(so, "set_provider_selection_policy"):
            raise ConfigError(f"device policy {c.device_policy} needs onnxruntime >= 1.23")
        so.set_provider_selection_policy(getattr(policies, c.device_policy))
    return so


def placement_supported() -> bool:
    import onnxruntime as ort

    return hasattr(ort.InferenceSession, "get_provider_graph_assignment_info")


def provider_list(
    config: SessionConfig, cache_dir: Path | None
) -> list[tuple[str, dict[str, str]]]:
    """The ``providers=`` argument, with autotune-owned cache paths filled in."""
    from autotune.providers import SPACES, plugin_space

    out = []
    for name, options in config.canonical().providers:
        space = SPACES.get(name)
        if config.plugin and name != CPU:
            space = plugin_space(config.plugin["package"], name)
        opts = space.runtime_options(options, cache_dir) if space else dict(options)
        out.append((name, opts))
    return out


def build_cached_session(
    model_path: str | os.PathLike[str], config: SessionConfig, digest: str
) -> Any:
    """An ``InferenceSession`` for ``config`` whose compiling EPs load from (or fill) autotune's
    persistent compile cache (``autotune.compile_cache``: keyed by ORT version, OS build and
    compile key; locked, kill-safe, pruned). Raises what ``build_session`` raises."""
    from autotune import compile_cache

    if not compile_cache.uses_compile_cache(config):
        return build_session(model_path, config)
    try:
        built = compile_cache.build_cached(
            compile_cache.entry_dir(digest, config),
            lambda directory: build_session(model_path, config, cache_dir=directory),
        )
    except compile_cache.CacheUnavailable as exc:
        log.warning("autotune: %s; building without a compile cache", exc)
        return build_session(model_path, config)
    if built.wiped:
        log.info("autotune: compile cache of %s rebuilt: %s", os.fspath(model_path), built.wiped)
    if built.cold:
        compile_cache.prune()
    return built.session


def build_trial_session(
    model_path: str, config: SessionConfig, cache_dir: str | None
) -> tuple[Any, float, float | None]:
    """A trial's session, its cold build in milliseconds, and its load from the compile cache
    (None when ``config`` compiles nothing or no cache was given).

    The trials of a search that share a compile key share one directory: the first compiles
    (its build is the key's cold compile, recorded once) and has its cached load measured in a
    fresh process, as an app's next launch would pay it; the others load from the cache in
    their own fresh session process and report the key's recorded cold compile beside it."""
    from autotune import compile_cache

    t0 = time.perf_counter()
    if cache_dir is None or not compile_cache.uses_compile_cache(config):
        session = build_session(model_path, config, record_placement=True)
        return session, (time.perf_counter() - t0) * 1000.0, None
    try:
        built = compile_cache.build_cached(
            Path(cache_dir),
            lambda directory: build_session(
                model_path, config, cache_dir=directory, record_placement=True
            ),
        )
    except compile_cache.CacheUnavailable:
        session = build_session(model_path, config, record_placement=True)
        return session, (time.perf_counter() - t0) * 1000.0, None
    if not built.cold:
        return built.session, built.cold_ms or built.build_ms, built.build_ms
    return built.session, built.build_ms, cached_load_ms(model_path, config, Path(cache_dir))


def cached_load_ms(model_path: str, config: SessionConfig, cache_dir: Path) -> float | None:
    """The build of ``config`` from its filled compile cache in a fresh Python process (Core ML
    keeps state in the process that compiled), or None if that process failed."""
    command = [sys.executable, "-m", "autotune.cached_load", model_path, config.to_json()]
    try:
        done = subprocess.run(
            [*command, str(cache_dir)], capture_output=True, text=True, timeout=600, check=True
        )
        return float(json.loads(done.stdout.strip().splitlines()[-1])["build_ms"])
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, IndexError):
        return None


def build_session(
    model_path: str | os.PathLike[str],
    config: SessionConfig,
    *,
    cache_dir: Path | None = None,
    record_placement: bool = False,
) -> Any:
    """An ``InferenceSession`` for ``config``. Raises what ORT raises when it cannot be built."""
    import onnxruntime as ort

    from autotune.plugins import is_plugin_ep

    so = session_options(config, record_placement=record_placement)
    if config.device_policy and cache_dir is not None:
        from autotune.compile_cache import policy_cache_options

        for key, value in policy_cache_options(cache_dir).items():
            Path(value).mkdir(parents=True, exist_ok=True)
            so.add_session_config_entry(key, value)
    if config.plugin or config.device_policy:
        add_plugin_devices(so, config, cache_dir)
    if config.plugin:
        return ort.InferenceSession(str(model_path), sess_options=so)
    # a registered plugin EP is listed too, but is built only on its device (config.plugin)
    available = {n for n in ort.get_available_providers() if not is_plugin_ep(n)}
    missing = [n for n, _ in config.canonical().providers if n not in available]
    if missing and not config.device_policy:
        # ORT would only warn and run on CPU: a configuration for another build is not this one
        raise ConfigError(
            f"{', '.join(missing)} is not available in this onnxruntime build "
            f"({ort.__version__}: {', '.join(sorted(available))})"
        )
    if config.device_policy:
        return ort.InferenceSession(str(model_path), sess_options=so)
    return ort.InferenceSession(
        str(model_path), sess_options=so, providers=provider_list(config, cache_dir)
    )


def add_plugin_devices(so: Any, config: SessionConfig, cache_dir: Path | None) -> None:
    """Register the plugin packages ``config`` needs in this process (the trial's own, or at run
    time the app's): for a plugin configuration its package, added on its device with
    ``add_provider_for_devices`` (the CPU EP behind it); for a device policy every installed
    plugin, so ORT's selection sees the devices it saw when measured. Raises PluginUnavailable
    (a ConfigError) when the package, its version or the device is missing."""
    from autotune import plugins

    if config.plugin is None:
        plugins.register_all()
        return
    name, _ = config.canonical().providers[0]
    devices = plugins.find_devices(config.plugin, name)
    options = dict(provider_list(config, cache_dir)[0][1])
    so.add_provider_for_devices(devices, options)


def dropped_providers(session: Any, config: SessionConfig) -> list[str]:
    """Requested providers ORT did not keep (its Python-level fallback to CPU replaced them)."""
    if config.device_policy:
        return []
    kept = set(session.get_providers())
    return [name for name, _ in config.canonical().providers if name != CPU and name not in kept]
