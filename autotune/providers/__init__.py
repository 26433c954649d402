"""The execution providers autotune knows: one module each, collected here.

``SPACES`` maps ORT's provider name to its :class:`ProviderSpace`. ``PLUGIN_SPACES`` maps a
plugin package and its EP name to the space of that plugin EP (see :mod:`autotune.plugins`); a
plugin package autotune has no module for is searched with the EP's defaults only.
``validate_config`` is the gate every stored configuration passes before it reaches ORT.
"""

from __future__ import annotations

import importlib

from autotune.config import SessionConfig
from autotune.errors import ConfigError
from autotune.providers.base import Option, PluginSpace, ProviderSpace, SearchContext, TrialLike

_MODULES = ("cpu", "coreml", "cuda", "tensorrt", "openvino", "dml", "qnn")

SPACES: dict[str, ProviderSpace] = {}
for _module in _MODULES:
    _space = importlib.import_module(f"autotune.providers.{_module}").SPACE
    SPACES[_space.name] = _space

PLUGIN_SPACES: dict[tuple[str, str], ProviderSpace] = {}
for _module in ("webgpu", "openvino_plugin"):
    _space = importlib.import_module(f"autotune.providers.{_module}").SPACE
    PLUGIN_SPACES[(_space.pip_package, _space.name)] = _space


def plugin_space(package: str, ep_name: str) -> ProviderSpace:
    """The option space of ``ep_name`` from ``package``; a plugin autotune has no module for
    takes no options (it runs with the EP's defaults)."""
    space = PLUGIN_SPACES.get((package, ep_name))
    if space is not None:
        return space
    return ProviderSpace(
        name=ep_name, short=package.removeprefix("onnxruntime-ep-"), options={}, suggest=_none
    )


def _none(trial: TrialLike, ctx: SearchContext) -> dict[str, str]:
    return {}


def plugin_candidates() -> list[PluginSpace]:
    """One candidate per plugin EP device reported here (registering each plugin package)."""
    from autotune import plugins
    from autotune.providers import openvino_plugin

    out: list[PluginSpace] = []
    for pkg in plugins.discover():
        if pkg.library is None:
            continue
        for device in plugins.devices_of(pkg):
            space = plugin_space(pkg.package, device.ep_name)
            selector = plugins.device_selector(device)
            suggest = space.suggest
            if space is openvino_plugin.SPACE:
                meta = dict(device.ep_metadata or {})
                suggest = openvino_plugin.suggest_for(
                    meta.get("ov_device", "CPU"), meta.get("OPTIMIZATION_CAPABILITIES", "")
                )
            out.append(
                PluginSpace(
                    name=f"plugin:{pkg.package}:{device.ep_name}:{selector}",
                    short=space.short,
                    options=space.options,
                    suggest=suggest,
                    constraints=space.constraints,
                    cache_options=space.cache_options,
                    compile_cost=space.compile_cost,
                    pip_package=pkg.package,
                    runtime_hook=space.runtime_hook,
                    first_point=space.first_point,
                    ep_name=device.ep_name,
                    plugin={"package": pkg.package, "version": pkg.version, "device": selector},
                    label=f"{device.ep_name} from {pkg.package} {pkg.version} on "
                    f"{plugins.device_label(device)}",
                )
            )
    return out


def installed_providers() -> list[str]:
    """Provider names the installed onnxruntime can create here, in ORT's priority order."""
    import onnxruntime as ort

    from autotune.plugins import is_plugin_ep

    # ORT lists a registered plugin EP here too; plugin EPs are candidates of their own
    # (plugin_candidates, built on a device), never built-in providers
    names = [n for n in ort.get_available_providers() if not is_plugin_ep(n)]
    get_devices = getattr(ort, "get_ep_devices", None)
    if get_devices is not None:
        try:
            for device in get_devices():
                if device.ep_name not in names and not is_plugin_ep(device.ep_name):
                    names.append(device.ep_name)
        except Exception:  # noqa: BLE001 - a broken device query must not hide the providers
            pass
    return names


def device_policies() -> tuple[str, ...]:
    """ORT's automatic EP-selection policies, offered as candidates when this onnxruntime has
    them (>= 1.23) and a device other than the default CPU EP could be chosen. Otherwise every
    policy resolves to the plain CPU EP, which the default configuration already measures."""
    import onnxruntime as ort

    from autotune.config import DEVICE_POLICIES

    if not hasattr(ort, "OrtExecutionProviderDevicePolicy") or not hasattr(ort, "get_ep_devices"):
        return ()
    try:
        devices = ort.get_ep_devices()
    except Exception:  # noqa: BLE001 - no device list, no policies
        return ()
    if all(d.ep_name == "CPUExecutionProvider" for d in devices):
        return ()
    return DEVICE_POLICIES


def available_spaces() -> list[ProviderSpace]:
    """The spaces of providers available here, CPU first (cheapest), then by compile cost; plugin
    EPs once per device they report (their packages are registered in this process)."""
    import onnxruntime as ort

    here = set(installed_providers())
    spaces: list[ProviderSpace] = [
        s for s in SPACES.values() if s.name in here and s.applies_options_in(ort.__version__)
    ]
    spaces += plugin_candidates()
    return sorted(spaces, key=lambda s: (s.compile_cost, s.name != "CPUExecutionProvider", s.name))


def validate_config(config: SessionConfig) -> None:
    """Raise ConfigError unless every provider and option in ``config`` is known and safe."""
    plugin = config.plugin
    if plugin is not None:
        names = [n for n, _ in config.providers if n != "CPUExecutionProvider"]
        if config.device_policy or len(names) != 1:
            raise ConfigError("a plugin configuration names one plugin EP and no device policy")
    for name, options in config.providers:
        space = SPACES.get(name)
        if plugin is not None and name != "CPUExecutionProvider":
            space = plugin_space(plugin["package"], name)
        if space is None:
            raise ConfigError(f"unknown execution provider {name!r:.60}")
        space.validate(options)
        problems = space.violations(options, config.to_dict())
        if problems:
            raise ConfigError(f"{name}: " + "; ".join(problems))


__all__ = [
    "PLUGIN_SPACES",
    "SPACES",
    "Option",
    "PluginSpace",
    "ProviderSpace",
    "SearchContext",
    "TrialLike",
    "available_spaces",
    "device_policies",
    "installed_providers",
    "plugin_candidates",
    "plugin_space",
    "validate_config",
]
