"""A stored configuration as code to paste into an app: Python, Swift, or JSON.

``snippet(config, "python")`` gives the ``onnxruntime`` calls that build exactly the session
options :func:`autotune.build.session_options` builds (a test executes it and compares). Only
settings that differ from ORT's defaults are written.

``snippet(config, "swift")`` uses ONNX Runtime's Objective-C API as Swift sees it
(``ORTSessionOptions``). That API can set the graph optimization level (none, basic, extended,
layout, all; ``.layout`` since ORT 1.23, ``objectivec/include/ort_enums.h``), intra-op threads,
session config entries and execution providers by name, and nothing else. Settings it cannot
express are never approximated silently: they are listed in a ``// Not applied`` comment, and
:func:`unsupported` returns them so a caller can warn.

``snippet(config, "json")`` is ``config.to_dict()``, readable back with
``SessionConfig.from_dict``.

Cache directories (CoreML's ``ModelCacheDirectory`` and the like) are never written: autotune
adds its own at run time; an app chooses its own.

Never imports optuna.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from autotune.config import CPU, SESSION_ENTRIES, SessionConfig
from autotune.errors import ConfigError

FORMATS = ("python", "swift", "json")

# ORT's defaults for the typed session options (SessionOptions() in every language binding)
_DEFAULT_LEVEL = "ORT_ENABLE_ALL"
_DEFAULT_MODE = "ORT_SEQUENTIAL"

# ORTGraphOptimizationLevel (objectivec/include/ort_enums.h) as Swift imports it
_SWIFT_LEVELS = {
    "ORT_DISABLE_ALL": ".none",
    "ORT_ENABLE_BASIC": ".basic",
    "ORT_ENABLE_EXTENDED": ".extended",
    "ORT_ENABLE_LAYOUT": ".layout",  # ORT >= 1.23
    "ORT_ENABLE_ALL": ".all",
}
# provider names ``appendExecutionProvider(_:providerOptions:)`` accepts, for the EPs that
# ONNX Runtime's Apple packages contain (the CPU EP is always there and never appended)
_SWIFT_PROVIDERS = {
    "CoreMLExecutionProvider": "CoreML",
    "XnnpackExecutionProvider": "XNNPACK",
}


def snippet(config: SessionConfig, fmt: str, model_path: str = "model.onnx") -> str:
    """``config`` as ready-to-paste code in ``fmt`` (python, swift or json).

    Raises ConfigError for an unknown format."""
    if fmt == "python":
        return _python(config, model_path)
    if fmt == "swift":
        return _swift(config, model_path)
    if fmt == "json":
        return json.dumps(_without_cache_options(config).to_dict(), indent=2) + "\n"
    raise ConfigError(f"unknown snippet format {fmt!r}; use one of {', '.join(FORMATS)}")


def unsupported(config: SessionConfig, fmt: str) -> list[str]:
    """The settings of ``config`` that a ``fmt`` snippet cannot apply (only Swift has any)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown snippet format {fmt!r}; use one of {', '.join(FORMATS)}")
    return _swift_gaps(config.canonical()) if fmt == "swift" else []


# -- helpers ---------------------------------------------------------------------------------


def _cache_keys(provider: str) -> set[str]:
    from autotune.providers import SPACES

    space = SPACES.get(provider)
    return set(space.cache_options) if space else set()


def _without_cache_options(config: SessionConfig) -> SessionConfig:
    from dataclasses import replace

    c = config.canonical()
    providers = tuple(
        (name, {k: v for k, v in opts.items() if k not in _cache_keys(name)})
        for name, opts in c.providers
    )
    return replace(c, providers=providers)


def _py_str(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid Python string literal


def _swift_str(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{{{ord(ch):X}}}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _dict_literal(options: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{_py_str(k)}: {_py_str(v)}" for k, v in options.items()) + "}"


def _cache_note(providers: tuple[tuple[str, Mapping[str, str]], ...], comment: str) -> list[str]:
    """Where autotune adds a cache directory at run time, say so (the path is the app's)."""
    lines = []
    for name, _ in providers:
        for key in sorted(_cache_keys(name)):
            short = name.replace("ExecutionProvider", "")
            lines.append(f'{comment} optional: "{key}": <a directory your app owns> lets {short}')
            lines.append(f"{comment} reuse compiled models (clear it when the model file changes)")
    return lines


# -- Python ----------------------------------------------------------------------------------


def _python(config: SessionConfig, model_path: str) -> str:
    c = _without_cache_options(config)
    lines = ["import onnxruntime as ort", "", "so = ort.SessionOptions()"]
    if c.plugin:
        from autotune.plugins import install_advice

        module = c.plugin["package"].replace("-", "_")

        lines[1:1] = [f"import {module} as plugin  # {install_advice(c.plugin)}"]
    if c.graph_optimization_level != _DEFAULT_LEVEL:
        note = (
            "  # onnxruntime >= 1.23" if c.graph_optimization_level == "ORT_ENABLE_LAYOUT" else ""
        )
        lines.append(
            f"so.graph_optimization_level = ort.GraphOptimizationLevel.{c.graph_optimization_level}"
            + note
        )
    if c.execution_mode != _DEFAULT_MODE:
        lines.append(f"so.execution_mode = ort.ExecutionMode.{c.execution_mode}")
    if c.intra_op_num_threads:
        lines.append(f"so.intra_op_num_threads = {c.intra_op_num_threads}")
    if c.inter_op_num_threads:
        lines.append(f"so.inter_op_num_threads = {c.inter_op_num_threads}")
    if not c.enable_mem_pattern:
        lines.append("so.enable_mem_pattern = False")
    if not c.enable_cpu_mem_arena:
        lines.append("so.enable_cpu_mem_arena = False")
    for key, value in c.session_entries.items():
        lines.append(f"so.add_session_config_entry({_py_str(key)}, {_py_str(value)})")
    for name, size in c.free_dimension_overrides.items():
        lines.append(f"so.add_free_dimension_override_by_name({_py_str(name)}, {size})")
    if c.device_policy:
        lines.append(
            "so.set_provider_selection_policy("
            f"ort.OrtExecutionProviderDevicePolicy.{c.device_policy})  # onnxruntime >= 1.23"
        )
        lines.append(f"session = ort.InferenceSession({_py_str(model_path)}, sess_options=so)")
        return "\n".join(lines) + "\n"
    if c.plugin:
        return "\n".join(lines + _python_plugin(c, model_path)) + "\n"
    lines += _cache_note(c.providers, "#")
    lines.append("session = ort.InferenceSession(")
    lines.append(f"    {_py_str(model_path)},")
    lines.append("    sess_options=so,")
    if len(c.providers) == 1 and c.providers[0] == (CPU, {}):
        lines.append(f"    providers=[{_py_str(CPU)}],")
    else:
        lines.append("    providers=[")
        for name, opts in c.providers:
            if not opts:
                lines.append(f"        {_py_str(name)},")
                continue
            one_line = f"        ({_py_str(name)}, {_dict_literal(opts)}),"
            if len(one_line) <= 100:
                lines.append(one_line)
            else:
                lines.append(f"        ({_py_str(name)}, {{")
                lines += [f"            {_py_str(k)}: {_py_str(v)}," for k, v in opts.items()]
                lines.append("        }),")
        lines.append("    ],")
    lines.append(")")
    return "\n".join(lines) + "\n"


def _python_plugin(c: SessionConfig, model_path: str) -> list[str]:
    """A plugin EP: register the package's library, pick the device, add it with its options."""
    plugin = c.plugin or {}
    package = plugin["package"]
    kind, vendor_id, device_id = plugin["device"].split("/")
    name, opts = c.providers[0]
    from autotune.plugins import library_getter

    # registered under the EP's name, as autotune and the package's own helper register it
    getter = library_getter(package)
    return [
        f"ort.register_execution_provider_library({_py_str(name)}, plugin.{getter}())",
        "devices = [",
        "    d",
        "    for d in ort.get_ep_devices()",
        f"    if d.ep_name == {_py_str(name)}",
        f"    and d.device.type == ort.OrtHardwareDeviceType.{kind}",
        f"    and d.device.vendor_id == {vendor_id} and d.device.device_id == {device_id}",
        "]",
        f"so.add_provider_for_devices(devices[:1], {_dict_literal(opts)})",
        f"session = ort.InferenceSession({_py_str(model_path)}, sess_options=so)",
    ]


# -- Swift -----------------------------------------------------------------------------------


def _swift_gaps(c: SessionConfig) -> list[str]:
    gaps = []
    if c.device_policy:
        gaps.append(f"device_policy = {c.device_policy} (automatic EP selection)")
    if c.graph_optimization_level not in _SWIFT_LEVELS:
        gaps.append(
            f"graph_optimization_level = {c.graph_optimization_level} "
            "(ORT keeps its default, ORT_ENABLE_ALL)"
        )
    if c.execution_mode != _DEFAULT_MODE:
        inter = f", inter_op_num_threads = {c.inter_op_num_threads}"
        gaps.append(f"execution_mode = {c.execution_mode}{inter if c.inter_op_num_threads else ''}")
    if not c.enable_mem_pattern:
        gaps.append("enable_mem_pattern = false")
    if not c.enable_cpu_mem_arena:
        gaps.append("enable_cpu_mem_arena = false")
    for name, size in c.free_dimension_overrides.items():
        gaps.append(f"free dimension override {name} = {size}")
    if not c.device_policy:
        for name, opts in c.providers:
            if name != CPU and name not in _SWIFT_PROVIDERS:
                shown = f" {json.dumps(dict(opts), sort_keys=True)}" if opts else ""
                gaps.append(f"provider {name}{shown} (not in ONNX Runtime's Apple packages)")
    return gaps


def _swift(config: SessionConfig, model_path: str) -> str:
    c = _without_cache_options(config)
    lines = [
        "import OnnxRuntimeBindings  // Swift Package Manager (CocoaPods: import onnxruntime_objc)",
        "",
        "let env = try ORTEnv(loggingLevel: .warning)",
        "let options = try ORTSessionOptions()",
    ]
    level = _SWIFT_LEVELS.get(c.graph_optimization_level)
    if level is not None and c.graph_optimization_level != _DEFAULT_LEVEL:
        note = "  // onnxruntime >= 1.23" if level == ".layout" else ""
        lines.append(f"try options.setGraphOptimizationLevel({level}){note}")
    if c.intra_op_num_threads:
        lines.append(f"try options.setIntraOpNumThreads({c.intra_op_num_threads})")
    for key, value in c.session_entries.items():
        lines.append(
            f"try options.addConfigEntry(withKey: {_swift_str(key)}, value: {_swift_str(value)})"
        )
    if not c.device_policy:
        lines += _cache_note(c.providers, "//")
        for name, opts in c.providers:
            short = _SWIFT_PROVIDERS.get(name)
            if short is None:
                continue  # the CPU EP is implicit; others are listed as not applied below
            if not opts:
                append = f"try options.appendExecutionProvider({_swift_str(short)}"
                lines.append(append + ", providerOptions: [:])")
                continue
            lines.append(
                f"try options.appendExecutionProvider({_swift_str(short)}, providerOptions: ["
            )
            lines += [f"    {_swift_str(k)}: {_swift_str(v)}," for k, v in opts.items()]
            lines.append("])")
    gaps = _swift_gaps(c)
    if gaps:
        lines.append("// Not applied: ORT's Objective-C API cannot set these measured settings,")
        lines.append("// so this session is not exactly the configuration autotune measured:")
        lines += [f"//   {gap}" for gap in gaps]
    lines.append(
        f"let session = try ORTSession(env: env, modelPath: {_swift_str(model_path)}, "
        "sessionOptions: options)"
    )
    return "\n".join(lines) + "\n"


# -- Swift: a complete resolver over a manifest ----------------------------------------------


def manifest_swift(manifest_name: str = "model.autotune.json") -> str:
    """A Swift source file that resolves a manifest (``autotune manifest``) on the device it
    runs on: the brand string and performance-core count from sysctl, the fallback ladder of
    :mod:`autotune.ladder`, thread roles re-derived and bounded here, the allow-list of
    :mod:`autotune.config` and the provider options applied through ``ORTSessionOptions``. An
    entry with a setting the Objective-C API cannot apply is skipped for the next one, and
    said so. The program is ``AutotuneManifest.swift`` beside this module (package data); each
    of its lines marked ``// from autotune: @NAME@`` is replaced by autotune's lists here."""
    from importlib.resources import files

    from autotune.providers import SPACES

    entries = []
    for key, rule in sorted(SESSION_ENTRIES.items()):
        if isinstance(rule, tuple):
            entries.append(f"    {_swift_str(key)}: .values([{', '.join(map(_swift_str, rule))}]),")
        else:
            entries.append(f"    {_swift_str(key)}: .pattern({_swift_str(rule)}),")
    options = []
    for provider, short in sorted(_SWIFT_PROVIDERS.items()):
        space = SPACES.get(provider)
        if space is None:
            continue
        for opt in sorted(space.options.values(), key=lambda o: o.key):
            if opt.risk != "safe":
                continue
            if opt.values:
                rule = f".values([{', '.join(map(_swift_str, opt.values))}])"
            else:
                rule = f".pattern({_swift_str(opt.pattern or '.{0,1024}')})"
            options.append(f"    {_swift_str(short + '.' + opt.key)}: {rule},")
    filled = {
        "MANIFEST": f"let autotuneManifestName = {_swift_str(manifest_name)}",
        "ENTRIES": _swift_dict("autotuneSessionEntries", "[String: AutotuneRule]", entries),
        "OPTIONS": _swift_dict("autotuneProviderOptions", "[String: AutotuneRule]", options),
        "PROVIDERS": _swift_dict(
            "autotuneProviders",
            "[String: String]",
            [f"    {_swift_str(k)}: {_swift_str(v)}," for k, v in sorted(_SWIFT_PROVIDERS.items())],
        ),
        "LEVELS": _swift_dict(
            "autotuneLevels",
            "[String: ORTGraphOptimizationLevel]",
            [f"    {_swift_str(k)}: {v}," for k, v in _SWIFT_LEVELS.items()],
        ),
    }
    template = files("autotune.output").joinpath("AutotuneManifest.swift").read_text("utf-8")
    lines = []
    for line in template.splitlines():
        marker = line.partition("// from autotune: @")[2].rstrip("@")
        lines.append(filled.pop(marker) if marker else line)
    if filled:  # the template and this function disagree: never write a half-filled program
        raise RuntimeError(f"AutotuneManifest.swift has no line for {', '.join(filled)}")
    return "\n".join(lines) + "\n"


def _swift_dict(name: str, kind: str, lines: list[str]) -> str:
    """``let name: kind = [ lines ]`` (``[:]`` when empty)."""
    if not lines:
        return f"let {name}: {kind} = [:]"
    return "\n".join([f"let {name}: {kind} = [", *lines, "]"])
