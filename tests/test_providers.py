"""Contract tests for every execution-provider space, parametrized over all of them.

Only the CPU EP runs on the development machine, so CoreML, CUDA, TensorRT, OpenVINO, DirectML
and QNN are checked here as data: every point of every search space is enumerated and validated.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import onnxruntime as ort
import optuna
import pytest

import autotune.providers as providers
from autotune.config import SessionConfig
from autotune.errors import ConfigError
from autotune.providers import SPACES, ProviderSpace, SearchContext, validate_config
from autotune.tuning.space import suggest_config

ALL = list(SPACES.values())
IDS = [s.short for s in ALL]
SPACES_BY_SHORT = {s.short: s for s in ALL}

CONTEXTS = {
    "plain": SearchContext(cores=1),
    "static4": SearchContext(cores=4),
    "subgraphs16": SearchContext(cores=16, has_subgraphs=True),
    "dynamic2": SearchContext(cores=2, has_dynamic_inputs=True, free_dims={"N": 1}),
    "both4": SearchContext(cores=4, has_subgraphs=True, has_dynamic_inputs=True),
}


class GridTrial:
    """A stand-in for optuna's Trial that takes the choice at ``path[i]`` for the i-th question."""

    def __init__(self, path: Sequence[int]) -> None:
        self.path = list(path)
        self.sizes: list[int] = []
        self.params: dict[str, Any] = {}

    def _pick(self, name: str, choices: Sequence[Any]) -> Any:
        assert name not in self.params, f"parameter {name} asked twice"
        assert choices, f"parameter {name} has no choices"
        i = len(self.sizes)
        index = self.path[i] if i < len(self.path) else 0
        self.sizes.append(len(choices))
        self.params[name] = choices[index]
        return choices[index]

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._pick(name, list(choices))

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        assert low <= high, f"parameter {name} has an empty range {low}..{high}"
        value: int = self._pick(name, list(range(low, high + 1, step)))
        return value


def grid(
    space: ProviderSpace, ctx: SearchContext
) -> Iterator[tuple[dict[str, Any], dict[str, str]]]:
    """Every point of the space: (the trial's parameters, the provider options)."""
    path: list[int] = []
    while True:
        trial = GridTrial(path)
        options = space.suggest(trial, ctx)
        yield trial.params, options
        path = path + [0] * (len(trial.sizes) - len(path))
        # odometer: advance the last question that has choices left, forget the ones after it
        for i in reversed(range(len(trial.sizes))):
            if path[i] + 1 < trial.sizes[i]:
                path = [*path[:i], path[i] + 1]
                break
        else:
            return


def points(space: ProviderSpace, ctx: SearchContext) -> list[dict[str, str]]:
    return [options for _, options in grid(space, ctx)]


def test_grid_enumerates_every_branch() -> None:
    # CoreML with subgraphs: 4 compute units x 2^4, and the low-precision flag on 2 of the units
    assert len(points(SPACES["CoreMLExecutionProvider"], CONTEXTS["both4"])) == 16 * (2 + 2 * 2)
    # QNN: gpu alone, or htp x 4 performance modes x 4 finalization modes x fp16 on/off
    assert len(points(SPACES["QNNExecutionProvider"], CONTEXTS["static4"])) == 1 + 4 * 4 * 2


def session_for(space: ProviderSpace, options: dict[str, str], **overrides: Any) -> dict[str, Any]:
    settings = {**space.session_requirements, **overrides}
    return SessionConfig(providers=((space.name, options),), **settings).to_dict()


# -- the option tables ------------------------------------------------------------------------


def test_spaces_are_named_as_ort_names_them() -> None:
    assert next(iter(SPACES)) == "CPUExecutionProvider"
    known = set(ort.get_all_providers())
    for name, space in SPACES.items():
        assert space.name == name
        assert name in known, f"{name} is not a provider name ORT knows"
    assert len({s.short for s in ALL}) == len(ALL)


@pytest.mark.parametrize("space", ALL, ids=IDS)
def test_option_table_is_consistent(space: ProviderSpace) -> None:
    for key, option in space.options.items():
        assert option.key == key
        if option.risk == "safe":
            assert option.values or option.pattern, f"{key} accepts any value"
            if option.default is not None:
                option.check(space.name, option.default)
    for key in space.cache_options:
        assert space.options[key].risk == "writes_files", f"{key} must never come from a database"


# -- every point of every space ---------------------------------------------------------------


@pytest.mark.parametrize("ctx", CONTEXTS.values(), ids=CONTEXTS.keys())
@pytest.mark.parametrize("space", ALL, ids=IDS)
def test_every_point_is_known_safe_and_valid(space: ProviderSpace, ctx: SearchContext) -> None:
    count = 0
    for params, options in grid(space, ctx):
        count += 1
        assert all(name.startswith(space.short + ".") for name in params), params
        assert set(options) <= set(space.options)
        assert all(space.options[key].risk == "safe" for key in options), options
        space.validate(options)
        assert space.violations(options, session_for(space, options)) == []
    assert count >= 1


@pytest.mark.parametrize("space", ALL, ids=IDS)
def test_optuna_fixed_trial_replays_every_point(space: ProviderSpace) -> None:
    ctx = CONTEXTS["both4"]
    for params, options in grid(space, ctx):
        assert space.suggest(optuna.trial.FixedTrial(params), ctx) == options


@pytest.mark.parametrize("space", ALL, ids=IDS)
def test_search_pipeline_proposes_only_valid_configs(space: ProviderSpace) -> None:
    """Through autotune.tuning.space with a real optuna study: distributions stay consistent
    and every configuration, session settings included, passes validate_config."""
    for ctx in CONTEXTS.values():
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(10):
            trial = study.ask()
            config = suggest_config(trial, ctx, [space], levels=["ORT_ENABLE_ALL"])
            validate_config(config)
            study.tell(trial, 1.0)


# -- value formats and conditional options ----------------------------------------------------


def test_coreml_booleans_are_1_and_0() -> None:
    space = SPACES["CoreMLExecutionProvider"]
    seen: set[str] = set()
    for options in points(space, CONTEXTS["both4"]):
        for key in ("RequireStaticInputShapes", "EnableOnSubgraphs"):
            seen.add(options[key])
        if "AllowLowPrecisionAccumulationOnGPU" in options:
            seen.add(options["AllowLowPrecisionAccumulationOnGPU"])
    assert seen == {"0", "1"}
    for wrong in ("True", "true", "False"):
        with pytest.raises(ConfigError, match="RequireStaticInputShapes"):
            space.validate({"RequireStaticInputShapes": wrong})


def test_coreml_enable_on_subgraphs_only_with_subgraphs() -> None:
    space = SPACES["CoreMLExecutionProvider"]
    assert all("EnableOnSubgraphs" not in o for o in points(space, CONTEXTS["static4"]))
    assert all("EnableOnSubgraphs" in o for o in points(space, CONTEXTS["subgraphs16"]))


def test_coreml_low_precision_only_with_gpu_units() -> None:
    space = SPACES["CoreMLExecutionProvider"]
    units_seen = set()
    for options in points(space, CONTEXTS["static4"]):
        units = options["MLComputeUnits"]
        units_seen.add(units)
        has_gpu = units in ("CPUAndGPU", "ALL")
        assert ("AllowLowPrecisionAccumulationOnGPU" in options) == has_gpu, options
    assert units_seen == {"CPUOnly", "CPUAndGPU", "CPUAndNeuralEngine", "ALL"}


def test_openvino_booleans_are_true_and_false() -> None:
    space = SPACES["OpenVINOExecutionProvider"]
    values = {o["disable_dynamic_shapes"] for o in points(space, CONTEXTS["dynamic2"])}
    assert values == {"true", "false"}
    assert all("disable_dynamic_shapes" not in o for o in points(space, CONTEXTS["static4"]))
    for key in ("disable_dynamic_shapes", "enable_qdq_optimizer"):
        for wrong in ("1", "0", "True", "False"):
            with pytest.raises(ConfigError, match=key):
                space.validate({key: wrong})


@pytest.mark.parametrize("ctx", CONTEXTS.values(), ids=CONTEXTS.keys())
def test_openvino_precision_valid_for_device_and_counts_fit_the_machine(ctx: SearchContext) -> None:
    space = SPACES["OpenVINOExecutionProvider"]
    for options in points(space, ctx):
        assert options["device_type"] == "CPU"
        assert options["precision"] in ("FP32", "ACCURACY")
        assert 1 <= int(options["num_streams"]) <= min(8, ctx.cores)
        assert 1 <= int(options["num_of_threads"]) <= ctx.cores


@pytest.mark.parametrize("short", ["cuda", "tensorrt"])
def test_cuda_graphs_only_for_static_models_without_control_flow(short: str) -> None:
    space = next(s for s in ALL if s.short == short)
    key = "enable_cuda_graph" if short == "cuda" else "trt_cuda_graph_enable"
    assert {o[key] for o in points(space, CONTEXTS["static4"])} == {"0", "1"}
    for name in ("subgraphs16", "dynamic2", "both4"):
        assert all(key not in o for o in points(space, CONTEXTS[name])), name


def test_tensorrt_always_caches_and_searches_levels_0_to_5() -> None:
    space = SPACES["TensorrtExecutionProvider"]
    found = points(space, CONTEXTS["static4"])
    assert all(o["trt_engine_cache_enable"] == "1" == o["trt_timing_cache_enable"] for o in found)
    assert {o["trt_builder_optimization_level"] for o in found} == set("012345")


def test_qnn_searches_htp_and_gpu_only_with_htp_options_on_htp() -> None:
    space = SPACES["QNNExecutionProvider"]
    found = points(space, CONTEXTS["static4"])
    assert {o["backend_type"] for o in found} == {"htp", "gpu"}
    for options in found:
        has_htp = any(k.startswith(("htp_", "enable_htp_")) for k in options)
        assert has_htp == (options["backend_type"] == "htp")
    for backend in ("saver", "ir"):
        with pytest.raises(ConfigError, match="backend_type"):
            space.validate({"backend_type": backend})


def test_dml_spells_booleans_as_the_wheel_does() -> None:
    space = SPACES["DmlExecutionProvider"]
    found = points(space, CONTEXTS["static4"])
    assert {o["disable_metacommands"] for o in found} == {"True", "False"}
    with pytest.raises(ConfigError, match="disable_metacommands"):
        space.validate({"disable_metacommands": "1"})


# -- what validate() refuses ------------------------------------------------------------------

UNSAFE = [
    (space, key) for space in ALL for key, option in space.options.items() if option.risk != "safe"
]


@pytest.mark.parametrize(("space", "key"), UNSAFE, ids=[f"{s.short}-{k}" for s, k in UNSAFE])
def test_unsafe_options_are_refused_by_name(space: ProviderSpace, key: str) -> None:
    with pytest.raises(ConfigError, match="never applied") as info:
        space.validate({key: "/tmp/anything"})
    assert f"{space.name}.{key}" in str(info.value)


@pytest.mark.parametrize(
    ("name", "key", "risk"),
    [
        ("TensorrtExecutionProvider", "trt_extra_plugin_lib_paths", "loads_library"),
        ("TensorrtExecutionProvider", "trt_engine_decryption_lib_path", "loads_library"),
        ("QNNExecutionProvider", "backend_path", "loads_library"),
        ("QNNExecutionProvider", "op_packages", "loads_library"),
        ("CoreMLExecutionProvider", "ModelCacheDirectory", "writes_files"),
        ("OpenVINOExecutionProvider", "cache_dir", "writes_files"),
        ("OpenVINOExecutionProvider", "load_config", "writes_files"),
        ("TensorrtExecutionProvider", "trt_engine_cache_path", "writes_files"),
        ("TensorrtExecutionProvider", "trt_dump_subgraphs", "writes_files"),
        ("QNNExecutionProvider", "profiling_file_path", "writes_files"),
        ("TensorrtExecutionProvider", "trt_onnx_model_folder_path", "reads_files"),
        ("CUDAExecutionProvider", "user_compute_stream", "pointer"),
        ("CUDAExecutionProvider", "gpu_external_alloc", "pointer"),
        ("TensorrtExecutionProvider", "trt_onnx_bytestream", "pointer"),
        ("OpenVINOExecutionProvider", "context", "pointer"),
        ("CoreMLExecutionProvider", "ProfileComputePlan", "debug"),
    ],
)
def test_known_dangerous_options_carry_their_risk(name: str, key: str, risk: str) -> None:
    assert SPACES[name].options[key].risk == risk


@pytest.mark.parametrize("space", ALL, ids=IDS)
def test_unknown_option_is_refused_by_name(space: ProviderSpace) -> None:
    with pytest.raises(ConfigError, match="unknown option") as info:
        space.validate({"no_such_option": "1"})
    assert "no_such_option" in str(info.value)


ENUMS = [(s, k) for s in ALL for k, o in s.options.items() if o.risk == "safe" and o.values]
PATTERNED = [(s, k) for s in ALL for k, o in s.options.items() if o.risk == "safe" and o.pattern]


@pytest.mark.parametrize(("space", "key"), ENUMS, ids=[f"{s.short}-{k}" for s, k in ENUMS])
def test_wrong_enum_value_is_refused_by_name(space: ProviderSpace, key: str) -> None:
    for wrong in ("bogus", "", "../../lib.so", space.options[key].values[0] + " "):
        with pytest.raises(ConfigError, match=key):
            space.validate({key: wrong})


@pytest.mark.parametrize(("space", "key"), PATTERNED, ids=[f"{s.short}-{k}" for s, k in PATTERNED])
def test_patterned_option_refuses_paths_and_huge_values(space: ProviderSpace, key: str) -> None:
    for wrong in ("/etc/passwd", "../../x", "C:\\lib.dll", "9" * 200, "1;rm -rf /"):
        with pytest.raises(ConfigError, match=key):
            space.validate({key: wrong})


@pytest.mark.parametrize(
    ("name", "key", "value"),
    [
        ("CUDAExecutionProvider", "gpu_mem_limit", "2147483648"),
        ("TensorrtExecutionProvider", "trt_profile_min_shapes", "input:1x3x224x224,mask:1x224"),
        ("TensorrtExecutionProvider", "trt_op_types_to_exclude", "NonMaxSuppression,NonZero"),
        ("TensorrtExecutionProvider", "trt_tactic_sources", "-CUDNN,+CUBLAS"),
        ("OpenVINOExecutionProvider", "device_type", "AUTO:GPU.0,CPU"),
        ("OpenVINOExecutionProvider", "device_type", "HETERO:GPU,CPU"),
        ("OpenVINOExecutionProvider", "reshape_input", "input[1,3,224..448,224]"),
        ("OpenVINOExecutionProvider", "layout", "input[NCHW]"),
    ],
)
def test_patterned_option_accepts_its_documented_format(name: str, key: str, value: str) -> None:
    SPACES[name].validate({key: value})


# -- constraints ------------------------------------------------------------------------------

# (provider, constraint, options, session overrides, fires)
CONSTRAINT_CASES: list[tuple[str, str, dict[str, str], dict[str, Any], bool]] = [
    (
        "CoreMLExecutionProvider",
        "low_precision_needs_gpu",
        {"MLComputeUnits": "CPUOnly", "AllowLowPrecisionAccumulationOnGPU": "1"},
        {},
        True,
    ),
    (
        "CoreMLExecutionProvider",
        "low_precision_needs_gpu",
        {"MLComputeUnits": "CPUAndNeuralEngine", "AllowLowPrecisionAccumulationOnGPU": "1"},
        {},
        True,
    ),
    (
        "CoreMLExecutionProvider",
        "low_precision_needs_gpu",
        {"MLComputeUnits": "CPUAndGPU", "AllowLowPrecisionAccumulationOnGPU": "1"},
        {},
        False,
    ),
    (
        "CoreMLExecutionProvider",
        "low_precision_needs_gpu",
        {"AllowLowPrecisionAccumulationOnGPU": "1"},
        {},
        False,
    ),  # ALL by default
    (
        "CUDAExecutionProvider",
        "cuda_graph_needs_sequential",
        {"enable_cuda_graph": "1"},
        {"execution_mode": "ORT_PARALLEL"},
        True,
    ),
    (
        "CUDAExecutionProvider",
        "cuda_graph_needs_sequential",
        {"enable_cuda_graph": "1"},
        {"execution_mode": "ORT_SEQUENTIAL"},
        False,
    ),
    (
        "CUDAExecutionProvider",
        "cuda_graph_needs_sequential",
        {"enable_cuda_graph": "0"},
        {"execution_mode": "ORT_PARALLEL"},
        False,
    ),
    (
        "TensorrtExecutionProvider",
        "engine_decryption_needs_library",
        {"trt_engine_decryption_enable": "1"},
        {},
        True,
    ),
    (
        "TensorrtExecutionProvider",
        "engine_decryption_needs_library",
        {"trt_engine_decryption_enable": "0"},
        {},
        False,
    ),
    ("TensorrtExecutionProvider", "dla_core_needs_dla", {"trt_dla_core": "1"}, {}, True),
    (
        "TensorrtExecutionProvider",
        "dla_core_needs_dla",
        {"trt_dla_core": "1", "trt_dla_enable": "1"},
        {},
        False,
    ),
    (
        "TensorrtExecutionProvider",
        "native_calibration_needs_int8",
        {"trt_int8_use_native_calibration_table": "1"},
        {},
        True,
    ),
    (
        "TensorrtExecutionProvider",
        "native_calibration_needs_int8",
        {"trt_int8_use_native_calibration_table": "1", "trt_int8_enable": "1"},
        {},
        False,
    ),
    (
        "OpenVINOExecutionProvider",
        "precision_valid_for_device",
        {"device_type": "CPU", "precision": "FP16"},
        {},
        True,
    ),
    (
        "OpenVINOExecutionProvider",
        "precision_valid_for_device",
        {"device_type": "NPU", "precision": "FP32"},
        {},
        True,
    ),
    (
        "OpenVINOExecutionProvider",
        "precision_valid_for_device",
        {"device_type": "HETERO:GPU.0,CPU", "precision": "FP16"},
        {},
        True,
    ),
    (
        "OpenVINOExecutionProvider",
        "precision_valid_for_device",
        {"precision": "FP16"},
        {},
        True,
    ),  # CPU by default
    (
        "OpenVINOExecutionProvider",
        "precision_valid_for_device",
        {"device_type": "GPU.1", "precision": "FP16"},
        {},
        False,
    ),
    (
        "OpenVINOExecutionProvider",
        "precision_valid_for_device",
        {"device_type": "AUTO:GPU,CPU", "precision": "ACCURACY"},
        {},
        False,
    ),
    ("OpenVINOExecutionProvider", "precision_valid_for_device", {"device_type": "NPU"}, {}, False),
    (
        "OpenVINOExecutionProvider",
        "qdq_optimizer_needs_npu_or_gpu",
        {"device_type": "CPU", "enable_qdq_optimizer": "true"},
        {},
        True,
    ),
    (
        "OpenVINOExecutionProvider",
        "qdq_optimizer_needs_npu_or_gpu",
        {"device_type": "NPU", "enable_qdq_optimizer": "true"},
        {},
        False,
    ),
    ("DmlExecutionProvider", "dml_needs_mem_pattern_off", {}, {"enable_mem_pattern": True}, True),
    ("DmlExecutionProvider", "dml_needs_mem_pattern_off", {}, {"enable_mem_pattern": False}, False),
    ("DmlExecutionProvider", "dml_needs_sequential", {}, {"execution_mode": "ORT_PARALLEL"}, True),
    (
        "DmlExecutionProvider",
        "dml_needs_sequential",
        {},
        {"execution_mode": "ORT_SEQUENTIAL"},
        False,
    ),
    (
        "QNNExecutionProvider",
        "htp_options_need_htp",
        {"backend_type": "gpu", "htp_performance_mode": "burst"},
        {},
        True,
    ),
    (
        "QNNExecutionProvider",
        "htp_options_need_htp",
        {"backend_type": "htp", "htp_performance_mode": "burst"},
        {},
        False,
    ),
    ("QNNExecutionProvider", "htp_options_need_htp", {"htp_performance_mode": "burst"}, {}, False),
    ("QNNExecutionProvider", "bf16_needs_soc_model", {"htp_bf16_enable": "1"}, {}, True),
    (
        "QNNExecutionProvider",
        "bf16_needs_soc_model",
        {"htp_bf16_enable": "1", "soc_model": "60"},
        {},
        False,
    ),
]


@pytest.mark.parametrize(
    ("name", "rule", "options", "overrides", "fires"),
    CONSTRAINT_CASES,
    ids=[f"{c[1]}-{'fires' if c[4] else 'quiet'}-{i}" for i, c in enumerate(CONSTRAINT_CASES)],
)
def test_constraint(
    name: str, rule: str, options: dict[str, str], overrides: dict[str, Any], fires: bool
) -> None:
    space = SPACES[name]
    space.validate(options)  # the cases themselves are well-formed options
    session = SessionConfig(providers=((name, options),), **overrides).to_dict()
    found = [v for v in space.violations(options, session) if v.startswith(rule + ":")]
    assert bool(found) == fires, found


def test_every_constraint_has_a_firing_and_a_quiet_case() -> None:
    covered = {(c[0], c[1], c[4]) for c in CONSTRAINT_CASES}
    for space in ALL:
        for rule in space.constraints:
            assert (space.name, rule, True) in covered, f"{rule} never fires in a test"
            assert (space.name, rule, False) in covered, f"{rule} is never quiet in a test"


# -- cache directories ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key", "sub"),
    [
        ("CoreMLExecutionProvider", "ModelCacheDirectory", "coreml"),
        ("TensorrtExecutionProvider", "trt_engine_cache_path", "tensorrt/engines"),
        ("TensorrtExecutionProvider", "trt_timing_cache_path", "tensorrt/timing"),
        ("OpenVINOExecutionProvider", "cache_dir", "openvino"),
    ],
)
def test_runtime_options_put_caches_under_autotunes_directory(
    name: str, key: str, sub: str, tmp_path: Path
) -> None:
    space = SPACES[name]
    stored = points(space, CONTEXTS["static4"])[0]
    out = space.runtime_options(stored, tmp_path)
    assert out[key] == str(tmp_path / sub)
    assert (tmp_path / sub).is_dir()
    assert {k: v for k, v in out.items() if k not in space.cache_options} == stored
    assert key not in space.runtime_options(stored, None)


# -- availability and whole configurations ----------------------------------------------------


def test_only_the_cpu_space_is_available_here() -> None:
    # of the built-in spaces; plugin EPs come once per device they report (tests/test_plugins.py)
    builtin = [s for s in providers.available_spaces() if not isinstance(s, providers.PluginSpace)]
    assert builtin == [SPACES["CPUExecutionProvider"]]


def test_availability_follows_the_installed_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        providers,
        "installed_providers",
        lambda: ["CoreMLExecutionProvider", "AzureExecutionProvider", "CPUExecutionProvider"],
    )
    monkeypatch.setattr(providers, "plugin_candidates", list)
    names = [s.name for s in providers.available_spaces()]
    assert names == ["CPUExecutionProvider", "CoreMLExecutionProvider"]


def test_validate_config_accepts_coreml_with_cpu() -> None:
    config = SessionConfig(
        providers=(
            ("CoreMLExecutionProvider", {"ModelFormat": "MLProgram"}),
            ("CPUExecutionProvider", {}),
        )
    )
    validate_config(config)


def test_validate_config_refuses_dml_with_memory_pattern() -> None:
    config = SessionConfig(
        providers=(("DmlExecutionProvider", {}), ("CPUExecutionProvider", {})),
        enable_mem_pattern=True,
    )
    with pytest.raises(ConfigError, match="dml_needs_mem_pattern_off"):
        validate_config(config)


def test_validate_config_refuses_a_library_path_from_a_database() -> None:
    text = (
        '{"providers": [["TensorrtExecutionProvider", '
        '{"trt_extra_plugin_lib_paths": "/tmp/evil.so"}], ["CPUExecutionProvider", {}]]}'
    )
    with pytest.raises(ConfigError, match="trt_extra_plugin_lib_paths"):
        validate_config(SessionConfig.from_json(text))


def test_device_policies_only_where_a_device_could_be_chosen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import onnxruntime as ort

    from autotune.providers import device_policies

    # with only the CPU EP's device every policy would be the default configuration; a plugin
    # EP's device (the OpenVINO plugin on an Intel CPU, tests/test_plugins.py) makes a choice
    others = [d for d in ort.get_ep_devices() if d.ep_name != "CPUExecutionProvider"]
    assert bool(device_policies()) == bool(others)

    class _Device:
        def __init__(self, name: str) -> None:
            self.ep_name = name

    monkeypatch.setattr(
        ort, "get_ep_devices", lambda: [_Device("CPUExecutionProvider"), _Device("X")]
    )
    assert "PREFER_NPU" in device_policies() and "MAX_PERFORMANCE" in device_policies()


def test_policy_configuration_builds_a_real_session(tmp_path: Path) -> None:
    import onnxruntime as ort

    from autotune.build import build_session
    from tests.models import mlp

    config = SessionConfig(device_policy="PREFER_NPU")
    session = build_session(mlp(tmp_path / "m.onnx"), config)  # registers the plugins first
    devices = {d.ep_name for d in ort.get_ep_devices()}
    if devices == {"CPUExecutionProvider"}:
        assert session.get_providers() == ["CPUExecutionProvider"]  # no NPU here: ORT picks CPU
    else:  # ORT's policy may pick a plugin's CPU device (OpenVINO on an Intel CPU)
        assert session.get_providers()[0] in devices


# -- CoreML against the onnxruntime and macOS versions that apply its options -----------------


@pytest.mark.parametrize(
    ("version", "searched"),
    [("1.20.1", False), ("1.20.0", False), ("1.21.0", True), ("1.22.0.dev20250401", True)],
)
def test_coreml_is_searched_only_where_ort_reads_its_options(
    monkeypatch: pytest.MonkeyPatch, version: str, searched: bool
) -> None:
    # ORT 1.20's Python binding reads only a "flags" entry for CoreML (its macOS wheel holds none
    # of the option names); the stand-in is an ORT build with CoreML, which Linux cannot have
    monkeypatch.setattr(
        providers,
        "installed_providers",
        lambda: ["CoreMLExecutionProvider", "CPUExecutionProvider"],
    )
    monkeypatch.setattr(providers, "plugin_candidates", list)
    monkeypatch.setattr(ort, "__version__", version)
    names = [s.name for s in providers.available_spaces()]
    assert ("CoreMLExecutionProvider" in names) == searched
    assert "CPUExecutionProvider" in names


def test_profile_compute_plan_is_never_applied_from_a_stored_configuration() -> None:
    config = SessionConfig(
        providers=(
            ("CoreMLExecutionProvider", {"ModelFormat": "MLProgram", "ProfileComputePlan": "1"}),
            ("CPUExecutionProvider", {}),
        )
    )
    with pytest.raises(ConfigError, match="ProfileComputePlan is for debugging only"):
        validate_config(config)
    for ctx in CONTEXTS.values():
        assert all(
            "ProfileComputePlan" not in o for o in points(SPACES["CoreMLExecutionProvider"], ctx)
        )


@pytest.mark.parametrize(
    ("macos", "searched"),
    [
        ("14.3.1", False),
        ("14.0", False),
        ("13.6", False),
        ("14.4", True),
        ("15.1", True),
        ("26", True),
    ],
)
def test_specialization_strategy_is_searched_from_macos_14_4(macos: str, searched: bool) -> None:
    # Core ML ignores it before macOS 14.4 (ORT's model.mm: "iOS 17.4+/macOS 14.4+ or later is
    # required to ConfigureOptimizationHints"); the search's context carries platform.mac_ver()
    ctx = SearchContext(cores=4, system="Darwin", macos_version=macos)
    found = points(SPACES["CoreMLExecutionProvider"], ctx)
    assert all(("SpecializationStrategy" in o) == searched for o in found)
    # ModelFormat x RequireStaticInputShapes x (4 units, low precision on the 2 GPU ones)
    assert len(found) == 2 * 2 * 6 * (2 if searched else 1)


def test_the_search_context_reads_this_macs_version(monkeypatch: pytest.MonkeyPatch) -> None:
    import platform

    monkeypatch.setattr(platform, "mac_ver", lambda: ("14.2.1", ("", "", ""), "arm64"))
    assert SearchContext().macos_version == "14.2.1"
    monkeypatch.setattr(platform, "mac_ver", lambda: ("", ("", "", ""), ""))  # Linux, Windows
    assert SearchContext().macos_version is None


# -- the first trial of each provider ---------------------------------------------------------


@pytest.mark.parametrize("ctx", CONTEXTS.values(), ids=CONTEXTS.keys())
@pytest.mark.parametrize("space", ALL, ids=IDS)
def test_the_default_point_is_a_point_of_the_space(
    space: ProviderSpace, ctx: SearchContext
) -> None:
    """What a search tries first for each provider: parameters of its own space, each option
    at its documented default; the sampler fills in only what has no default."""
    point = space.default_point(ctx)
    assert all(name.startswith(space.short + ".") for name in point), point
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"provider": space.name, **point})
    trial = study.ask()
    config = suggest_config(trial, ctx, [space], levels=["ORT_ENABLE_ALL"])
    validate_config(config)
    options = dict(config.providers[0][1])
    for key, option in space.options.items():
        if key in options and option.default is not None:
            assert options[key].lower() == option.default.lower(), key


def test_openvino_is_tried_first_in_its_latency_setup() -> None:
    ctx = CONTEXTS["static4"]
    point = SPACES_BY_SHORT["openvino"].default_point(ctx)
    options = SPACES_BY_SHORT["openvino"].suggest(optuna.trial.FixedTrial(point), ctx)
    assert options == {
        "device_type": "CPU",
        "precision": "FP32",
        "num_streams": "1",
        "num_of_threads": str(ctx.cores),
    }


def test_cuda_is_tried_first_with_ort_s_defaults() -> None:
    point = SPACES_BY_SHORT["cuda"].default_point(CONTEXTS["static4"])
    assert point["cuda.cudnn_conv_algo_search"] == "EXHAUSTIVE"
    assert point["cuda.use_tf32"] == "1" and point["cuda.prefer_nhwc"] == "0"
