"""SessionConfig: everything that decides how ONNX Runtime runs one model, as plain data.

A configuration is stored as canonical JSON (sorted keys, no whitespace, settings that equal
ORT's defaults or that cannot matter dropped), so two ways of writing the same setting get the
same ``config_id``. Reading one back (``from_json``) validates its structure strictly: it may
come from a team database written on another machine. Provider options are checked against
their provider's schema in :mod:`autotune.providers`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from autotune.errors import ConfigError
from autotune.signature import parse_signature

CPU = "CPUExecutionProvider"

GRAPH_LEVELS = (
    "ORT_DISABLE_ALL",
    "ORT_ENABLE_BASIC",
    "ORT_ENABLE_EXTENDED",
    "ORT_ENABLE_LAYOUT",
    "ORT_ENABLE_ALL",
)
EXECUTION_MODES = ("ORT_SEQUENTIAL", "ORT_PARALLEL")
DEVICE_POLICIES = (
    "PREFER_CPU",
    "PREFER_NPU",
    "PREFER_GPU",
    "MAX_PERFORMANCE",
    "MAX_EFFICIENCY",
    "MIN_OVERALL_POWER",
)

_BOOL01 = ("0", "1")
# Session config entries a configuration may carry, with their allowed values (a tuple) or a
# regular expression (a str). Anything else is refused: ORT accepts any key silently, and keys
# that write files (debug dumps, EP context, memory stats) or read them are never applied.
SESSION_ENTRIES: dict[str, tuple[str, ...] | str] = {
    "session.intra_op.allow_spinning": _BOOL01,
    "session.inter_op.allow_spinning": _BOOL01,
    "session.force_spinning_stop": _BOOL01,
    "session.set_denormal_as_zero": _BOOL01,
    "session.disable_prepacking": _BOOL01,
    "session.dynamic_block_base": r"[1-9][0-9]{0,2}",
    "session.graph_optimizations_loop_level": ("0", "1", "2"),
    "optimization.enable_gelu_approximation": _BOOL01,
    "optimization.disable_specified_optimizers": (
        r"[A-Za-z][A-Za-z0-9_]{0,63}(,[A-Za-z][A-Za-z0-9_]{0,63}){0,15}"
    ),
}
# Values equal to ORT's defaults are dropped from the canonical form.
SESSION_ENTRY_DEFAULTS = {
    "session.intra_op.allow_spinning": "1",
    "session.inter_op.allow_spinning": "1",
    "session.force_spinning_stop": "0",
    "session.set_denormal_as_zero": "0",
    "session.disable_prepacking": "0",
    "session.graph_optimizations_loop_level": "1",
    "optimization.enable_gelu_approximation": "0",
}

MAX_THREADS = 1024
MAX_FREE_DIM = 1 << 20
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,127}")  # provider and option names
_DIM_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")  # symbolic dimension names


@dataclass(frozen=True)
class SessionConfig:
    """One ORT session configuration: execution providers with options, and session options.

    ``providers`` lists the execution providers in priority order, each with its options as
    strings exactly as ORT reads them; the CPU EP is always last (appended if missing).
    ``device_policy`` instead asks ORT's own automatic EP selection (ORT >= 1.23).
    """

    providers: tuple[tuple[str, Mapping[str, str]], ...] = ((CPU, {}),)
    graph_optimization_level: str = "ORT_ENABLE_ALL"
    execution_mode: str = "ORT_SEQUENTIAL"
    intra_op_num_threads: int = 0
    inter_op_num_threads: int = 0
    enable_mem_pattern: bool = True
    enable_cpu_mem_arena: bool = True
    session_entries: Mapping[str, str] = field(default_factory=dict)
    free_dimension_overrides: Mapping[str, int] = field(default_factory=dict)
    device_policy: str | None = None
    # a plugin EP (ORT >= 1.23): {"package", "version", "device"}; the first provider is its EP,
    # built with add_provider_for_devices on that device. Part of the identity: a result measured
    # with another version of the package is another configuration.
    plugin: Mapping[str, str] | None = None

    # -- identity -------------------------------------------------------------------------
    def canonical(self) -> SessionConfig:
        """The same setting with defaults and settings that cannot matter removed."""
        providers = [(name, dict(sorted(opts.items()))) for name, opts in self.providers]
        if not providers or providers[-1][0] != CPU:
            providers = [p for p in providers if p[0] != CPU] + [(CPU, {})]
        entries = {
            k: v
            for k, v in sorted(self.session_entries.items())
            if SESSION_ENTRY_DEFAULTS.get(k) != v
        }
        inter = self.inter_op_num_threads
        if self.execution_mode == "ORT_SEQUENTIAL":
            # inter-op threads and their spinning only exist in parallel mode
            inter = 0
            entries.pop("session.inter_op.allow_spinning", None)
        if self.intra_op_num_threads == 1:
            # one intra-op thread means no intra-op pool, so nothing spins
            entries.pop("session.intra_op.allow_spinning", None)
        return replace(
            self,
            providers=tuple((n, o) for n, o in providers),
            inter_op_num_threads=inter,
            session_entries=entries,
            free_dimension_overrides=dict(sorted(self.free_dimension_overrides.items())),
            plugin=dict(sorted(self.plugin.items())) if self.plugin else None,
        )

    def to_dict(self) -> dict[str, Any]:
        c = self.canonical()
        out: dict[str, Any] = {
            "providers": [[name, dict(opts)] for name, opts in c.providers],
            "graph_optimization_level": c.graph_optimization_level,
            "execution_mode": c.execution_mode,
            "intra_op_num_threads": c.intra_op_num_threads,
            "inter_op_num_threads": c.inter_op_num_threads,
            "enable_mem_pattern": c.enable_mem_pattern,
            "enable_cpu_mem_arena": c.enable_cpu_mem_arena,
            "session_entries": dict(c.session_entries),
            "free_dimension_overrides": dict(c.free_dimension_overrides),
            "device_policy": c.device_policy,
        }
        if c.plugin:  # only when set: configurations without a plugin keep their ids
            out["plugin"] = dict(c.plugin)
        return out

    def to_json(self) -> str:
        """Canonical JSON: the stored form and the input of ``config_id``."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def config_id(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @property
    def primary_provider(self) -> str:
        if self.device_policy:
            return f"policy:{self.device_policy}"
        return self.canonical().providers[0][0]

    def is_default(self) -> bool:
        return self.config_id == DEFAULT_CONFIG.config_id

    def describe(self) -> str:
        """A short human label, e.g. ``CPU ALL t0 seq`` or ``CoreML MLProgram/ALL LAYOUT t1``."""
        c = self.canonical()
        parts = []
        if c.device_policy:
            parts.append(f"policy={c.device_policy}")
        else:
            name, opts = c.providers[0]
            label = name.replace("ExecutionProvider", "")
            if c.plugin:
                label += f"@{c.plugin['package'].removeprefix('onnxruntime-ep-')}"
                label += f" {c.plugin['version']} {c.plugin['device'].split('/')[0]}"
            if opts:
                label += "[" + ",".join(_option_text(k, v) for k, v in opts.items()) + "]"
            parts.append(label)
        parts.append(c.graph_optimization_level.replace("ORT_", "").replace("ENABLE_", ""))
        parts.append(f"t{c.intra_op_num_threads}")
        if c.execution_mode == "ORT_PARALLEL":
            parts.append(f"par/i{c.inter_op_num_threads}")
        if not c.enable_mem_pattern:
            parts.append("no-mempattern")
        if not c.enable_cpu_mem_arena:
            parts.append("no-arena")
        short = {
            "session.intra_op.allow_spinning": "spin",
            "session.inter_op.allow_spinning": "inter-spin",
        }
        for k, v in c.session_entries.items():
            parts.append(f"{short.get(k, k)}={v}")
        for k, d in c.free_dimension_overrides.items():
            parts.append(f"{k}:{d}")
        return " ".join(parts)

    # -- parsing --------------------------------------------------------------------------
    @classmethod
    def from_json(cls, text: str) -> SessionConfig:
        """Parse and structurally validate; raises ConfigError naming what is wrong."""
        if not isinstance(text, str) or len(text) > 65536:
            raise ConfigError("configuration is not a JSON string of reasonable size")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ConfigError(f"configuration is not valid JSON ({exc})") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> SessionConfig:
        if not isinstance(data, dict):
            raise ConfigError("configuration must be a JSON object")
        known = set(_FIELDS)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown configuration field(s): {', '.join(map(str, unknown))}")
        kwargs: dict[str, Any] = {}
        if "providers" in data:
            kwargs["providers"] = _parse_providers(data["providers"])
        level = data.get("graph_optimization_level", "ORT_ENABLE_ALL")
        kwargs["graph_optimization_level"] = _choice(
            "graph_optimization_level", level, GRAPH_LEVELS
        )
        mode = data.get("execution_mode", "ORT_SEQUENTIAL")
        kwargs["execution_mode"] = _choice("execution_mode", mode, EXECUTION_MODES)
        for name in ("intra_op_num_threads", "inter_op_num_threads"):
            kwargs[name] = _int(name, data.get(name, 0), 0, MAX_THREADS)
        for name in ("enable_mem_pattern", "enable_cpu_mem_arena"):
            value = data.get(name, True)
            if not isinstance(value, bool):
                raise ConfigError(f"{name} must be true or false, not {value!r:.40}")
            kwargs[name] = value
        kwargs["session_entries"] = _parse_entries(data.get("session_entries", {}))
        kwargs["free_dimension_overrides"] = _parse_free_dims(
            data.get("free_dimension_overrides", {})
        )
        policy = data.get("device_policy")
        if policy is not None:
            kwargs["device_policy"] = _choice("device_policy", policy, DEVICE_POLICIES)
        if data.get("plugin") is not None:
            kwargs["plugin"] = _parse_plugin(data["plugin"])
        return cls(**kwargs).canonical()


_FIELDS = (
    "providers",
    "graph_optimization_level",
    "execution_mode",
    "intra_op_num_threads",
    "inter_op_num_threads",
    "enable_mem_pattern",
    "enable_cpu_mem_arena",
    "session_entries",
    "free_dimension_overrides",
    "device_policy",
    "plugin",
)

_PLUGIN_FIELDS = {
    # a distribution name, never a path: the library is found through the installed package
    "package": re.compile(r"onnxruntime-ep-[a-z0-9][a-z0-9.-]{0,80}"),
    "version": re.compile(r"[0-9A-Za-z][0-9A-Za-z.+!_-]{0,63}"),
    "device": re.compile(r"(CPU|GPU|NPU)/[0-9]{1,10}/[0-9]{1,10}"),  # type/vendor id/device id
}


def _parse_plugin(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or set(value) != set(_PLUGIN_FIELDS):
        raise ConfigError("plugin must be an object with package, version and device")
    for key, rule in _PLUGIN_FIELDS.items():
        v = value[key]
        if not isinstance(v, str) or not rule.fullmatch(v):
            raise ConfigError(f"plugin {key} {v!r:.60} is not valid")
    return dict(value)


def load_config_devices(value: str) -> dict[str, dict[str, str]] | None:
    """Each device's properties in an OpenVINO ``load_config`` (``{"CPU": {"NUM_STREAMS": "1"},
    "GPU": {…}}``), or None when ``value`` is not JSON of that shape. The one reader of that
    format (labels, the thread rule, the accuracy tier)."""
    try:
        data = json.loads(value)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not all(isinstance(p, dict) for p in data.values()):
        return None
    return {str(d): {str(k): str(v) for k, v in p.items()} for d, p in data.items()}


def load_config_properties(value: str) -> dict[str, str] | None:
    """The properties of an OpenVINO ``load_config`` of one device (``{"CPU": {"NUM_STREAMS":
    "1", …}}``), or None when ``value`` is not of that shape."""
    devices = load_config_devices(value)
    if devices is None or len(devices) != 1:
        return None
    return next(iter(devices.values()))


def _option_text(key: str, value: str) -> str:
    """``key=value`` for a label; OpenVINO's load_config shows its properties, not its JSON."""
    props = load_config_properties(value) if key == "load_config" else None
    if props is not None:
        return ",".join(f"{k}={v}" for k, v in props.items())
    return f"{key}={value}"


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, not {value!r:.40}")
    return value


def _int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be a whole number from {low} to {high}, not {value!r:.40}")
    return value


def _parse_providers(value: Any) -> tuple[tuple[str, dict[str, str]], ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= 4:
        raise ConfigError("providers must be a list of 1 to 4 [name, options] pairs")
    out = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 2):
            raise ConfigError("each provider must be a [name, options] pair")
        name, opts = item
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise ConfigError(f"provider name {name!r:.60} is not a valid name")
        if not isinstance(opts, dict) or len(opts) > 64:
            raise ConfigError(f"options of {name} must be an object of at most 64 entries")
        for k, v in opts.items():
            if not isinstance(k, str) or not _NAME_RE.fullmatch(k):
                raise ConfigError(f"option name {k!r:.60} of {name} is not a valid name")
            if not isinstance(v, str) or len(v) > 1024:
                raise ConfigError(f"option {name}.{k} must be a string of at most 1024 characters")
        out.append((name, dict(opts)))
    return tuple(out)


def _parse_entries(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError("session_entries must be an object")
    for key, v in value.items():
        rule = SESSION_ENTRIES.get(key)
        if rule is None:
            raise ConfigError(
                f"session entry {key!r:.80} is not one autotune applies "
                f"(allowed: {', '.join(sorted(SESSION_ENTRIES))})"
            )
        ok = isinstance(v, str) and (
            v in rule if isinstance(rule, tuple) else re.fullmatch(rule, v) is not None
        )
        if not ok:
            raise ConfigError(f"session entry {key} has an invalid value {v!r:.40}")
    return dict(value)


def _parse_free_dims(value: Any) -> dict[str, int]:
    if not isinstance(value, dict) or len(value) > 64:
        raise ConfigError("free_dimension_overrides must be an object of at most 64 entries")
    out = {}
    for key, v in value.items():
        if not isinstance(key, str) or not _DIM_RE.fullmatch(key):
            raise ConfigError(f"free dimension name {key!r:.60} is not a valid name")
        out[key] = _int(f"free dimension {key}", v, 1, MAX_FREE_DIM)
    return out


# -- fitting a stored configuration to this machine --------------------------------------------


def fit(
    config: SessionConfig,
    *,
    cores: int | None,
    model_inputs: Mapping[str, tuple[int | str | None, ...]] | None,
    shapes: str,
) -> SessionConfig:
    """The one check every path makes before a stored configuration (a database row, a manifest
    entry, an export) reaches ORT, after ``validate_config``; the Swift resolver applies the
    same rules. Thread counts: at most 2x ``cores`` per pool; a larger count (a bigger chip's
    "all cores", or 1024 + 1024 in parallel mode, which took 53.7 s to build) becomes ``cores``
    (None: left as stored). Free-dimension overrides: only for a dimension named in
    ``model_inputs`` (each input's dimensions; None: unknown, so none is accepted), and only
    equal to that dimension in ``shapes``, the signature asked for (``x=1x16;mask=1x16``).

    Returns the configuration to use; raises ConfigError naming an override that does not fit.
    """
    overrides = config.free_dimension_overrides
    if overrides:
        if model_inputs is None:
            raise ConfigError("free dimension overrides cannot be checked without the model")
        asked = parse_signature(shapes)
        for name, size in overrides.items():
            places = [
                (inp, i)
                for inp, dims in model_inputs.items()
                for i, d in enumerate(dims)
                if d == name
            ]
            if not places:
                raise ConfigError(
                    f"free dimension override {name!r:.60} names no dimension of this model"
                )
            for inp, i in places:
                dims = asked.get(inp)
                if dims is None or len(dims) <= i or dims[i] != size:
                    raise ConfigError(
                        f"free dimension override {name}={size} does not match the shapes "
                        f"asked for ({shapes:.120})"
                    )
    if cores is None:
        return config
    cores = max(1, cores)
    intra, inter = config.intra_op_num_threads, config.inter_op_num_threads
    if intra <= 2 * cores and inter <= 2 * cores:
        return config
    return replace(
        config,
        intra_op_num_threads=cores if intra > 2 * cores else intra,
        inter_op_num_threads=cores if inter > 2 * cores else inter,
    ).canonical()


DEFAULT_CONFIG = SessionConfig().canonical()
