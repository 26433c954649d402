"""Configurations as code to paste: the Python snippet builds exactly the session autotune
builds (executed against a real model), the Swift snippet is pinned by golden strings, the JSON
round-trips."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from autotune.build import session_options
from autotune.config import DEFAULT_CONFIG, SESSION_ENTRIES, SessionConfig
from autotune.errors import ConfigError
from autotune.output.snippets import snippet, unsupported
from tests import models

COREML = "CoreMLExecutionProvider"
IMPORT = "import OnnxRuntimeBindings  // Swift Package Manager (CocoaPods: import onnxruntime_objc)"

PYTHON_CONFIGS = {
    "default": DEFAULT_CONFIG,
    "basic-1-thread-spin-off": SessionConfig(
        graph_optimization_level="ORT_ENABLE_BASIC",
        intra_op_num_threads=1,
        session_entries={"session.intra_op.allow_spinning": "0"},
    ),
    "extended-2-threads-spin-off": SessionConfig(
        graph_optimization_level="ORT_ENABLE_EXTENDED",
        intra_op_num_threads=2,
        session_entries={
            "session.intra_op.allow_spinning": "0",
            "session.disable_prepacking": "1",
        },
    ),
    "parallel": SessionConfig(
        graph_optimization_level="ORT_DISABLE_ALL",
        execution_mode="ORT_PARALLEL",
        inter_op_num_threads=2,
        enable_mem_pattern=False,
        enable_cpu_mem_arena=False,
        session_entries={"session.inter_op.allow_spinning": "0"},
    ),
    "layout-free-dim": SessionConfig(
        graph_optimization_level="ORT_ENABLE_LAYOUT",
        free_dimension_overrides={"batch": 3},
    ),
}


def _entry(options: Any, key: str) -> str | None:
    try:
        return str(options.get_session_config_entry(key))
    except RuntimeError:  # ORT: "SessionOptions does not have configuration with key"
        return None


def _settings(options: Any) -> dict[str, Any]:
    return {
        "graph_optimization_level": options.graph_optimization_level,
        "execution_mode": options.execution_mode,
        "intra_op_num_threads": options.intra_op_num_threads,
        "inter_op_num_threads": options.inter_op_num_threads,
        "enable_mem_pattern": options.enable_mem_pattern,
        "enable_cpu_mem_arena": options.enable_cpu_mem_arena,
        **{key: _entry(options, key) for key in SESSION_ENTRIES},
    }


@pytest.mark.parametrize("name", sorted(PYTHON_CONFIGS))
def test_python_snippet_builds_the_same_session_options(name: str, tmp_path: Path) -> None:
    config = PYTHON_CONFIGS[name]
    model = models.mlp(tmp_path / "mlp.onnx")  # x[batch, 16]: batch is symbolic
    code = snippet(config, "python", str(model))
    namespace: dict[str, Any] = {}
    exec(compile(code, "<snippet>", "exec"), namespace)
    session = namespace["session"]
    assert _settings(session.get_session_options()) == _settings(session_options(config))
    assert session.get_providers() == ["CPUExecutionProvider"]
    batch = config.canonical().free_dimension_overrides.get("batch", "batch")
    assert session.get_inputs()[0].shape == [batch, 16]


def test_python_snippet_writes_only_what_differs_from_the_defaults() -> None:
    assert snippet(DEFAULT_CONFIG, "python") == (
        "import onnxruntime as ort\n"
        "\n"
        "so = ort.SessionOptions()\n"
        "session = ort.InferenceSession(\n"
        '    "model.onnx",\n'
        "    sess_options=so,\n"
        '    providers=["CPUExecutionProvider"],\n'
        ")\n"
    )


def test_python_snippet_passes_provider_options_as_stored() -> None:
    config = SessionConfig(
        providers=((COREML, {"MLComputeUnits": "CPUAndGPU", "ModelFormat": "MLProgram"}),)
    )
    code = snippet(config, "python")
    assert (
        '        ("CoreMLExecutionProvider", {"MLComputeUnits": "CPUAndGPU", '
        '"ModelFormat": "MLProgram"}),\n'
        '        "CPUExecutionProvider",\n'
    ) in code
    compile(code, "<snippet>", "exec")


def test_swift_snippet_for_a_coreml_configuration() -> None:
    config = SessionConfig(
        providers=(
            (
                COREML,
                {
                    "ModelFormat": "MLProgram",
                    "MLComputeUnits": "CPUAndNeuralEngine",
                    "RequireStaticInputShapes": "1",
                    "EnableOnSubgraphs": "0",
                },
            ),
        ),
        intra_op_num_threads=2,
    )
    assert snippet(config, "swift", "Model.onnx") == (
        f"{IMPORT}\n"
        "\n"
        "let env = try ORTEnv(loggingLevel: .warning)\n"
        "let options = try ORTSessionOptions()\n"
        "try options.setIntraOpNumThreads(2)\n"
        '// optional: "ModelCacheDirectory": <a directory your app owns> lets CoreML\n'
        "// reuse compiled models (clear it when the model file changes)\n"
        'try options.appendExecutionProvider("CoreML", providerOptions: [\n'
        '    "EnableOnSubgraphs": "0",\n'
        '    "MLComputeUnits": "CPUAndNeuralEngine",\n'
        '    "ModelFormat": "MLProgram",\n'
        '    "RequireStaticInputShapes": "1",\n'
        "])\n"
        'let session = try ORTSession(env: env, modelPath: "Model.onnx", sessionOptions: options)\n'
    )
    assert unsupported(config, "swift") == []


def test_swift_snippet_for_a_cpu_configuration() -> None:
    config = SessionConfig(
        graph_optimization_level="ORT_DISABLE_ALL",
        intra_op_num_threads=4,
        session_entries={
            "session.intra_op.allow_spinning": "0",
            "session.set_denormal_as_zero": "1",
        },
    )
    assert snippet(config, "swift") == (
        f"{IMPORT}\n"
        "\n"
        "let env = try ORTEnv(loggingLevel: .warning)\n"
        "let options = try ORTSessionOptions()\n"
        "try options.setGraphOptimizationLevel(.none)\n"
        "try options.setIntraOpNumThreads(4)\n"
        'try options.addConfigEntry(withKey: "session.intra_op.allow_spinning", value: "0")\n'
        'try options.addConfigEntry(withKey: "session.set_denormal_as_zero", value: "1")\n'
        'let session = try ORTSession(env: env, modelPath: "model.onnx", sessionOptions: options)\n'
    )


def test_swift_snippet_names_what_the_objc_api_cannot_set() -> None:
    config = SessionConfig(
        providers=(("CUDAExecutionProvider", {"use_tf32": "0"}),),
        graph_optimization_level="ORT_ENABLE_LAYOUT",
        execution_mode="ORT_PARALLEL",
        inter_op_num_threads=2,
        enable_cpu_mem_arena=False,
        free_dimension_overrides={"batch": 1},
    )
    gaps = [
        "execution_mode = ORT_PARALLEL, inter_op_num_threads = 2",
        "enable_cpu_mem_arena = false",
        "free dimension override batch = 1",
        'provider CUDAExecutionProvider {"use_tf32": "0"} (not in ONNX Runtime\'s Apple packages)',
    ]
    assert unsupported(config, "swift") == gaps
    assert unsupported(config, "python") == []
    code = snippet(config, "swift")
    # ORTGraphOptimizationLevelLayout, in the Objective-C API since ORT 1.23
    assert "try options.setGraphOptimizationLevel(.layout)  // onnxruntime >= 1.23\n" in code
    assert "appendExecutionProvider" not in code
    for gap in gaps:
        assert f"//   {gap}\n" in code


def test_no_format_emits_cache_paths() -> None:
    config = SessionConfig(
        providers=((COREML, {"ModelFormat": "MLProgram", "ModelCacheDirectory": "/secret/x"}),)
    )
    for fmt in ("python", "swift", "json"):
        assert "/secret/x" not in snippet(config, fmt)


@pytest.mark.parametrize("name", sorted(PYTHON_CONFIGS))
def test_json_snippet_round_trips(name: str) -> None:
    config = PYTHON_CONFIGS[name]
    back = SessionConfig.from_dict(json.loads(snippet(config, "json")))
    assert back.config_id == config.config_id


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown snippet format 'yaml'; use one of python"):
        snippet(DEFAULT_CONFIG, "yaml")


def test_snippets_do_not_import_optuna() -> None:
    code = (
        "import sys\n"
        "from autotune.config import DEFAULT_CONFIG\n"
        "from autotune.output.snippets import snippet\n"
        "for f in ('python', 'swift', 'json'): snippet(DEFAULT_CONFIG, f)\n"
        "print('optuna' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "False"
