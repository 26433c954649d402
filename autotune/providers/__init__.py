"""The execution providers autotune knows: one module each, collected here.

``SPACES`` maps ORT's provider name to its :class:`ProviderSpace`. ``validate_config`` is the
gate every stored configuration passes before it reaches ORT.
"""

from __future__ import annotations

import importlib

from autotune.config import SessionConfig
from autotune.errors import ConfigError
from autotune.providers.base import Option, ProviderSpace, SearchContext, TrialLike

_MODULES = ("cpu", "coreml", "cuda", "tensorrt", "openvino", "dml", "qnn")

SPACES: dict[str, ProviderSpace] = {}
for _module in _MODULES:
    _space = importlib.import_module(f"autotune.providers.{_module}").SPACE
    SPACES[_space.name] = _space


def installed_providers() -> list[str]:
    """Provider names the installed onnxruntime can create here, in ORT's priority order."""
    import onnxruntime as ort

    names = list(ort.get_available_providers())
    get_devices = getattr(ort, "get_ep_devices", None)
    if get_devices is not None:
        try:
            for device in get_devices():
                if device.ep_name not in names:
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
    """The spaces of providers available here, CPU first (cheapest), then by compile cost."""
    here = set(installed_providers())
    spaces = [s for s in SPACES.values() if s.name in here]
    return sorted(spaces, key=lambda s: (s.compile_cost, s.name != "CPUExecutionProvider", s.name))


def validate_config(config: SessionConfig) -> None:
    """Raise ConfigError unless every provider and option in ``config`` is known and safe."""
    for name, options in config.providers:
        space = SPACES.get(name)
        if space is None:
            raise ConfigError(f"unknown execution provider {name!r:.60}")
        space.validate(options)
        problems = space.violations(options, config.to_dict())
        if problems:
            raise ConfigError(f"{name}: " + "; ".join(problems))


__all__ = [
    "SPACES",
    "Option",
    "ProviderSpace",
    "SearchContext",
    "TrialLike",
    "available_spaces",
    "device_policies",
    "installed_providers",
    "validate_config",
]
