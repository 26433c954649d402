"""Serving on the command line and in the store: bad input in one line, the serving table
against its record, and the long-run rule that a flagged pick gives way."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from autotune.commands.cli import cli
from autotune.measure.verdict import PICK, Entry, Verdict
from autotune.serving.sustained import rerank


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--qps", "3"], "--qps applies to --objective throughput; add it or drop --qps"),
        (
            ["--objective", "throughput", "--arrival", "poisson"],
            "--arrival poisson needs --qps, the requests per second to send",
        ),
        (
            ["--objective", "throughput", "--qps", "5"],
            "--qps sets the rate of --arrival poisson; add --arrival poisson",
        ),
        (
            ["--objective", "throughput", "--concurrency", "0"],
            "--concurrency must be at least 1, not 0",
        ),
        (
            ["--objective", "throughput", "--p99-budget", "-1"],
            "--p99-budget must be a positive number, not -1",
        ),
        (
            ["--warm-budget", "5"],
            "--warm-budget applies to --objective coldstart; add it or drop it",
        ),
        (
            ["--sustained-shape", "x=1..8x16"],
            "--sustained-shape sets the shapes of --sustained; add --sustained S",
        ),
        (
            ["--sustained", "5", "--sustained-shape", "y=1..8x16"],
            "--sustained-shape names unknown input y; the inputs: x",
        ),
        (
            ["--sustained", "5", "--sustained-shape", "x=1..8x1..16"],
            "--sustained-shape x: dimension 1 is fixed at 16 in the model (batchx16); only "
            "symbolic dimensions can vary",
        ),
        (
            ["--objective", "coldstart", "--sustained", "30"],
            "--sustained runs a latency search's finalists; for --objective coldstart run "
            "`autotune soak` on its pick instead",
        ),
    ],
)
def test_serving_options_that_do_not_fit_say_so_in_one_line(
    mlp_path: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(cli, ["search", str(mlp_path), *args])
    assert result.exit_code == 1
    assert result.output == f"Error: {message}\n"


def test_best_at_a_concurrency_without_a_verdict_names_the_search(mlp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["best", str(mlp_path), "--concurrency", "4"])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: no throughput verdict for {mlp_path} at concurrency 4 on this chip; run: "
        f"autotune search {mlp_path} --objective throughput --concurrency 4\n"
    )


def test_a_throughput_search_of_a_missing_model_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["search", str(tmp_path / "no.onnx"), "--objective", "throughput"]
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1


def test_the_serving_table_holds_the_record_columns(tmp_path: Path) -> None:
    from dataclasses import fields

    from autotune.store.database import open_writable
    from autotune.store.records import ServingRecord
    from autotune.store.serving import COLUMN_TYPES

    db = open_writable(tmp_path / "new.db")
    stored = db["serving"].columns_dict
    assert [f.name for f in fields(ServingRecord)] == list(stored)
    assert stored == COLUMN_TYPES
    db.conn.close()


def _verdict(eligible: list[bool]) -> Verdict:
    entries = [Entry(speedup=1.0, speedup_low=1.0)]
    entries += [
        Entry(speedup=1.5, speedup_low=1.2 + i / 10, eligible=e) for i, e in enumerate(eligible)
    ]
    return Verdict(PICK, "beat", len(eligible), entries, 0.01, [1.0], 6, 0)


def test_a_flagged_pick_gives_way_to_a_stable_finalist_then_to_the_default() -> None:
    labels = ["default", "a", "b"]
    memory = ["memory: RSS +70 MB after warm-up"]
    v, _ = rerank(_verdict([True, True]), labels, {"b": memory}, 60)
    assert (v.outcome, v.pick_index) == ("pick", 1) and "gave way" in v.reason
    v, _ = rerank(_verdict([False, True]), labels, {"b": memory}, 60)
    assert (v.outcome, v.pick_index) == ("default", 0)
    assert v.reason.startswith("the pick was flagged over a 60 s run (memory: RSS")
    v, _ = rerank(_verdict([False, True]), labels, {"b": memory, "default": memory}, 60)
    assert (v.outcome, v.pick_index) == ("pick", 2)  # everything flagged: the pick stands
    v, _ = rerank(_verdict([True, True]), labels, {"a": memory}, 60)
    assert (v.outcome, v.pick_index) == ("pick", 2)  # a stable pick is untouched


def test_a_sustained_search_soaks_every_finalist_and_stores_it(mlp_path: Path) -> None:
    """``--sustained``: after the head-to-head, each finalist (ORT's defaults first) runs for
    the given seconds in its own process; the soaks are stored with the search's verdict."""
    from autotune.chip import current_chip
    from autotune.digest import model_digest
    from autotune.store.database import Store
    from autotune.tuning.search import SearchOptions, run_search
    from tests.conftest import FAST

    run_search(mlp_path, SearchOptions(trials=3, protocol=FAST, seed=1, sustained=1.5))
    with Store.open(None) as store:
        search = store.latest_search(model_digest(mlp_path), current_chip().chip_id)
    assert search is not None and isinstance(search.verdict, dict)
    compared = search.verdict["compared"]
    assert len(compared) >= 2
    for entry in compared:
        soaked = entry["sustained"]
        assert soaked["label"] == entry["label"] and isinstance(soaked["flags"], list)
        assert len(soaked["windows"]) >= 5


def test_sustained_runs_over_shape_ranges_move_the_pick_off_a_growing_finalist(
    tmp_path: Path,
) -> None:
    """``--sustained-shape``: the finalists' runs draw each shape from the ranges. The OpenVINO
    plugin EP, made the pick here, grows with every new shape (hundreds of MB): flagged, it
    gives way to the stable finalist (ORT's arena without memory patterns). Real soaks."""
    from autotune.config import DEFAULT_CONFIG
    from autotune.serving.soak import parse_shape_ranges
    from autotune.serving.sustained import recheck
    from tests import models

    plugin = models.openvino_plugin_config()
    if plugin is None:
        pytest.skip("the OpenVINO plugin EP does not register a CPU device on this machine")
    model = models.sequence(tmp_path / "sequence.onnx")
    stable = replace(DEFAULT_CONFIG, enable_mem_pattern=False)  # ORT's defaults can grow a little
    compared: list[dict[str, Any]] = [
        {"config": DEFAULT_CONFIG.to_json(), "label": "default"},
        {"config": stable.to_json(), "label": "no memory patterns"},
        {"config": plugin.to_json(), "label": "openvino"},
    ]
    ranges = parse_shape_ranges(["x=1..16x1..512x64"])
    verdict, flags = recheck(model, _verdict([True, True]), compared, 4, "x=1x8x64", ranges)
    assert [f.split(":")[0] for f in flags["openvino"] if f.startswith("memory")] == ["memory"]
    assert not [f for f in flags["no memory patterns"] if f.startswith("memory")]
    assert (verdict.outcome, verdict.pick_index) == ("pick", 1), verdict.reason
    assert "gave way" in verdict.reason
    assert compared[2]["sustained"]["growth_mb"] > 10
