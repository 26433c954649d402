"""Plugin execution providers: EPs that ship as their own Python package and load into the plain
``onnxruntime`` wheel (ORT >= 1.23), e.g. ``onnxruntime-ep-webgpu``, ``onnxruntime-ep-openvino``,
``onnxruntime-ep-mlx``, ``onnxruntime-ep-nv-tensorrt-rtx-cu13``.

``get_available_providers()`` lists none of them: a plugin's library has to be registered with
``onnxruntime.register_execution_provider_library(name, path)`` in each process, and its devices
then appear in ``onnxruntime.get_ep_devices()``; a session uses one with
``SessionOptions.add_provider_for_devices(devices, options)``.

Library paths come only from installed packages: a distribution named ``onnxruntime-ep-*``, its
module's own helper (``get_library_path()``, or ``library_path()`` for the MLX package), and the
path must be a file that distribution installed. A database or a manifest never names a library.

A library is registered under its EP's name, as the packages' own helpers do
(``onnxruntime_ep_mlx.register_execution_provider_library(name=EP_NAME)``): ORT hands the
registration name to the plugin's factory, and MLX's factory names itself, and so every device it
reports, after it (onnxruntime-mlx ``rust/src/factory.rs``, ``MlxEpFactory::new``). Registered
under the package name, MLX's devices would be ``onnxruntime-ep-mlx`` devices and never match.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata as md
import logging
import platform
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotune.errors import ConfigError

log = logging.getLogger("autotune")

PREFIX = "onnxruntime-ep-"
# the helpers that return a package's library: most have get_library_path(), the MLX package
# (onnxruntime-ep-mlx 0.31.0, onnxruntime_ep_mlx/__init__.py) only library_path()
LIBRARY_GETTERS = ("get_library_path", "library_path")
KNOWN_GETTERS = {"onnxruntime-ep-mlx": "library_path"}


class PluginUnavailable(ConfigError):
    """A configuration needs a plugin package (or a device of it) that this machine lacks."""

    def __init__(self, package: str, message: str) -> None:
        super().__init__(message)
        self.package = package


@dataclass(frozen=True)
class PluginPackage:
    """One installed plugin-EP package, as found (not yet registered)."""

    package: str  # normalized distribution name, e.g. onnxruntime-ep-webgpu
    version: str
    module: str
    ep_names: tuple[str, ...] = ()
    library: str | None = None
    problem: str | None = None  # why it cannot be used (no library, import failed)
    getter: str = "get_library_path"  # the module's helper that returns ``library``

    @property
    def registration_name(self) -> str:
        """The name the library is registered under: its EP's name (the name MLX's factory
        gives its devices), or the package's when it provides several EPs."""
        return self.ep_names[0] if len(self.ep_names) == 1 else self.package


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _module_name(dist: md.Distribution, package: str) -> str:
    top = (dist.read_text("top_level.txt") or "").split()
    return top[0] if top else package.replace("-", "_")


def _installed_files(dist: md.Distribution) -> set[Path] | None:
    files = dist.files
    if files is None:
        return None
    out = set()
    for f in files:
        try:
            out.add(Path(str(dist.locate_file(f))).resolve())
        except OSError:
            continue
    return out


def _inspect(dist: md.Distribution, package: str) -> PluginPackage:
    version = dist.version
    module_name = _module_name(dist, package)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - a broken package is reported, not raised
        return PluginPackage(package, version, module_name, problem=f"cannot import: {exc}")
    names: list[str] = []
    for attr in ("get_ep_names", "get_ep_name", "EP_NAME"):
        value = getattr(module, attr, None)
        try:
            value = value() if callable(value) else value
        except Exception:  # noqa: BLE001 - try the next helper
            continue
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list | tuple) and value:
            names = [str(v) for v in value]
            break
    getter_name = next(
        (g for g in LIBRARY_GETTERS if callable(getattr(module, g, None))), LIBRARY_GETTERS[0]
    )
    getter = getattr(module, getter_name, None)
    if not callable(getter) or not names:
        return PluginPackage(
            package,
            version,
            module_name,
            tuple(names),
            problem="exposes no plugin library (no get_library_path()/get_ep_name()); "
            "a placeholder or meta-package?",
        )
    try:
        library = Path(str(getter())).resolve()
    except Exception as exc:  # noqa: BLE001
        return PluginPackage(package, version, module_name, tuple(names), problem=str(exc))
    installed = _installed_files(dist)
    module_file = getattr(module, "__file__", None)
    inside = module_file is not None and Path(module_file).resolve().parent in library.parents
    if not library.is_file() or (installed is not None and library not in installed) or not inside:
        return PluginPackage(
            package,
            version,
            module_name,
            tuple(names),
            problem=f"its library {library.name} is not a file that {package} installed",
        )
    return PluginPackage(
        package, version, module_name, tuple(names), str(library), getter=getter_name
    )


@functools.lru_cache(maxsize=1)
def discover() -> tuple[PluginPackage, ...]:
    """Plugin-EP packages installed in this environment, by distribution name."""
    found: dict[str, PluginPackage] = {}
    for dist in md.distributions():
        name = _normalize(dist.metadata["Name"] or "")
        if not name.startswith(PREFIX) or name in found:
            continue
        found[name] = _inspect(dist, name)
    return tuple(found[n] for n in sorted(found))


def installed_version(package: str) -> str | None:
    for p in discover():
        if p.package == package:
            return p.version
    return None


_lock = threading.Lock()
_registered: dict[str, str | None] = {}  # package -> None (registered) or the error


def register(pkg: PluginPackage) -> str | None:
    """Register ``pkg``'s library with ORT in this process (once). None, or why it failed."""
    import onnxruntime as ort

    if pkg.library is None:
        return pkg.problem or "no library"
    with _lock:
        if pkg.package in _registered:
            return _registered[pkg.package]
        # the chip identity is computed from ORT's own devices, before any plugin adds its own
        from autotune.chip import current_chip

        current_chip()
        error: str | None = None
        try:
            ort.register_execution_provider_library(pkg.registration_name, pkg.library)
        except AttributeError:
            error = f"onnxruntime {ort.__version__} has no plugin-EP API (needs >= 1.23)"
        except Exception as exc:  # noqa: BLE001 - ORT raises its own Fail type
            text = " ".join(str(exc).split())
            if "already registered" not in text:
                error = text[:300]
        _registered[pkg.package] = error
        return error


def register_all() -> None:
    for pkg in discover():
        if pkg.library is not None:
            register(pkg)


def registered_ep_names() -> set[str]:
    """EP names (and their ``Name.SUFFIX`` meta-devices) of plugins registered here."""
    if not _registered:  # the common case at run time: no scan of the installed packages
        return set()
    return {n for p in discover() if _registered.get(p.package, "x") is None for n in p.ep_names}


def is_plugin_ep(ep_name: str) -> bool:
    names = registered_ep_names()
    return ep_name in names or ep_name.split(".", 1)[0] in names


def device_kind(device: Any) -> str:
    return str(getattr(device.device, "type", "")).rsplit(".", 1)[-1]


def device_selector(device: Any) -> str:
    """A stable name of an EP device's hardware: ``GPU/4318/8757`` (type/vendor id/device id)."""
    hw = device.device
    return f"{device_kind(device)}/{int(hw.vendor_id)}/{int(hw.device_id)}"


def device_label(device: Any) -> str:
    """``GPU NVIDIA H200`` or ``CPU Intel(R) Xeon(R) Processor``, as far as the device says."""
    meta = dict(device.ep_metadata or {})
    hw_meta = dict(device.device.metadata or {})
    name = (
        meta.get("FULL_DEVICE_NAME")
        or hw_meta.get("Description")
        or hw_meta.get("description")
        or device.device.vendor
    )
    ov = meta.get("ov_device")
    kind = device_kind(device)
    return f"{kind} {name}" + (f" (OpenVINO {ov})" if ov and ov != kind else "")


def devices_of(pkg: PluginPackage) -> list[Any]:
    """The EP devices ``pkg`` reports here (registering it first); meta-devices such as
    ``OpenVINOExecutionProvider.AUTO`` are left out: they are the same hardware behind one more
    layer of selection."""
    import onnxruntime as ort

    if register(pkg) is not None:
        return []
    try:
        devices = ort.get_ep_devices()
    except Exception:  # noqa: BLE001
        return []
    names = {*pkg.ep_names, pkg.registration_name}
    return [d for d in devices if d.ep_name in names]


def library_getter(package: str) -> str:
    """The helper of ``package``'s module that returns its library (for generated code): the
    installed package's own, else the one it is known to have."""
    for pkg in discover():
        if pkg.package == package and pkg.library is not None:
            return pkg.getter
    return KNOWN_GETTERS.get(package, LIBRARY_GETTERS[0])


def _cpu_vendor() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "vendor_id":
                    return value.strip()
    except OSError:
        pass
    return platform.processor()


def no_device_reason(
    pkg: PluginPackage, *, system: str | None = None, cpu_vendor: str | None = None
) -> str:
    """Why a registered plugin reports no device here, as far as can be told."""
    import ctypes.util

    system = system or platform.system()
    if "webgpu" in pkg.package:
        if system == "Linux" and ctypes.util.find_library("vulkan") is None:
            return (
                "WebGPU found no GPU adapter: no Vulkan loader (libvulkan.so.1) is installed "
                "(Debian/Ubuntu: apt-get install libvulkan1), and a GPU with a Vulkan driver "
                "is needed"
            )
        backend = {"Darwin": "Metal", "Windows": "D3D12 or Vulkan"}.get(system, "Vulkan")
        return f"WebGPU found no GPU adapter ({backend}): no GPU, or no driver for it"
    if "openvino" in pkg.package:
        vendor = cpu_vendor if cpu_vendor is not None else _cpu_vendor()
        if "AMD" in vendor.upper():
            return (
                f"the OpenVINO plugin reports no device on this {vendor} CPU (it lists Intel "
                "CPUs, GPUs and NPUs); on this host use the onnxruntime-openvino wheel in an "
                "environment of its own (scripts/openvino_integration.sh)"
            )
        return "the OpenVINO plugin reported no Intel CPU, GPU or NPU here"
    if "mlx" in pkg.package and system != "Darwin":
        return "MLX runs on Apple Silicon only"
    return "the plugin reported no device here"


def find_devices(plugin: Mapping[str, str], ep_name: str) -> list[Any]:
    """The devices a stored configuration's ``plugin`` entry names, registering the package.

    Raises PluginUnavailable when the package is missing, has another version, fails to
    register, or reports no such device here."""
    package = plugin["package"]
    pkg = next((p for p in discover() if p.package == package), None)
    if pkg is None:
        raise PluginUnavailable(
            package, f"{package} is not installed here ({install_advice(plugin)})"
        )
    if pkg.version != plugin["version"]:
        raise PluginUnavailable(
            package,
            f"measured with {package} {plugin['version']}, but {pkg.version} is installed "
            "(stale; run autotune search again)",
        )
    if ep_name not in pkg.ep_names:
        raise PluginUnavailable(package, f"{package} provides no {ep_name}")
    error = register(pkg)
    if error is not None:
        raise PluginUnavailable(package, f"{package} failed to register: {error}")
    devices = [d for d in devices_of(pkg) if d.ep_name == ep_name]
    chosen = [d for d in devices if device_selector(d) == plugin["device"]]
    if not chosen:
        raise PluginUnavailable(
            package,
            f"{ep_name} reports no device {plugin['device']} here ({no_device_reason(pkg)})",
        )
    return chosen[:1]


# Plugin packages autotune knows (plugin-EP packages on PyPI, checked 2026-12-01): only these
# are named in install advice. A stored configuration may name any package and version.
KNOWN_PACKAGES = frozenset(
    {
        "onnxruntime-ep-mlx",
        "onnxruntime-ep-openvino",
        "onnxruntime-ep-webgpu",
        "onnxruntime-ep-nv-tensorrt-rtx",
        "onnxruntime-ep-nv-tensorrt-rtx-cu12",
        "onnxruntime-ep-nv-tensorrt-rtx-cu13",
    }
)


def install_advice(plugin: Mapping[str, str]) -> str:
    """Install advice for a missing plugin package, from stored text: a command only for a
    package autotune knows, pinned only to a plain release number."""
    package, version = plugin["package"], plugin["version"]
    if package not in KNOWN_PACKAGES:
        return "a plugin this machine lacks; autotune does not know this package"
    pin = f"=={version}" if re.fullmatch(r"[0-9]{1,6}(\.[0-9]{1,6}){0,3}", version) else ""
    return f"pip install {package}{pin}"


_warned: set[str] = set()


def warn_once(exc: PluginUnavailable) -> None:
    """One warning per missing plugin package and process (an app may build many sessions)."""
    if exc.package in _warned:
        log.info("autotune: %s; using the next choice", exc)
        return
    _warned.add(exc.package)
    log.warning("autotune: %s; using the next choice", exc)


def report() -> list[dict[str, Any]]:
    """Every plugin package found, with its devices or why it has none (``autotune chip``)."""
    out: list[dict[str, Any]] = []
    for pkg in discover():
        entry: dict[str, Any] = {
            "package": pkg.package,
            "version": pkg.version,
            "ep_names": list(pkg.ep_names),
            "devices": [],
            "no_device_reason": None,
        }
        error = register(pkg) if pkg.library else (pkg.problem or "no library")
        if error is not None:
            entry["no_device_reason"] = error
        else:
            entry["devices"] = [
                {"ep_name": d.ep_name, "device": device_selector(d), "label": device_label(d)}
                for d in devices_of(pkg)
            ]
            if not entry["devices"]:
                entry["no_device_reason"] = no_device_reason(pkg)
        out.append(entry)
    return out
