"""Long runs: a soak in a fresh process with varying shapes flags the configuration whose RSS
grows and not the one that stays flat; the flags' rules; ``--shape`` ranges; the CLI."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from autotune.commands.cli import cli
from autotune.config import DEFAULT_CONFIG
from autotune.errors import ShapeError
from autotune.serving.soak import SoakWindow, judge, parse_shape_ranges, soak
from tests import models


def test_a_soak_flags_the_growing_configuration_and_not_the_flat_one(tmp_path: Path) -> None:
    """Batch and sequence length drawn from 1..16 x 1..512, run after run, each configuration
    in its own process. The OpenVINO plugin EP (``onnxruntime-ep-openvino``, a dependency on
    x86-64) grows with every new input shape: measured here, +200 MB in 4 s, about
    0.4 MB a run, which is what the soak is for. ORT's CPU EP with its arena and without
    per-shape memory patterns stays within about a megabyte after warm-up. (Without the arena,
    glibc's heap grew 64-124 MB on one machine and 1.5 MB on another: not a growth a test can
    rely on.)"""
    grower = models.openvino_plugin_config()
    if grower is None:
        pytest.skip("the OpenVINO plugin EP does not register a CPU device on this machine")
    model = models.sequence(tmp_path / "sequence.onnx")
    ranges = parse_shape_ranges(["x=1..16x1..512x64"])
    grows = soak(model, grower, 4, ranges, window_s=0.5)
    flat = soak(model, replace(DEFAULT_CONFIG, enable_mem_pattern=False), 4, ranges, window_s=0.5)

    def memory(flags: list[str]) -> list[str]:  # drift flags follow the machine's other load
        return [f for f in flags if f.startswith("memory:")]

    assert len(memory(grows.flags)) == 1, grows.to_dict()
    assert memory(flat.flags) == [], flat.to_dict()
    assert len(grows.windows) >= 7 and (grows.growth_mb or 0) > 10 * max(flat.growth_mb or 0, 1)


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


def test_a_named_dimension_takes_one_value_in_every_input_per_run(tmp_path: Path) -> None:
    """input_ids[batch, seq] and attention_mask[batch, seq]: each run draws batch and seq once
    for both (drawn apart, the two inputs disagree and ORT fails on the first Add); a fixed
    dimension stays; ranges of one named dimension that do not overlap are refused."""
    import random

    from autotune.model import load_model_info
    from autotune.serving.soak import check_ranges, shape_drawer

    info = load_model_info(models.sequence(tmp_path / "sequence.onnx"))
    twin = type("Info", (), {"inputs": [*info.inputs, replace(info.inputs[0], name="mask")]})()
    ranges = parse_shape_ranges(["x=1..16x1..512x64", "mask=4..32x1..512x64"])
    check_ranges(twin, ranges)
    draw = shape_drawer(twin, ranges)
    rng = random.Random(0)
    shapes = [draw(rng) for _ in range(200)]
    assert all(s["x"] == s["mask"] for s in shapes)
    assert {s["x"][0] for s in shapes} <= set(range(4, 17))  # where 1..16 and 4..32 overlap
    assert len({s["x"][1] for s in shapes}) > 50 and {s["x"][2] for s in shapes} == {64}
    apart = parse_shape_ranges(["x=1..4x1..8x64", "mask=8..16x1..8x64"])
    with pytest.raises(ShapeError, match="dimension 'batch' is in several inputs"):
        check_ranges(twin, apart)


def test_best_names_the_flags_of_the_models_long_runs(mlp_path: Path) -> None:
    """``best`` (no --concurrency) ends with the flagged soaks of this model; none, no line."""
    from autotune.config import SessionConfig
    from autotune.serving.results import SOAK, ServingKey, store_verdict
    from tests.test_resolver import _store_pick

    _store_pick(mlp_path, SessionConfig(intra_op_num_threads=1))
    quiet = CliRunner().invoke(cli, ["best", str(mlp_path)])
    assert quiet.exit_code == 0, quiet.output
    assert "long runs" not in quiet.output
    store_verdict(
        None,
        ServingKey(mlp_path, SOAK),
        outcome="flagged",
        pick="{}",
        pick_label="CPU ALL t0",
        flags={"CPU ALL t0": ["memory: RSS +90.0 MB after warm-up"]},
    )
    shown = CliRunner().invoke(cli, ["best", str(mlp_path)])
    assert shown.exit_code == 0, shown.output
    tail = shown.output.split("long runs (autotune soak):\n")[1]
    assert "flag (CPU ALL t0): memory: RSS +90.0 MB after warm-up" in tail
