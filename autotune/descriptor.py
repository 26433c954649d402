"""A chip descriptor that can be compared: what a chip *is*, not only what it is called.

The chip id (``Apple M3 Max (16 cores)``) keys results exactly. A descriptor says what that chip
is made of, so a result can be borrowed by a sibling chip (see :mod:`autotune.ladder`):

- ``vendor``, ``family``, ``generation``, ``tier`` and ``model``, parsed from the brand string
  (``machdep.cpu.brand_string`` on macOS, the ``model name`` of /proc/cpuinfo on Linux);
- ``performance_cores`` and ``efficiency_cores``, read from the OS: ``hw.perflevel0.physicalcpu``
  and ``hw.perflevel1.physicalcpu`` on macOS, ``/sys/devices/cpu_core`` and ``cpu_atom`` for
  Intel hybrid chips on Linux, per-core ``cpufreq`` maxima for Arm big.LITTLE (the slowest
  cluster is the efficiency one), and otherwise every physical core counts as a performance
  core;
- ``arch``, ``cores`` (usable by this process), ``accelerators`` and ``os``.

Standard library only, and nothing here imports onnxruntime: it is parsed from stored chip ids
(the schema migration), from manifests, and on the run-time path. Anything parsed from a
database or a manifest is validated by :meth:`ChipDescriptor.from_dict`.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

MAX_CORES = 4096
_TEXT_RE = re.compile(r"[A-Za-z0-9 ()+.,_\-/@:]{1,160}")
_CHIP_ID_RE = re.compile(
    r"^(?P<cpu>.*?) \((?P<cores>\d{1,4}) cores(?P<rosetta>, x86_64 under Rosetta)?\)"
    r"(?P<acc>(?: \+ .+)?)$"
)
# Every Apple Silicon Mac has an Apple GPU and a Neural Engine. ORT >= 1.32 reports them (its
# CoreML factory's GPU and NPU devices, labelled by vendor); older ones report neither. The chip
# id takes them from the hardware, so it does not change with the installed onnxruntime.
APPLE_SILICON_ACCELERATORS = ("GPU Apple", "NPU Apple")
ROSETTA = ", x86_64 under Rosetta"


@dataclass(frozen=True)
class ChipDescriptor:
    """A structured description of one chip. Unknown parts are None (and never match)."""

    vendor: str | None = None  # Apple, Intel, AMD, Qualcomm
    family: str | None = None  # Apple M, Intel Core Ultra, Intel Xeon, AMD EPYC, Snapdragon X
    generation: str | None = None  # M3, Meteor Lake, Sapphire Rapids, Genoa, Zen 4, X1
    tier: str | None = None  # base, Pro, Max, Ultra; i7; Platinum; 9; Elite
    model: str | None = None  # the brand string without its trademarks and clock
    arch: str | None = None  # arm64, x86_64
    cores: int | None = None  # cores this process may use
    performance_cores: int | None = None
    efficiency_cores: int | None = None
    accelerators: tuple[str, ...] = field(default_factory=tuple)
    os: str | None = None  # Darwin, Linux, Windows

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["accelerators"] = list(self.accelerators)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def label(self) -> str:
        """A short human label: ``Apple M3 Max, 12P+4E``."""
        name = self.model or " ".join(p for p in (self.family, self.generation, self.tier) if p)
        if self.performance_cores is not None:
            name += f", {self.performance_cores}P"
            if self.efficiency_cores:
                name += f"+{self.efficiency_cores}E"
        return name or "unknown chip"

    @classmethod
    def from_dict(cls, data: Any) -> ChipDescriptor:
        """Validate strictly (a descriptor may come from another machine's database)."""
        if not isinstance(data, dict):
            raise ValueError("a chip descriptor must be a JSON object")
        unknown = set(data) - set(_FIELDS)
        if unknown:
            raise ValueError(f"unknown chip descriptor field(s): {', '.join(sorted(unknown))}")
        kwargs: dict[str, Any] = {}
        for name in ("vendor", "family", "generation", "tier", "model", "arch", "os"):
            value = data.get(name)
            if value is not None and not (isinstance(value, str) and _TEXT_RE.fullmatch(value)):
                raise ValueError(f"chip descriptor {name} {value!r:.40} is not a short name")
            kwargs[name] = value
        for name in ("cores", "performance_cores", "efficiency_cores"):
            value = data.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CORES
            ):
                raise ValueError(f"chip descriptor {name} {value!r:.40} is not a core count")
            kwargs[name] = value
        acc = data.get("accelerators", [])
        if not isinstance(acc, list) or len(acc) > 16:
            raise ValueError("chip descriptor accelerators must be a list of at most 16 names")
        for item in acc:
            if not (isinstance(item, str) and _TEXT_RE.fullmatch(item)):
                raise ValueError(f"accelerator {item!r:.40} is not a short name")
        kwargs["accelerators"] = tuple(acc)
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> ChipDescriptor:
        if not isinstance(text, str) or len(text) > 4096:
            raise ValueError("a chip descriptor must be a short JSON string")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"chip descriptor is not valid JSON ({exc})") from None
        return cls.from_dict(data)


_FIELDS = tuple(ChipDescriptor.__dataclass_fields__)


# -- the brand string ------------------------------------------------------------------------


def _clean(brand: str) -> str:
    text = re.sub(r"\((?:R|TM|tm|r)\)|®|™", " ", brand)
    text = re.sub(r"\bCPU\b|\bProcessor\b|@\s*[\d.]+\s*[GM]Hz|\b\d+-Core\b", " ", text)
    text = re.sub(r"\s+w/\s.*$", " ", text)  # "AMD Ryzen 7 7840U w/ Radeon 780M Graphics"
    return " ".join(text.split())


_INTEL_CORE_GEN = {
    "14": "Raptor Lake",
    "13": "Raptor Lake",
    "12": "Alder Lake",
    "11": "Tiger Lake",
    "10": "Comet Lake",
}
_XEON_SCALABLE_GEN = {
    "1": "Skylake",
    "2": "Cascade Lake",
    "3": "Ice Lake",
    "4": "Sapphire Rapids",
    "5": "Emerald Rapids",
}
_ZEN_BY_SERIES = {
    "1": "Zen",
    "2": "Zen+",
    "3": "Zen 2",
    "4": "Zen 2",
    "5": "Zen 3",
    "7": "Zen 4",
    "8": "Zen 4",
    "9": "Zen 5",
}
_ZEN_BY_DIGIT = {"1": "Zen", "2": "Zen 2", "3": "Zen 3", "4": "Zen 4", "5": "Zen 5"}
_EPYC_GEN = {"1": "Naples", "2": "Rome", "3": "Milan", "4": "Genoa", "5": "Turin"}
_SNAPDRAGON_SM = {
    "SM8450": ("8", "8 Gen 1"),
    "SM8475": ("8", "8+ Gen 1"),
    "SM8550": ("8", "8 Gen 2"),
    "SM8650": ("8", "8 Gen 3"),
    "SM8750": ("8", "8 Elite"),
}


def parse_brand(brand: str) -> ChipDescriptor:
    """Vendor, family, generation, tier and model from a brand string; arch from the vendor.

    Unrecognised parts stay None: a chip the parser does not know only ever matches itself."""
    text = _clean(brand)
    m = re.fullmatch(r"Apple (M\d+)(?: (Pro|Max|Ultra))?", text)
    if m:
        return ChipDescriptor(
            vendor="Apple",
            family="Apple M",
            generation=m[1],
            tier=m[2] or "base",
            model=text,
            arch="arm64",
        )
    if text.startswith("Apple"):
        return ChipDescriptor(vendor="Apple", model=text, arch="arm64")
    if "Snapdragon" in text or text.startswith("Qualcomm"):
        return _snapdragon(text)
    if re.search(r"\bIntel\b", text):
        return _intel(text)
    if text.startswith("AMD"):
        return _amd(text)
    if re.search(r"\b(?:Neoverse|Graviton|Ampere|Cortex)\b", text):
        return ChipDescriptor(model=text, arch="arm64")
    return ChipDescriptor(model=text or None)


def _intel(text: str) -> ChipDescriptor:
    base = ChipDescriptor(vendor="Intel", model=text, arch="x86_64")
    m = re.search(r"Core Ultra (\d) (\d)(\d\d)([A-Z]*)", text)
    if m:
        series, suffix = m[2], m[4]
        gen: str | None
        if series == "1":
            gen = "Meteor Lake"
        elif suffix == "V":
            gen = "Lunar Lake"
        else:
            gen = "Arrow Lake"
        return replace(base, family="Intel Core Ultra", generation=gen, tier=m[1])
    m = re.search(r"Core (i[3579])-(\d{4,5})", text)
    if m:
        number, prefix = m[2], re.match(r"(\d+)th Gen ", text)
        if prefix:
            core_gen = _INTEL_CORE_GEN.get(prefix[1])
        else:
            core_gen = _INTEL_CORE_GEN.get(number[:2]) if len(number) == 5 else None
        return replace(base, family="Intel Core", generation=core_gen, tier=m[1])
    if "Xeon" in text:
        m = re.search(r"Xeon (Platinum|Gold|Silver|Bronze) (\d)(\d)\d\d", text)
        if m:
            return replace(
                base, family="Intel Xeon", generation=_XEON_SCALABLE_GEN.get(m[3]), tier=m[1]
            )
        m = re.search(r"Xeon w([3579])-(\d)\d{3}", text)
        if m:
            w_gen = {"2": "Sapphire Rapids", "3": "Sapphire Rapids"}.get(m[2])
            return replace(base, family="Intel Xeon W", generation=w_gen, tier=f"w{m[1]}")
        m = re.search(r"Xeon 6\d{2,3}([PE])\b", text)
        if m:
            gen = "Granite Rapids" if m[1] == "P" else "Sierra Forest"
            return replace(base, family="Intel Xeon", generation=gen, tier="6")
        return replace(base, family="Intel Xeon")
    return base


def _amd(text: str) -> ChipDescriptor:
    base = ChipDescriptor(vendor="AMD", model=text, arch="x86_64")
    m = re.search(r"EPYC (\d)[\dA-Z]{2}(\d)\b", text)
    if m:
        return replace(base, family="AMD EPYC", generation=_EPYC_GEN.get(m[2]), tier=m[1])
    if "EPYC" in text:
        return replace(base, family="AMD EPYC")
    m = re.search(r"Ryzen AI (?:Max\+? )?(\d)\b", text)
    if m:
        return replace(base, family="AMD Ryzen AI", generation="Zen 5", tier=m[1])
    m = re.search(r"Ryzen Threadripper (?:PRO )?(\d)(\d)\d\d", text)
    if m:
        tr = {"1": "Zen", "2": "Zen+", "3": "Zen 2", "5": "Zen 3", "7": "Zen 4", "9": "Zen 5"}
        return replace(base, family="AMD Ryzen Threadripper", generation=tr.get(m[1]))
    m = re.search(r"Ryzen ([3579]) (?:PRO )?(\d)(\d)(\d)(\d)([A-Z0-9]*)", text)
    if m:
        series, third, suffix = m[2], m[4], m[6]
        mobile = suffix[:1] in ("U", "H") and int(series) >= 7
        gen = _ZEN_BY_DIGIT.get(third) if mobile else _ZEN_BY_SERIES.get(series)
        return replace(base, family="AMD Ryzen", generation=gen, tier=m[1])
    return base


def _snapdragon(text: str) -> ChipDescriptor:
    base = ChipDescriptor(vendor="Qualcomm", model=text, arch="arm64")
    m = re.search(r"Snapdragon X(\d)? (Elite|Plus)(?: - (X\d)[EP])?", text)
    if m:
        gen = m[3] or (f"X{m[1]}" if m[1] else "X1")
        return replace(base, family="Snapdragon X", generation=gen, tier=m[2])
    m = re.search(r"Snapdragon (8cx|7c|8c)\+? Gen (\d)", text)
    if m:
        return replace(base, family=f"Snapdragon {m[1]}", generation=f"Gen {m[2]}", tier=m[1])
    m = re.search(r"\b(SM\d{4})\b", text)
    if m and m[1] in _SNAPDRAGON_SM:
        tier, gen = _SNAPDRAGON_SM[m[1]]
        return replace(base, family="Snapdragon 8", generation=gen, tier=tier)
    return base


def format_chip_id(
    cpu: str, cores: int, accelerators: tuple[str, ...] = (), *, translated: bool = False
) -> str:
    """``Apple M3 Max (16 cores) + GPU Apple + NPU Apple``; an x86_64 process under Rosetta on
    an Apple Silicon Mac reads ``Apple M3 Max (16 cores, x86_64 under Rosetta) + …``: it runs
    another ORT build on another instruction set, so its results are its own."""
    text = f"{cpu} ({cores} cores{ROSETTA if translated else ''})"
    if accelerators:
        text += " + " + " + ".join(accelerators)
    return text


def split_chip_id(chip_id: str) -> tuple[str, int | None, tuple[str, ...]]:
    """``Apple M3 Max (16 cores) + GPU Apple`` -> (brand, cores, accelerators)."""
    m = _CHIP_ID_RE.match(chip_id)
    if not m:
        return chip_id, None, ()
    acc = tuple(a.strip() for a in m["acc"].split(" + ") if a.strip())
    return m["cpu"], int(m["cores"]), acc


def is_apple_silicon(brand: str, system: str | None) -> bool:
    """An Apple M-series chip (the brand string of every Apple Silicon Mac starts ``Apple``)."""
    return system == "Darwin" and brand.startswith("Apple ")


def canonical_chip_id(chip_id: str, os_text: str | None) -> str:
    """A stored chip id as this autotune writes it (the store's migration of older rows): an
    Apple Silicon Mac's accelerators from the hardware, whatever ORT then reported, and the
    Rosetta mark where the row's os column says the process was x86_64."""
    m = _CHIP_ID_RE.match(chip_id)
    system = os_text.split()[0] if os_text and os_text.split() else None
    if not m or not is_apple_silicon(m["cpu"], system):
        return chip_id
    translated = bool(m["rosetta"]) or "(x86_64)" in (os_text or "")
    return format_chip_id(
        m["cpu"], int(m["cores"]), APPLE_SILICON_ACCELERATORS, translated=translated
    )


def from_chip_id(chip_id: str, os_text: str | None = None) -> ChipDescriptor:
    """What can be known of a chip from its stored id alone (and a stored ``os`` column): the
    migration of rows written before descriptors were stored. Core splits are unknown."""
    brand, cores, acc = split_chip_id(chip_id)
    desc = parse_brand(brand)
    system = os_text.split()[0] if os_text and os_text.split() else None
    arch = "x86_64" if ROSETTA in chip_id else desc.arch
    if os_text:
        m = re.search(r"\((x86_64|AMD64|amd64|arm64|aarch64|ARM64)\)", os_text)
        if m:
            arch = _norm_arch(m[1])
    homogeneous = desc.vendor in ("AMD",) or (desc.family or "").endswith("Xeon")
    return replace(
        desc,
        arch=arch,
        cores=cores,
        performance_cores=cores if homogeneous else None,
        efficiency_cores=0 if homogeneous else None,
        accelerators=acc,
        os=system if system and _TEXT_RE.fullmatch(system) else None,
    )


def _norm_arch(machine: str) -> str:
    m = machine.lower()
    if m in ("arm64", "aarch64"):
        return "arm64"
    if m in ("x86_64", "amd64"):
        return "x86_64"
    return m


# -- the OS: performance and efficiency cores ------------------------------------------------

Sysctl = Callable[[str], str | None]


# sysctls read as integers (int32 in the kernel); every other one is read as a string
INTEGER_SYSCTLS = frozenset(
    {
        "hw.perflevel0.physicalcpu",
        "hw.perflevel1.physicalcpu",
        "hw.physicalcpu",
        "hw.logicalcpu",
        "sysctl.proc_translated",
    }
)


# int sysctlbyname(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
SYSCTLBYNAME = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_char_p,
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_size_t),
    ctypes.c_void_p,
    ctypes.c_size_t,
)


def read_sysctl(name: str, *, libc: Any = None) -> str | None:
    """A macOS sysctl by name, through libc's ``sysctlbyname`` (no ``sysctl`` process: a
    sandboxed app cannot run one, and it is faster at app start); None where there is none.
    Integers (:data:`INTEGER_SYSCTLS`) come back as their decimal text. ``libc`` is for tests."""
    try:
        lib = libc if libc is not None else ctypes.CDLL(None, use_errno=True)
        address = ctypes.cast(lib.sysctlbyname, ctypes.c_void_p).value
    except (OSError, AttributeError):  # not macOS (glibc has no sysctlbyname)
        return None
    if not address:
        return None
    function = SYSCTLBYNAME(address)
    key = name.encode()
    size = ctypes.c_size_t(0)
    if function(key, None, ctypes.pointer(size), None, 0) != 0 or not 0 < size.value <= 4096:
        return None
    buffer = ctypes.create_string_buffer(size.value)
    if function(key, buffer, ctypes.pointer(size), None, 0) != 0:
        return None
    raw = buffer.raw[: size.value]
    if name in INTEGER_SYSCTLS:
        if len(raw) not in (4, 8):
            return None
        return str(int.from_bytes(raw, "little", signed=True))
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace").strip() or None


def parse_cpu_list(text: str) -> set[int]:
    """``0-3,8,10-11`` (the kernel's cpu list format) -> {0, 1, 2, 3, 8, 10, 11}."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise ValueError(f"not a cpu list: {text!r:.40}")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _physical(cpus: set[int], sys_root: Path) -> int:
    """How many physical cores ``cpus`` (logical CPUs) are (SMT siblings counted once)."""
    cores: set[str] = set()
    for cpu in cpus:
        topo = sys_root / "devices/system/cpu" / f"cpu{cpu}" / "topology"
        siblings = _read(topo / "core_cpus_list") or _read(topo / "thread_siblings_list")
        cores.add(siblings or str(cpu))
    return len(cores)


def core_split(
    system: str,
    usable: set[int],
    *,
    sys_root: Path = Path("/sys"),
    sysctl: Sysctl = read_sysctl,
) -> tuple[int | None, int | None]:
    """(performance cores, efficiency cores) this process may use, from the OS sources."""
    if system == "Darwin":
        p, e = sysctl("hw.perflevel0.physicalcpu"), sysctl("hw.perflevel1.physicalcpu")
        if p and p.isdigit():
            return int(p), int(e) if e and e.isdigit() else 0
        return None, None
    if system != "Linux":
        return None, None
    core = _read(sys_root / "devices/cpu_core/cpus")
    atom = _read(sys_root / "devices/cpu_atom/cpus")
    try:
        if core is not None and atom is not None:  # Intel hybrid
            p_cpus, e_cpus = parse_cpu_list(core) & usable, parse_cpu_list(atom) & usable
            return _physical(p_cpus, sys_root), _physical(e_cpus, sys_root)
    except ValueError:
        pass
    freqs: dict[int, int] = {}
    for cpu in usable:
        value = _read(sys_root / "devices/system/cpu" / f"cpu{cpu}" / "cpufreq/cpuinfo_max_freq")
        if value and value.isdigit():
            freqs[cpu] = int(value)
    if len(freqs) == len(usable) and len(set(freqs.values())) > 1:  # Arm big.LITTLE
        slowest = min(freqs.values())
        e_cpus = {c for c, f in freqs.items() if f == slowest}
        return _physical(usable - e_cpus, sys_root), _physical(e_cpus, sys_root)
    if (sys_root / "devices/system/cpu").is_dir():
        return _physical(usable, sys_root), 0
    return None, None


def _usable_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:
        return set(range(os.cpu_count() or 1))


def describe(
    brand: str,
    cores: int,
    accelerators: tuple[str, ...] = (),
    *,
    system: str | None = None,
    machine: str | None = None,
    sys_root: Path = Path("/sys"),
    sysctl: Sysctl = read_sysctl,
) -> ChipDescriptor:
    """This machine's descriptor from its brand string, core count, accelerators and OS."""
    system = system or platform.system()
    desc = parse_brand(brand)
    p, e = core_split(system, _usable_cpus(), sys_root=sys_root, sysctl=sysctl)
    return replace(
        desc,
        arch=_norm_arch(machine or platform.machine()) or desc.arch,
        cores=cores,
        performance_cores=p,
        efficiency_cores=e,
        accelerators=tuple(accelerators),
        os=system,
    )


def canonical_row(
    chip: str, os_name: str | None, descriptor_text: str | None
) -> tuple[str, str] | None:
    """The (chip id, descriptor JSON) a stored row gets from :func:`canonical_chip_id`, or None
    when the row is already canonical."""
    canonical = canonical_chip_id(chip, os_name)
    if canonical == chip:
        return None
    _, _, accelerators = split_chip_id(canonical)
    desc = replace(stored_descriptor(chip, os_name, descriptor_text), accelerators=accelerators)
    if ROSETTA in canonical:
        desc = replace(desc, arch="x86_64")
    return canonical, desc.to_json()


def stored_descriptor(chip: str, os_name: str | None, text: str | None) -> ChipDescriptor:
    """The descriptor stored with a row (``text``), or (older or damaged rows) parsed from its
    chip id and OS. An Apple Silicon row stored without accelerators (under an ORT before 1.32)
    gets the hardware's, as the chip id now says: a row in a read-only layer that migration m010
    never touched (a team database, one in an app bundle) keeps its old chip id, but is still
    borrowed by its own chip."""
    try:
        desc = ChipDescriptor.from_json(text) if isinstance(text, str) else None
    except ValueError:
        desc = None
    desc = desc or from_chip_id(chip, os_name)
    if desc.vendor == "Apple" and desc.os == "Darwin" and not desc.accelerators:
        desc = replace(desc, accelerators=APPLE_SILICON_ACCELERATORS)  # ORT < 1.32 saw none
    return desc
