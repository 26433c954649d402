"""Long runs: a soak in a fresh process with varying shapes flags the configuration whose RSS
grows and not the one that stays flat; the flags' rules; ``--shape`` ranges; the CLI."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from autotune.commands.cli import cli
from autotune.config import DEFAULT_CONFIG
from autotune.errors import ShapeError
from autotune.serving.soak import SoakWindow, judge, parse_shape_ranges, soak


def sequence_model(path: Path) -> Path:
    """x[batch, seq, 64] -> MatMul 256 -> Relu -> MatMul 64 -> Softmax: two free dimensions."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array((rng.standard_normal((64, 256)) / 8).astype(np.float32), "w1")
    w2 = numpy_helper.from_array((rng.standard_normal((256, 64)) / 16).astype(np.float32), "w2")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "w2"], ["m"]),
            helper.make_node("Softmax", ["m"], ["y"], axis=-1),
        ],
        "sequence",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 64])],
        [w1, w2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.xfail(
    strict=False,
    reason="glibc's heap does not always grow without the arena (CI, 2026-12-03: +1.5 MB in 4 s, "
    "where earlier runs grew 64-124 MB): the growing case is not yet produced reliably",
)
def test_a_soak_flags_the_growing_configuration_and_not_the_flat_one(tmp_path: Path) -> None:
    """Batch and sequence length drawn from 1..16 x 1..512, run after run. Without ORT's
    arena every intermediate buffer of every size goes through malloc, and the heap keeps
    growing (measured here: +64 to +124 MB in 4-5 s); with the arena and without per-shape
    memory patterns it stays within about a megabyte after warm-up. (ORT's defaults, arena and
    memory patterns, grew by 1 to 11 MB in such runs: too close to call for a test.) Each is
    measured in its own process."""
    model = sequence_model(tmp_path / "sequence.onnx")
    ranges = parse_shape_ranges(["x=1..16x1..512x64"])
    no_arena = replace(DEFAULT_CONFIG, enable_cpu_mem_arena=False)
    grows = soak(model, no_arena, 4, ranges, window_s=0.5)
    flat = soak(model, replace(DEFAULT_CONFIG, enable_mem_pattern=False), 4, ranges, window_s=0.5)

    def memory(flags: list[str]) -> list[str]:  # drift flags follow the machine's other load
        return [f for f in flags if f.startswith("memory:")]

    assert len(memory(grows.flags)) == 1, grows.to_dict()
    assert memory(flat.flags) == [], flat.to_dict()
    assert len(grows.windows) >= 7 and (grows.growth_mb or 0) > (flat.growth_mb or 0)


def _windows(p50: list[float], rss: list[float]) -> list[SoakWindow]:
    return [
        SoakWindow(float(i + 1), 1000, 1000 * (i + 1), p, p * 1.2, r)
        for i, (p, r) in enumerate(zip(p50, rss, strict=True))
    ]


def test_the_flags_follow_their_stated_rules() -> None:
    steady = judge("steady", _windows([1.0] * 10, [100.0] * 10))
    assert steady.flags == [] and steady.drift_ratio == 1.0
    slower = judge("slower", _windows([1.0] * 5 + [1.3] * 5, [100.0] * 10))
    assert [f.split(":")[0] for f in slower.flags] == ["drift"]
    # growth during warm-up (the first 20% of the windows) is not counted
    warm = judge("warm-up", _windows([1.0] * 10, [50.0, 90.0] + [100.0] * 8))
    assert warm.flags == []
    grows = judge("grows", _windows([1.0] * 10, [100.0 + 5 * i for i in range(10)]))
    assert [f.split(":")[0] for f in grows.flags] == ["memory"]
    assert judge("short", _windows([1.0, 9.0], [1.0, 99.0])).flags == []


def test_shape_ranges_parse_and_refuse_nonsense() -> None:
    assert parse_shape_ranges(["x=1..512x16", "y=3"]) == {
        "x": ((1, 512), (16, 16)),
        "y": ((3, 3),),
    }
    for bad in ("x", "x=", "x=1..ax16", "x=0..4", "x=9..4"):
        with pytest.raises(ShapeError, match="--shape"):
            parse_shape_ranges([bad])


def test_the_soak_command_prints_windows_and_stores_its_flags(mlp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["soak", str(mlp_path), "--seconds", "1.5", "--window", "0.5", "--shape", "x=1..8x16"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "CPU ALL t0"
    assert lines[-1] in ("stable: no drift, no memory growth",) or lines[-1].startswith("flag: ")
    from autotune.serving.results import SOAK, latest_verdict

    record = latest_verdict(mlp_path, objective=SOAK)
    assert record is not None and record.pick_label == "CPU ALL t0"
    assert isinstance(record.flags, dict) and "CPU ALL t0" in record.flags
    shown = CliRunner().invoke(cli, ["show", str(mlp_path)])
    assert shown.exit_code == 0, shown.output
    serving = shown.output.split("serving (autotune.serving):\n")[1].splitlines()
    assert serving[0].startswith(f"  soak: {record.outcome}, CPU ALL t0 (")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seconds", "0"], "Error: --seconds must be a positive number, not 0\n"),
        (
            ["--seconds", "1", "--window", "1"],
            "Error: --seconds must cover at least 3 windows (3 s)\n",
        ),
        (["--shape", "x=1..ax16"], None),
        (
            ["--shape", "x=1..4x17"],
            "Error: --shape x: dimension 1 is fixed at 16 in the model (batchx16); only "
            "symbolic dimensions can vary\n",
        ),
        (["--shape", "y=1..4x16"], "Error: --shape names unknown input y; the inputs: x\n"),
    ],
)
def test_soak_refuses_bad_input_in_one_line(
    mlp_path: Path, args: list[str], message: str | None
) -> None:
    result = CliRunner().invoke(cli, ["soak", str(mlp_path), *args])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and result.output.startswith("Error: --")
    if message:
        assert result.output == message
