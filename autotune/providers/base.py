"""What every execution-provider module declares: its options, its search space, its rules.

A provider module is data plus one small define-by-run function. Option keys and value
formats are exactly ORT's (each provider module names the ORT documentation page or source file
it follows, and docs/providers.md lists them); booleans are written the way each EP parses them
(CoreML ``"1"``/``"0"``, OpenVINO ``"true"``/``"false"``).
"""

from __future__ import annotations

import platform
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from autotune.errors import ConfigError

Risk = Literal["safe", "writes_files", "reads_files", "loads_library", "pointer", "debug"]


class TrialLike(Protocol):
    """The part of ``optuna.Trial`` a search space uses (so providers never import optuna)."""

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int: ...


@dataclass(frozen=True)
class Option:
    """One provider option: its exact key, allowed values (or a pattern) and its risk.

    Options whose risk is not ``safe`` are never part of a search space and are refused when
    read from a database; autotune sets cache paths itself, under its own cache directory.
    """

    key: str
    values: tuple[str, ...] = ()
    pattern: str | None = None
    default: str | None = None
    risk: Risk = "safe"
    # a structured value (e.g. a JSON object): returns why it is refused, or None
    validator: Callable[[str], str | None] | None = None

    def check(self, provider: str, value: str) -> None:
        if self.risk != "safe":
            raise ConfigError(
                f"option {provider}.{self.key} {_RISK_TEXT[self.risk]} and is never applied from a "
                "stored configuration"
            )
        if self.values and value not in self.values:
            raise ConfigError(
                f"option {provider}.{self.key} must be one of {', '.join(self.values)}, "
                f"not {value!r:.40}"
            )
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise ConfigError(f"option {provider}.{self.key} has an invalid value {value!r:.40}")
        if self.validator is not None:
            why = self.validator(value)
            if why:
                raise ConfigError(f"option {provider}.{self.key}: {why}")


_RISK_TEXT = {
    "writes_files": "writes files",
    "reads_files": "reads files",
    "loads_library": "loads a library",
    "pointer": "takes a raw pointer",
    "debug": "is for debugging only",
}


@dataclass(frozen=True)
class SearchContext:
    """What a search space may depend on: the model and the machine."""

    cores: int = 1
    performance_cores: int | None = None  # P cores on a hybrid chip (autotune.descriptor)
    has_subgraphs: bool = False
    has_dynamic_inputs: bool = False
    free_dims: Mapping[str, int] = field(default_factory=dict)
    system: str = "Linux"
    op_types: frozenset[str] = frozenset()  # op types in the model (e.g. to offer GELU options)
    # this Mac's macOS version (``14.3.1``), None elsewhere: CoreML options that need a newer one
    macos_version: str | None = field(default_factory=lambda: platform.mac_ver()[0] or None)


# A named rule over (provider options, session settings): returns why the pair is invalid, or None.
Constraint = Callable[[Mapping[str, str], Mapping[str, Any]], "str | None"]


@dataclass(frozen=True)
class ProviderSpace:
    """An execution provider as autotune searches it."""

    name: str
    short: str
    options: Mapping[str, Option]
    suggest: Callable[[TrialLike, SearchContext], dict[str, str]]
    constraints: Mapping[str, Constraint] = field(default_factory=dict)
    # directory options autotune points at its own per-model cache (key -> subdirectory name)
    cache_options: Mapping[str, str] = field(default_factory=dict)
    # session settings this EP requires, e.g. DirectML: {"enable_mem_pattern": False}
    session_requirements: Mapping[str, Any] = field(default_factory=dict)
    # 0 = builds in milliseconds ... 3 = compiles for seconds (searched late, cached)
    compile_cost: int = 0
    pip_package: str = "onnxruntime"
    # adds autotune-owned cache paths where an EP takes them inside another option's value
    runtime_hook: Callable[[dict[str, str], Path | None], dict[str, str]] | None = None
    # the oldest onnxruntime (major, minor) that applies these options (older ones ignore them)
    min_ort: tuple[int, int] = (0, 0)
    # parameters of this EP's first trial that its options' documented defaults do not give
    # (OpenVINO sets threads and streams explicitly: its latency setup on this CPU)
    first_point: Callable[[SearchContext], dict[str, Any]] | None = None

    def default_point(self, ctx: SearchContext) -> dict[str, Any]:
        """The study's parameters for this EP as it comes: each option at its documented
        default (``Option.default``), then ``first_point``. A search tries it first, with the
        session's other settings at ORT's defaults, so a provider's own gain is measured before
        the sampler varies its options; parameters without a default are left to the sampler."""
        trial = _DefaultsTrial(self.options)
        self.suggest(trial, ctx)
        return {**trial.params, **(self.first_point(ctx) if self.first_point else {})}

    def applies_options_in(self, ort_version: str) -> bool:
        """Whether onnxruntime ``ort_version`` (``1.21.0``, ``1.22.0.dev…``) reads the options."""
        parts = re.findall(r"\d+", ort_version)[:2]
        return len(parts) < 2 or (int(parts[0]), int(parts[1])) >= self.min_ort

    @property
    def ort_name(self) -> str:
        """The execution provider's name in ORT (a plugin candidate's ``name`` is its own key)."""
        return self.name

    def validate(self, options: Mapping[str, str]) -> None:
        """Raise ConfigError for an unknown key, a bad value, or an unsafe option."""
        for key, value in options.items():
            option = self.options.get(key)
            if option is None:
                raise ConfigError(
                    f"unknown option {self.name}.{key} (known: {', '.join(sorted(self.options))})"
                )
            option.check(self.name, value)

    def violations(self, options: Mapping[str, str], session: Mapping[str, Any]) -> list[str]:
        """Names and reasons of the constraints this combination breaks."""
        out = []
        for name, rule in self.constraints.items():
            why = rule(options, session)
            if why:
                out.append(f"{name}: {why}")
        return out

    def runtime_options(self, options: Mapping[str, str], cache_dir: Path | None) -> dict[str, str]:
        """The options handed to ORT: the stored ones plus cache paths autotune owns."""
        out = dict(options)
        if cache_dir is not None:
            for key, sub in self.cache_options.items():
                path = cache_dir / sub
                path.mkdir(parents=True, exist_ok=True)
                out[key] = str(path)
        if self.runtime_hook is not None:
            out = self.runtime_hook(out, cache_dir)
        return out


class _DefaultsTrial:
    """A trial that answers each ``<short>.<key>`` parameter with option ``key``'s documented
    default, and records the answers; other parameters get their first choice, unrecorded."""

    def __init__(self, options: Mapping[str, Option]) -> None:
        self.options = options
        self.params: dict[str, Any] = {}

    def _default(self, name: str) -> str | None:
        parts = name.split(".")
        option = self.options.get(parts[1]) if len(parts) > 1 else None
        return option.default if option is not None else None

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        default = self._default(name)
        for choice in choices:
            if default is not None and str(choice).lower() == default.lower():
                self.params[name] = choice
                return choice
        return choices[0]

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        default = self._default(name)
        if default is not None and default.lstrip("-").isdigit() and low <= int(default) <= high:
            self.params[name] = int(default)
            return int(default)
        return low


@dataclass(frozen=True)
class PluginSpace(ProviderSpace):
    """One searchable candidate of a plugin EP: the package, its version and one device it
    reports here. ``name`` is the candidate's key (``plugin:PACKAGE:EP:DEVICE``), the value of
    the study's ``provider`` parameter; configurations name ``ep_name`` and carry ``plugin``."""

    ep_name: str = ""
    plugin: Mapping[str, str] = field(default_factory=dict)  # package, version, device
    label: str = ""

    @property
    def ort_name(self) -> str:
        return self.ep_name
