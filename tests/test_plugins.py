"""Plugin execution providers with the real wheels: ``onnxruntime-ep-webgpu`` and
``onnxruntime-ep-openvino`` are in the ``test`` extra, installed beside plain onnxruntime.

What a machine reports differs: on an Intel CPU the OpenVINO plugin reports a CPU device (and a
search measures it), on an AMD CPU none; WebGPU reports a device only with a GPU and a Vulkan
loader. Each test checks what holds on the machine it runs on, and says which case it took.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as md
import json
import logging
import multiprocessing
import os
from pathlib import Path
from typing import Any

import onnxruntime as ort
import optuna
import pytest

import autotune
from autotune import plugins
from autotune.build import add_plugin_devices, build_session, session_options
from autotune.config import DEFAULT_CONFIG, SessionConfig
from autotune.errors import ConfigError
from autotune.providers import (
    PLUGIN_SPACES,
    PluginSpace,
    SearchContext,
    available_spaces,
    installed_providers,
    openvino_plugin,
    plugin_candidates,
    validate_config,
    webgpu,
)
from autotune.tuning.space import suggest_config
from tests.conftest import FAST
from tests.test_providers import CONTEXTS, grid
from tests.test_resolver import _store_pick

WEBGPU = "onnxruntime-ep-webgpu"
OPENVINO = "onnxruntime-ep-openvino"


def _package(name: str) -> plugins.PluginPackage:
    found = {p.package: p for p in plugins.discover()}
    assert name in found, f"{name} is not installed: pip install -e '.[test]'"
    return found[name]


def _library_bytes(name: str) -> bytes:
    library = _package(name).library
    assert library is not None
    return Path(library).read_bytes()


def _ov_device() -> Any | None:
    devices = plugins.devices_of(_package(OPENVINO))
    return devices[0] if devices else None


# -- discovery --------------------------------------------------------------------------------


def test_installed_plugin_packages_are_discovered() -> None:
    for name, ep in ((WEBGPU, "WebGpuExecutionProvider"), (OPENVINO, "OpenVINOExecutionProvider")):
        pkg = _package(name)
        assert pkg.version == md.version(name)
        assert pkg.ep_names == (ep,)
        assert pkg.problem is None and pkg.library is not None
        # the library is a file the distribution itself installed, found by its own helper
        files = {
            Path(str(md.distribution(name).locate_file(f))).resolve() for f in md.files(name) or []
        }
        assert Path(pkg.library) in files
        module = __import__(pkg.module)
        assert Path(module.get_library_path()).resolve() == Path(pkg.library)


def test_registration_is_once_per_process_and_hides_plugins_from_builtins() -> None:
    for pkg in plugins.discover():
        assert plugins.register(pkg) is None
        assert plugins.register(pkg) is None  # ORT's "already registered" is not an error
    # ORT lists registered plugin EPs as available; autotune searches them as plugin candidates
    # on a device, never as the built-in OpenVINO space of the onnxruntime-openvino wheel
    assert "OpenVINOExecutionProvider" not in installed_providers()
    assert "WebGpuExecutionProvider" not in installed_providers()
    assert autotune.current_chip().providers == tuple(
        n for n in ort.get_available_providers() if not plugins.is_plugin_ep(n)
    )


def _registered_in_child(queue: Any) -> None:
    # a fresh (spawned) process, as every trial process is: build registers what it needs
    so = session_options(SessionConfig(device_policy="PREFER_GPU"))
    add_plugin_devices(so, SessionConfig(device_policy="PREFER_GPU"), None)
    queue.put((dict(plugins._registered), sorted({d.ep_name for d in ort.get_ep_devices()})))


@pytest.mark.slow
def test_trial_processes_register_the_plugins_themselves() -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_registered_in_child, args=(queue,))
    child.start()
    registered, ep_names = queue.get(timeout=120)
    child.join(30)
    assert registered == {WEBGPU: None, OPENVINO: None}
    if _ov_device() is not None:
        assert "OpenVINOExecutionProvider" in ep_names


def test_no_device_report(capsys: pytest.CaptureFixture[str]) -> None:
    report = {p["package"]: p for p in plugins.report()}
    webgpu_entry = report[WEBGPU]
    if not webgpu_entry["devices"]:  # no GPU here (the development machines and CI)
        assert "WebGPU found no GPU adapter" in webgpu_entry["no_device_reason"]
    ov = report[OPENVINO]
    if ov["devices"]:
        assert ov["devices"][0]["device"].startswith("CPU/") and ov["no_device_reason"] is None
    else:
        assert "OpenVINO plugin reports no device" in ov["no_device_reason"]
    # the AMD case, as it reads on such a host
    why = plugins.no_device_reason(_package(OPENVINO), cpu_vendor="AuthenticAMD")
    assert "AuthenticAMD" in why and "onnxruntime-openvino wheel" in why
    why = plugins.no_device_reason(_package(WEBGPU), system="Darwin")
    assert "Metal" in why

    from click.testing import CliRunner

    from autotune.commands.cli import cli

    out = CliRunner().invoke(cli, ["chip"]).output
    assert f"{WEBGPU} {_package(WEBGPU).version} (WebGpuExecutionProvider)" in out
    if not webgpu_entry["devices"]:
        assert "no device: WebGPU found no GPU adapter" in out
    data = json.loads(CliRunner().invoke(cli, ["chip", "--json"]).output)
    assert {p["package"]: p["version"] for p in data["plugins"]} == {
        WEBGPU: md.version(WEBGPU),
        OPENVINO: md.version(OPENVINO),
    }


# -- option spaces against the shipped libraries ----------------------------------------------


def test_webgpu_options_are_the_shipped_librarys_strings() -> None:
    data = _library_bytes(WEBGPU)
    for key, option in webgpu.OPTIONS.items():
        # the EP reads its options as session entries ep.webgpuexecutionprovider.<key>
        assert (webgpu.KEY_PREFIX + key + "\0").encode() in data, key
        for value in option.values:
            assert (value + "\0").encode() in data, f"{key}={value}"
    for message in (
        "Invalid preferred layout: ",
        "Invalid enable graph capture: ",
        "Invalid buffer cache mode: ",
        "Invalid validation mode: ",
        "Invalid power preference: ",
        "Invalid Dawn backend type: ",
    ):
        assert message.encode() in data, message
    for key in ("webgpuInstance", "webgpuDevice", "dawnProcTable", "deviceId"):
        assert webgpu.OPTIONS[key].risk == "pointer"


def test_openvino_plugin_takes_settings_through_load_config() -> None:
    data = _library_bytes(OPENVINO)
    assert b"load_config\0" in data
    # the plugin says so for the classic options when given them through the device API
    assert b"Please set it via the load_config as: {}" in data
    libraries = [
        p.read_bytes()
        for p in Path(_package(OPENVINO).library or "").parent.glob("libopenvino*.so*")
    ]
    for prop, rule in openvino_plugin.PROPERTIES.items():
        assert any((prop + "\0").encode() in b for b in libraries), prop
        for value in rule if isinstance(rule, tuple) else ():
            assert any((value + "\0").encode() in b for b in libraries), f"{prop}={value}"


@pytest.mark.parametrize("ctx", CONTEXTS.values(), ids=CONTEXTS.keys())
@pytest.mark.parametrize("space", PLUGIN_SPACES.values(), ids=lambda s: s.short)
def test_every_plugin_point_is_valid(space: Any, ctx: SearchContext) -> None:
    suggests = [space.suggest]
    if space is openvino_plugin.SPACE:
        suggests += [
            openvino_plugin.suggest_for(d, "FP32 FP16 BF16") for d in ("CPU", "GPU.1", "NPU")
        ]
    for suggest in suggests:
        probe = dataclasses.replace(space, suggest=suggest)
        for params, options in grid(probe, ctx):
            assert all(name.startswith(space.short + ".") for name in params), params
            space.validate(options)
            assert suggest(optuna.trial.FixedTrial(params), ctx) == options


def test_unsafe_plugin_options_are_refused() -> None:
    space = PLUGIN_SPACES[(WEBGPU, "WebGpuExecutionProvider")]
    with pytest.raises(ConfigError, match="raw pointer"):
        space.validate({"webgpuDevice": "140234"})
    with pytest.raises(ConfigError, match="must be one of"):
        space.validate({"enableGraphCapture": "true"})
    ov = PLUGIN_SPACES[(OPENVINO, "OpenVINOExecutionProvider")]
    for bad, why in (
        ('{"CPU":{"CACHE_DIR":"/tmp/x"}}', "CACHE_DIR"),
        ("/etc/openvino.json", "never a file path"),
        ('{"CPU":{"INFERENCE_PRECISION_HINT":"F32"}}', "invalid value"),
        ('{"CPU":{"NUM_STREAMS":2}}', "invalid value"),
        ('{"CPU":{},"GPU":{}}', "one device"),
    ):
        with pytest.raises(ConfigError, match=why):
            ov.validate({"load_config": bad})
    with pytest.raises(ConfigError, match="unknown option"):
        ov.validate({"device_type": "CPU"})  # ignored by the plugin: never stored


# -- identity ---------------------------------------------------------------------------------


def _plugin_config(version: str, device: str = "CPU/32902/0") -> SessionConfig:
    return SessionConfig(
        providers=(("OpenVINOExecutionProvider", {}), ("CPUExecutionProvider", {})),
        plugin={"package": OPENVINO, "version": version, "device": device},
    ).canonical()


def test_plugin_package_and_version_are_part_of_the_configuration() -> None:
    a, b = _plugin_config("1.8.1"), _plugin_config("1.9.0")
    assert a.config_id != b.config_id
    assert SessionConfig.from_json(a.to_json()) == a
    assert "plugin" not in DEFAULT_CONFIG.to_dict()  # configurations without one keep their ids
    assert "openvino 1.8.1 CPU" in a.describe()
    for bad in (
        {"package": "/tmp/libevil.so", "version": "1", "device": "CPU/1/0"},
        {"package": OPENVINO, "version": "1.8.1", "device": "CPU/1/0", "library": "/tmp/x.so"},
        {"package": OPENVINO, "version": "1.8.1", "device": "../../x"},
    ):
        with pytest.raises(ConfigError, match="plugin"):
            SessionConfig.from_dict({"plugin": bad})
    with pytest.raises(ConfigError, match="plugin"):
        validate_config(
            SessionConfig(device_policy="PREFER_GPU", plugin=dict(a.plugin or {})).canonical()
        )


def test_another_plugin_version_is_refused_at_build(mlp_path: Path) -> None:
    with pytest.raises(plugins.PluginUnavailable, match="stale"):
        build_session(mlp_path, _plugin_config("0.0.1"))
    missing = SessionConfig(
        providers=(("FooExecutionProvider", {}), ("CPUExecutionProvider", {})),
        plugin={"package": "onnxruntime-ep-foo", "version": "1.0", "device": "GPU/1/2"},
    ).canonical()
    validate_config(missing)  # an unknown plugin is searched with no options
    webgpu_config = SessionConfig(
        providers=(("WebGpuExecutionProvider", {"preferredLayout": "NHWC"}),),
        plugin={"package": WEBGPU, "version": _package(WEBGPU).version, "device": "GPU/4318/1"},
    ).canonical()
    validate_config(webgpu_config)
    assert "preferredLayout=NHWC" in webgpu_config.describe()
    if not plugins.devices_of(_package(WEBGPU)):  # no GPU: says so, and why
        with pytest.raises(plugins.PluginUnavailable, match="reports no device GPU/4318/1"):
            build_session(mlp_path, webgpu_config)
    with pytest.raises(plugins.PluginUnavailable, match="not installed"):
        build_session(mlp_path, missing)


# -- search and run time ----------------------------------------------------------------------


def test_candidates_are_one_per_reported_device() -> None:
    candidates = plugin_candidates()
    ov = _ov_device()
    names = {c.name for c in candidates}
    if ov is not None:
        assert f"plugin:{OPENVINO}:OpenVINOExecutionProvider:{plugins.device_selector(ov)}" in names
    spaces = [s for s in available_spaces() if isinstance(s, PluginSpace)]
    assert {s.name for s in spaces} == names
    for space in spaces:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(5):
            trial = study.ask()
            config = suggest_config(trial, CONTEXTS["static4"], [space], levels=["ORT_ENABLE_ALL"])
            validate_config(config)
            assert config.plugin == space.plugin
            study.tell(trial, 1.0)


@pytest.mark.slow
def test_search_and_best_session_stay_clean(
    mlp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from autotune.store.database import Store
    from autotune.tuning.search import Event, SearchOptions, run_search

    events: list[Event] = []
    outcome = run_search(
        mlp_path,
        SearchOptions(trials=4, protocol=FAST, seed=1, seed_variants=False),
        events.append,
    )
    plan = next(e.message for e in events if e.kind == "plan")
    assert plan.startswith("providers: CPUExecutionProvider")
    with Store.open() as store:
        rows = store.trials(outcome.key)
    ov = _ov_device()
    if ov is not None:  # an Intel CPU: the plugin's trial ran on its device, in its process
        assert f"from {OPENVINO}" in plan
        plugin_rows = [r for r in rows if '"plugin"' in str(r.config)]
        assert plugin_rows, [r.label for r in rows]
        placement = plugin_rows[0].placement
        assert placement["nodes"].get("OpenVINOExecutionProvider") == 3, plugin_rows[0]
        # its compile cache (CACHE_DIR inside load_config) was filled and read back
        assert plugin_rows[0].cached_session_create_ms is not None
    else:
        assert "plugins without a device here" in plan and OPENVINO in plan
    with caplog.at_level(logging.WARNING, logger="autotune"):
        session = autotune.best_session(mlp_path)
    if outcome.outcome == "inconclusive":  # nothing new reaches apps: ORT's defaults, said once
        (record,) = caplog.records
        assert "no tuned configuration" in record.getMessage()
    else:
        assert not caplog.records
    assert session.run(None, {"x": __import__("numpy").ones((1, 16), "float32")})


def test_missing_plugin_warns_once_and_uses_the_next_choice(
    mlp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = SessionConfig(
        providers=(("FooExecutionProvider", {}), ("CPUExecutionProvider", {})),
        plugin={"package": "onnxruntime-ep-foo", "version": "1.0", "device": "GPU/1/2"},
    ).canonical()
    _store_pick(mlp_path, missing)
    with caplog.at_level(logging.WARNING, logger="autotune"):
        for _ in range(2):
            session = autotune.best_session(mlp_path)
            assert session.get_providers() == ["CPUExecutionProvider"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len([w for w in warnings if "onnxruntime-ep-foo is not installed" in w]) == 1, warnings
    best = autotune.best_config(mlp_path)
    assert best is not None and best.stale  # the package is absent: stale, refused at build


def test_selection_delegate_picks_the_tuned_device(mlp_path: Path) -> None:
    delegate = autotune.selection_delegate(mlp_path)  # nothing stored: the CPU EP
    devices = ort.get_ep_devices()
    assert [d.ep_name for d in delegate(devices, {}, {}, 1)] == ["CPUExecutionProvider"]
    ov = _ov_device()
    if ov is None:
        return
    tuned = SessionConfig(
        providers=(("OpenVINOExecutionProvider", {"load_config": '{"CPU":{"NUM_STREAMS":"1"}}'}),),
        plugin={
            "package": OPENVINO,
            "version": _package(OPENVINO).version,
            "device": plugins.device_selector(ov),
        },
    ).canonical()
    _store_pick(mlp_path, tuned)
    delegate = autotune.selection_delegate(mlp_path)
    picked = delegate(ort.get_ep_devices(), {}, {}, 2)
    assert [d.ep_name for d in picked] == ["OpenVINOExecutionProvider"]
    so = ort.SessionOptions()
    so.set_provider_selection_policy_delegate(delegate)
    session = ort.InferenceSession(str(mlp_path), sess_options=so)
    assert session.get_providers()[0] == "OpenVINOExecutionProvider"
    # best_session builds the same choice with its options and a persistent compile cache
    session = autotune.best_session(mlp_path)
    assert session.get_providers()[0] == "OpenVINOExecutionProvider"
    cache = Path(os.environ["AUTOTUNE_CACHE_DIR"]) / "compiled"
    assert list(cache.rglob("openvino/*.blob")), "no OpenVINO compile cache under autotune's"


def test_python_snippet_registers_the_plugin_and_builds(mlp_path: Path) -> None:
    from autotune.output.snippets import snippet

    ov = _ov_device()
    device = plugins.device_selector(ov) if ov is not None else "CPU/32902/0"
    config = SessionConfig(
        providers=(("OpenVINOExecutionProvider", {"load_config": '{"CPU":{"NUM_STREAMS":"1"}}'}),),
        plugin={"package": OPENVINO, "version": _package(OPENVINO).version, "device": device},
    ).canonical()
    code = snippet(config, "python", str(mlp_path))
    assert code.startswith("import onnxruntime as ort\nimport onnxruntime_ep_openvino as plugin")
    assert "so.add_provider_for_devices(devices[:1]" in code
    if ov is not None:  # the pasted code runs (in an app's fresh process): on the plugin's device
        import subprocess
        import sys

        code += "print(session.get_providers()[0])\n"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.stdout.strip() == "OpenVINOExecutionProvider", out.stderr[-500:]


# -- the registration name (the MLX package's case) -------------------------------------------


def test_libraries_are_registered_under_their_ep_name() -> None:
    # ORT hands the registration name to the plugin's factory; MLX's factory names its devices
    # after it, so autotune registers under the EP name, as the packages' own helpers do
    for pkg in plugins.discover():
        assert plugins.register(pkg) is None
        assert pkg.registration_name == pkg.ep_names[0]
        assert pkg.library is not None
        with pytest.raises(Exception, match=f"already registered under {pkg.ep_names[0]}"):
            ort.register_execution_provider_library(pkg.ep_names[0], pkg.library)


def _mlx_like_package(root: Path) -> md.PathDistribution:
    """A stand-in for the ``onnxruntime-ep-mlx`` 0.31.0 wheel, whose dylib loads on macOS arm64
    only: its module's helper shape (``EP_NAME`` and ``library_path()``, no
    ``get_library_path()``), a placeholder file for the dylib, and a dist-info naming both."""
    module = root / "onnxruntime_ep_mlx"
    module.mkdir()
    (module / "libonnxruntime_mlx_ep.dylib").write_bytes(b"placeholder, not a Mach-O library")
    (module / "__init__.py").write_text(
        "import os\n"
        'EP_NAME = "MLXExecutionProvider"\n'
        "def library_path():\n"
        '    return os.path.join(os.path.dirname(__file__), "libonnxruntime_mlx_ep.dylib")\n'
    )
    info = root / "onnxruntime_ep_mlx-0.31.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: onnxruntime-ep-mlx\nVersion: 0.31.0\n"
    )
    (info / "RECORD").write_text(
        "onnxruntime_ep_mlx/__init__.py,,\n"
        "onnxruntime_ep_mlx/libonnxruntime_mlx_ep.dylib,,\n"
        "onnxruntime_ep_mlx-0.31.0.dist-info/METADATA,,\n"
    )
    return md.PathDistribution(info)


def test_the_mlx_package_is_found_by_library_path_and_named_by_its_ep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from autotune.output.snippets import snippet

    dist = _mlx_like_package(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "onnxruntime_ep_mlx", raising=False)
    pkg = plugins._inspect(dist, "onnxruntime-ep-mlx")
    sys.modules.pop("onnxruntime_ep_mlx", None)
    assert pkg.problem is None, pkg.problem
    assert pkg.getter == "library_path"
    assert pkg.library == str(
        (tmp_path / "onnxruntime_ep_mlx/libonnxruntime_mlx_ep.dylib").resolve()
    )
    assert pkg.registration_name == "MLXExecutionProvider"

    config = SessionConfig(
        providers=(("MLXExecutionProvider", {}),),
        plugin={"package": "onnxruntime-ep-mlx", "version": "0.31.0", "device": "GPU/4203/0"},
    ).canonical()
    code = snippet(config, "python", "model.onnx")
    assert "import onnxruntime_ep_mlx as plugin  # pip install onnxruntime-ep-mlx==0.31.0" in code
    assert (
        'ort.register_execution_provider_library("MLXExecutionProvider", plugin.library_path())'
        in code
    )
    assert "get_library_path" not in code
    assert 'if d.ep_name == "MLXExecutionProvider"' in code
