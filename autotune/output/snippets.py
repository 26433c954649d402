"""A stored configuration as code to paste into an app: Python, Swift, or JSON.

``snippet(config, "python")`` gives the ``onnxruntime`` calls that build exactly the session
options :func:`autotune.build.session_options` builds (a test executes it and compares). Only
settings that differ from ORT's defaults are written.

``snippet(config, "swift")`` uses ONNX Runtime's Objective-C API as Swift sees it
(``ORTSessionOptions``). That API can set the graph optimization level (none, basic, extended,
all), intra-op threads, session config entries and execution providers by name, and nothing
else. Settings it cannot express are never approximated silently: they are listed in a
``// Not applied`` comment, and :func:`unsupported` returns them so a caller can warn. In
particular ``ORT_ENABLE_LAYOUT`` has no Objective-C value; the snippet leaves ORT's default
level (``ORT_ENABLE_ALL``, which is LAYOUT plus ORT's level-4 optimizations) and says so, rather
than picking a neighbouring level that was not measured either.

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
        package, version = c.plugin["package"], c.plugin["version"]
        module = package.replace("-", "_")
        lines[1:1] = [f"import {module} as plugin  # pip install {package}=={version}"]
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
        lines.append(f"try options.setGraphOptimizationLevel({level})")
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
    :mod:`autotune.ladder`, thread roles re-derived here, the allow-list of
    :mod:`autotune.config` and the provider options applied through ``ORTSessionOptions``.
    Settings the Objective-C API cannot express are returned in ``notApplied``, as the
    one-configuration snippet lists them."""
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
    levels = "\n".join(
        f"        case {_swift_str(k)}: try options.setGraphOptimizationLevel({v})"
        for k, v in _SWIFT_LEVELS.items()
    )
    providers = "\n".join(
        f"    {_swift_str(k)}: {_swift_str(v)}," for k, v in sorted(_SWIFT_PROVIDERS.items())
    )
    return (
        _SWIFT_MANIFEST.replace("@ENTRIES@", "\n".join(entries))
        .replace("@OPTIONS@", "\n".join(options))
        .replace("@LEVELS@", levels)
        .replace("@PROVIDERS@", providers)
        .replace("@MANIFEST@", _swift_str(manifest_name))
    )


_SWIFT_MANIFEST = """\
// AutotuneManifest.swift: picks this device's ONNX Runtime options from an autotune manifest
// (`autotune manifest MODEL.onnx -o MODEL.autotune.json`, format 1). Generated by autotune.
//
//   let choice = try AutotuneManifest.load(Bundle.main.url(forResource: "model.autotune",
//                                                          withExtension: "json")!)
//       .resolve()
//   let options = try choice?.sessionOptions() ?? ORTSessionOptions()
//   let session = try ORTSession(env: env, modelPath: modelPath, sessionOptions: options)
//
// The ladder is autotune's: this exact chip, then the same model with another core count,
// then the same family and tier (M4 Max <- M3 Max), then the same generation (M3 Pro <- M3
// Max); never another vendor, architecture or OS. Thread counts are roles re-derived here.
// ORT's Objective-C API lists no EP devices, so entries measured with accelerators other than
// Apple's own are never borrowed. Every configuration is checked against autotune's allow-list
// before any of it is applied; an entry that fails is skipped.
import Darwin
import Foundation
import OnnxRuntimeBindings  // Swift Package Manager (CocoaPods: import onnxruntime_objc)

let autotuneManifestName = @MANIFEST@

enum AutotuneRule {
    case values([String])
    case pattern(String)

    func allows(_ value: String) -> Bool {
        switch self {
        case .values(let allowed): return allowed.contains(value)
        case .pattern(let pattern):
            return value.range(of: "^(?:" + pattern + ")$", options: .regularExpression) != nil
        }
    }
}

// autotune.config.SESSION_ENTRIES: the session config entries a configuration may carry
let autotuneSessionEntries: [String: AutotuneRule] = [
@ENTRIES@
]
// the provider options autotune searches (never cache paths: the app owns those)
let autotuneProviderOptions: [String: AutotuneRule] = [
@OPTIONS@
]
let autotuneProviders: [String: String] = [
@PROVIDERS@
]

struct AutotuneChip: Decodable {
    var vendor: String?
    var family: String?
    var generation: String?
    var tier: String?
    var model: String?
    var arch: String?
    var cores: Int?
    var performance_cores: Int?
    var efficiency_cores: Int?
    var accelerators: [String]
    var os: String?

    /// This device: brand string and core counts from sysctl, parsed as autotune parses them.
    static func current() -> AutotuneChip {
        let brand = sysctlString("machdep.cpu.brand_string") ?? "unknown"
        var chip = AutotuneChip(
            vendor: nil, family: nil, generation: nil, tier: nil, model: brand,
            arch: "arm64",
            cores: sysctlInt("hw.logicalcpu") ?? ProcessInfo.processInfo.activeProcessorCount,
            performance_cores: sysctlInt("hw.perflevel0.physicalcpu"),
            efficiency_cores: sysctlInt("hw.perflevel1.physicalcpu") ?? 0,
            accelerators: [], os: "Darwin")
        #if arch(x86_64)
        chip.arch = "x86_64"
        #endif
        let parts = brand.split(separator: " ").map(String.init)
        if parts.count >= 2, parts[0] == "Apple", parts[1].hasPrefix("M"),
           Int(parts[1].dropFirst()) != nil, parts.count <= 3 {
            chip.vendor = "Apple"
            chip.family = "Apple M"
            chip.generation = parts[1]
            chip.tier = parts.count == 3 ? parts[2] : "base"
            if !["base", "Pro", "Max", "Ultra"].contains(chip.tier!) { chip.family = nil }
        } else if brand.hasPrefix("Apple") {
            chip.vendor = "Apple"
        }
        return chip
    }
}

func sysctlString(_ name: String) -> String? {
    var size = 0
    guard sysctlbyname(name, nil, &size, nil, 0) == 0, size > 0 else { return nil }
    var buffer = [CChar](repeating: 0, count: size)
    guard sysctlbyname(name, &buffer, &size, nil, 0) == 0 else { return nil }
    return String(cString: buffer)
}

func sysctlInt(_ name: String) -> Int? {
    var value: Int32 = 0
    var size = MemoryLayout<Int32>.size
    guard sysctlbyname(name, &value, &size, nil, 0) == 0 else { return nil }
    return Int(value)
}

struct AutotuneProvider: Decodable {
    let name: String
    let options: [String: String]

    init(from decoder: Decoder) throws {
        var pair = try decoder.unkeyedContainer()
        name = try pair.decode(String.self)
        options = try pair.decode([String: String].self)
    }
}

struct AutotuneConfig: Decodable {
    let providers: [AutotuneProvider]
    let graph_optimization_level: String
    let execution_mode: String
    let intra_op_num_threads: Int
    let inter_op_num_threads: Int
    let enable_mem_pattern: Bool
    let enable_cpu_mem_arena: Bool
    let session_entries: [String: String]
    let free_dimension_overrides: [String: Int]
    let device_policy: String?

    /// Why this configuration may not be applied (nil: it may).
    func refusal() -> String? {
        for (key, value) in session_entries {
            guard let rule = autotuneSessionEntries[key] else { return "session entry \\(key)" }
            if !rule.allows(value) { return "session entry \\(key) = \\(value)" }
        }
        for provider in providers where provider.name != "CPUExecutionProvider" {
            guard let short = autotuneProviders[provider.name] else { continue }
            for (key, value) in provider.options {
                let rule = autotuneProviderOptions[short + "." + key]
                if rule == nil || !rule!.allows(value) { return "option \\(provider.name).\\(key)" }
            }
        }
        if !(0...1024).contains(intra_op_num_threads) { return "intra_op_num_threads" }
        return nil
    }
}

enum AutotuneRole: Decodable {
    case named(String)
    case count(Int)

    init(from decoder: Decoder) throws {
        let value = try decoder.singleValueContainer()
        if let n = try? value.decode(Int.self) { self = .count(n) } else {
            self = .named(try value.decode(String.self))
        }
    }

    /// The thread count this role means on `chip` (ladder.threads_for).
    func threads(on chip: AutotuneChip) -> Int {
        let cores = chip.cores ?? 0
        switch self {
        case .named("one"): return 1
        case .named("performance"): return chip.performance_cores ?? cores
        case .named("all"): return cores
        case .count(let n): return cores > 0 ? min(n, cores) : n
        default: return 0  // "default": ORT's own choice
        }
    }
}

struct AutotuneEntry: Decodable {
    let chip: String
    let descriptor: AutotuneChip
    let shapes: String
    let default_shapes: Bool
    let ort_version: String
    let config: AutotuneConfig
    let thread_roles: [String: AutotuneRole]
    let ratio: Double?
    let source: String
}

struct AutotuneChoice {
    let entry: AutotuneEntry
    let rung: String  // exact, cores, family_tier, generation
    let intraOpThreads: Int
    var borrowed: Bool { rung != "exact" }

    /// The session options of this choice, and what ORT's Objective-C API cannot set.
    func sessionOptions() throws -> ORTSessionOptions {
        try makeOptions().options
    }

    func makeOptions() throws -> (options: ORTSessionOptions, notApplied: [String]) {
        let c = entry.config
        let options = try ORTSessionOptions()
        var notApplied: [String] = []
        switch c.graph_optimization_level {
@LEVELS@
        default: notApplied.append("graph_optimization_level = \\(c.graph_optimization_level)")
        }
        if intraOpThreads != 0 { try options.setIntraOpNumThreads(Int32(intraOpThreads)) }
        for (key, value) in c.session_entries.sorted(by: { $0.key < $1.key }) {
            try options.addConfigEntry(withKey: key, value: value)
        }
        if let policy = c.device_policy {
            notApplied.append("device_policy = \\(policy)")
        } else {
            for provider in c.providers where provider.name != "CPUExecutionProvider" {
                if let short = autotuneProviders[provider.name] {
                    try options.appendExecutionProvider(short, providerOptions: provider.options)
                } else {
                    notApplied.append("provider \\(provider.name)")
                }
            }
        }
        if c.execution_mode != "ORT_SEQUENTIAL" { notApplied.append("execution_mode") }
        if !c.enable_mem_pattern { notApplied.append("enable_mem_pattern = false") }
        if !c.enable_cpu_mem_arena { notApplied.append("enable_cpu_mem_arena = false") }
        if !c.free_dimension_overrides.isEmpty { notApplied.append("free dimension overrides") }
        return (options, notApplied)
    }
}

struct AutotuneManifest: Decodable {
    let format: String
    let version: Int
    let model_digest: String
    let entries: [AutotuneEntry]

    static func load(_ url: URL) throws -> AutotuneManifest {
        let manifest = try JSONDecoder().decode(AutotuneManifest.self, from: Data(contentsOf: url))
        guard manifest.format == "autotune-manifest", manifest.version == 1 else {
            throw CocoaError(.fileReadCorruptFile)
        }
        return manifest
    }

    static let rungs = ["exact", "cores", "family_tier", "generation"]

    /// The ladder's rung of `other` for `local` (autotune.ladder.rung), or nil.
    static func rung(_ local: AutotuneChip, _ other: AutotuneChip) -> String? {
        guard let vendor = local.vendor, vendor == other.vendor else { return nil }
        if let a = local.arch, let b = other.arch, a != b { return nil }
        if let a = local.os, let b = other.os, a != b { return nil }
        // Apple's own GPU/NPU only: ORT's Objective-C API cannot list this device's accelerators
        let vendors = other.accelerators.map { $0.split(separator: " ").dropFirst().first }
        if vendors.contains(where: { $0 != "Apple" }) { return nil }
        if local.model != nil, local.model == other.model {
            return local.cores == other.cores ? "exact" : "cores"
        }
        guard let family = local.family, family == other.family else { return nil }
        if let tier = local.tier, tier == other.tier { return "family_tier" }
        if let generation = local.generation, generation == other.generation { return "generation" }
        return nil
    }

    /// The choice for this device (or `chip`); `shapes` is autotune's shape signature.
    func resolve(chip: AutotuneChip = .current(), shapes: String? = nil) -> AutotuneChoice? {
        var byChip: [String: [AutotuneEntry]] = [:]
        for entry in entries where entry.config.refusal() == nil {
            byChip[entry.chip, default: []].append(entry)
        }
        let mine = chip.performance_cores ?? chip.cores ?? 0
        let ranked = byChip.compactMap { name, list -> (Int, Int, String)? in
            guard let r = AutotuneManifest.rung(chip, list[0].descriptor) else { return nil }
            let theirs = list[0].descriptor.performance_cores ?? list[0].descriptor.cores ?? 0
            return (AutotuneManifest.rungs.firstIndex(of: r)!, abs(mine - theirs), name)
        }.sorted { ($0.0, $0.1, $0.2) < ($1.0, $1.1, $1.2) }
        for (rungIndex, _, name) in ranked {
            let list = byChip[name]!
            let entry: AutotuneEntry?
            if let shapes = shapes {
                entry = list.first { $0.shapes == shapes }
            } else {
                entry = list.filter { $0.default_shapes }.sorted { $0.shapes < $1.shapes }.first
                    ?? (Set(list.map { $0.shapes }).count == 1 ? list[0] : nil)
            }
            guard let found = entry else { continue }
            let rung = AutotuneManifest.rungs[rungIndex]
            let role = found.thread_roles["intra_op_num_threads"] ?? .named("default")
            let threads = rung == "exact"
                ? found.config.intra_op_num_threads : role.threads(on: chip)
            return AutotuneChoice(entry: found, rung: rung, intraOpThreads: threads)
        }
        return nil
    }
}
"""
