"""Which machine this is, as far as performance is concerned.

The chip id is stable and readable: the processor model (``Apple M3 Max`` from the
``machdep.cpu.brand_string`` sysctl on macOS, the ``model name`` of /proc/cpuinfo on Linux), the
number of cores this process may use, and its GPUs and NPUs. Results are keyed by it.

Accelerators are the ones ONNX Runtime can see, except on Apple Silicon, where they come from
the hardware (an Apple GPU and a Neural Engine, always): ORT 1.32 reports them and older ORTs do
not, and a key that changed with an ORT upgrade would hide every stored result. An x86_64 Python
under Rosetta on Apple Silicon gets a chip id of its own (``…, x86_64 under Rosetta``).
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import os
import platform
import socket
from dataclasses import dataclass

from autotune.descriptor import (
    APPLE_SILICON_ACCELERATORS,
    ChipDescriptor,
    describe,
    format_chip_id,
    is_apple_silicon,
    read_sysctl,
)


@dataclass(frozen=True)
class Chip:
    """The identity of this machine's compute, plus the ORT build that runs on it."""

    cpu: str
    cores: int
    accelerators: tuple[str, ...]
    system: str
    ort_version: str
    providers: tuple[str, ...]
    translated: bool = False  # an x86_64 process under Rosetta on Apple Silicon

    @property
    def chip_id(self) -> str:
        """E.g. ``AMD EPYC (2 cores)`` or ``Apple M3 Max (14 cores) + GPU Apple + NPU Apple``."""
        return format_chip_id(self.cpu, self.cores, self.accelerators, translated=self.translated)


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity mask
        return os.cpu_count() or 1


def _cpu_model(system: str) -> str:
    if system == "Darwin":
        brand = read_sysctl("machdep.cpu.brand_string")
        if brand:
            return brand
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _accelerators() -> tuple[str, ...]:
    """GPUs and NPUs ONNX Runtime reports through its EP-device API (ORT >= 1.23)."""
    import onnxruntime as ort

    found: list[str] = []
    get_devices = getattr(ort, "get_ep_devices", None)
    if get_devices is None:
        return ()
    try:
        devices = get_devices()
    except Exception:  # noqa: BLE001 - the device list is informative only
        return ()
    for d in devices:
        kind = str(getattr(d.device, "type", "")).rsplit(".", 1)[-1]
        if kind in ("GPU", "NPU"):
            name = d.device.metadata.get("Description") if d.device.metadata else None
            label = f"{kind} {name or d.device.vendor}".strip()
            if label not in found:
                found.append(label)
    return tuple(found)


@functools.lru_cache(maxsize=1)
def current_chip() -> Chip:
    """This machine (computed once per process)."""
    import onnxruntime as ort

    system = platform.system()
    cpu = _cpu_model(system)
    apple = is_apple_silicon(cpu, system)
    return Chip(
        cpu=cpu,
        cores=usable_cores(),
        accelerators=APPLE_SILICON_ACCELERATORS if apple else _accelerators(),
        system=f"{system} {platform.release()}",
        ort_version=ort.__version__,
        providers=tuple(ort.get_available_providers()),
        translated=apple and _translated(),
    )


def _translated() -> bool:
    """Whether this process runs under Rosetta (``sysctl.proc_translated`` is 1; an x86_64
    Python on an Apple chip, should the sysctl be unreadable)."""
    value = read_sysctl("sysctl.proc_translated")
    return value == "1" if value is not None else platform.machine() == "x86_64"


@functools.lru_cache(maxsize=1)
def provenance() -> dict[str, str]:
    """Who and where a result comes from: host id (hashed host name), user, OS."""
    host = socket.gethostname()
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        user = "unknown"
    return {
        "host": host,
        "host_id": hashlib.sha256(host.encode()).hexdigest()[:12],
        "user": user,
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": platform.python_version(),
    }


@functools.lru_cache(maxsize=1)
def current_descriptor() -> ChipDescriptor:
    """This machine as a comparable descriptor (vendor, family, generation, tier, P/E cores,
    accelerators, OS): what :mod:`autotune.ladder` compares to borrow a sibling chip's result."""
    c = current_chip()
    return describe(c.cpu, c.cores, c.accelerators)
