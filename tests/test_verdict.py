"""The verdict: each candidate's interval with the processes' spread in it, the decision under
load, and what a search then stores."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from pathlib import Path

import pytest

from autotune.config import DEFAULT_CONFIG, SessionConfig
from autotune.measure.conditions import Conditions, LoadLevel
from autotune.measure.verdict import DEFAULT, INCONCLUSIVE, PICK, Round, decide, t_quantile
from autotune.store.database import Store
from autotune.store.records import SearchRecord, TrialRecord
from autotune.tuning.search import SearchOptions, run_search
from tests import faults
from tests.conftest import FAST


def _rounds(
    factors: list[list[float]], per_process: int = 8, noise: float = 0.01, seed: int = 3
) -> list[Round]:
    """Rounds of a head-to-head: factors[g][i] is contender i's latency in generation g relative
    to the reference (1.0 = as fast as the reference process)."""
    rng = random.Random(seed)
    out = []
    for g, row in enumerate(factors):
        for _ in range(per_process):
            ref = 10.0 * (1 + rng.uniform(-noise, noise))
            medians = tuple(10.0 * f * (1 + rng.uniform(-noise, noise)) for f in row)
            out.append(Round(g, medians, ref))
    return out


def _processes(
    truths: list[float], processes: int, spread: float, per_process: int = 8, seed: int = 5
) -> list[Round]:
    """A head-to-head whose processes differ for their whole life: contender i's latency is
    truths[i] (relative to the reference) times a per-process factor drawn once per process
    (log-normal, sd ``spread``), with 1% round-to-round noise."""
    rng = random.Random(seed)
    out = []
    for g in range(processes):
        effects = [math.exp(rng.gauss(0.0, spread)) for _ in truths]
        for _ in range(per_process):
            ref = 10.0 * (1 + rng.uniform(-0.01, 0.01))
            medians = tuple(
                10.0 * t * e * (1 + rng.uniform(-0.01, 0.01))
                for t, e in zip(truths, effects, strict=True)
            )
            out.append(Round(g, medians, ref))
    return out


LIGHT = Conditions.measured(0.30, 0.0, cores=2, threads=2, slowdown=1.3)


def test_a_3x_candidate_under_a_10_percent_process_spread_is_picked() -> None:
    rounds = _processes([1.0, 1 / 3], processes=3, spread=0.07)
    v = decide(rounds, contenders=2, min_gain=0.03)
    assert v.aa_spread is not None and v.aa_spread > 0.05  # the default's processes disagree
    assert v.outcome == PICK and v.pick_index == 1, v.reason
    e = v.entries[1]
    assert e.speedup_low is not None and e.speedup_high is not None
    assert 2.4 < e.speedup_low < 3 < e.speedup_high
    assert v.open == []


def test_a_1_02x_candidate_under_a_10_percent_spread_is_not_picked_even_with_20_processes() -> None:
    for processes in (3, 20):
        v = decide(
            _processes([1.0, 1 / 1.02], processes=processes, spread=0.07),
            contenders=2,
            min_gain=0.03,
        )
        assert v.outcome == INCONCLUSIVE and v.pick_index is None, v.reason
        assert v.open == [1]  # more processes could still decide it
        assert v.resolution is not None and f"no candidate gains more than {v.resolution:.1%}" in (
            v.reason
        )
        assert v.generations == processes


def test_20_processes_with_no_real_gain_give_the_default_with_its_resolution() -> None:
    """A 4% spread between processes (max/min), no real gain: 3 processes leave the question
    open; 20 close it, and the verdict says how large a gain it rules out."""
    few = decide(_processes([1.0, 1.0], processes=3, spread=0.011), contenders=2, min_gain=0.03)
    assert few.outcome == INCONCLUSIVE and few.open == [1]
    v = decide(_processes([1.0, 1.0], processes=20, spread=0.011), contenders=2, min_gain=0.03)
    assert v.aa_spread is not None and 0.02 < v.aa_spread < 0.08
    assert v.outcome == DEFAULT and v.pick_index == 0 and v.speedup == 1.0, v.reason
    assert v.resolution is not None and v.resolution < 0.03
    assert f"none gains more than {v.resolution:.1%}" in v.reason
    assert v.entries[1].state == "below"


def test_no_decision_before_the_planned_processes() -> None:
    rounds = _processes([1.0, 0.5], processes=2, spread=0.01)
    early = decide(rounds, contenders=2, min_gain=0.03, min_generations=3)
    assert early.outcome == INCONCLUSIVE and early.open == [1]
    # unless the time ran out: then what there is decides
    late = decide(rounds, contenders=2, min_gain=0.03, min_generations=3, complete=False)
    assert late.outcome == PICK


def test_a_thread_setting_pick_measured_under_load_is_held() -> None:
    rounds = _processes([1.0, 1 / 1.6], processes=3, spread=0.02)
    held = decide(
        rounds, contenders=2, min_gain=0.03, conditions=LIGHT, changes_threads=[False, True]
    )
    assert held.outcome == INCONCLUSIVE and held.held == 1 and held.pick_index is None
    assert "held" in held.reason and "light load" in held.reason
    assert held.open == []  # more processes under the same load cannot release it
    quiet = decide(rounds, contenders=2, min_gain=0.03, changes_threads=[False, True])
    assert quiet.outcome == PICK


def test_what_counts_as_a_thread_setting() -> None:
    """Held under load: ORT's thread settings, and a provider narrowing the threads (fewer than
    ORT's pool, a thread per physical core, or several streams). Not held: another provider in
    its latency setup, every core in one stream (the OpenVINO EP and the OpenVINO plugin as
    their first trial measures them)."""
    from autotune.tuning.head_to_head import changes_threads

    def provider(name: str, **options: str) -> SessionConfig:
        return dataclasses.replace(DEFAULT_CONFIG, providers=((name, options),))

    def plugin(props: dict[str, str]) -> SessionConfig:
        return provider("OpenVINOExecutionProvider", load_config=json.dumps({"CPU": props}))

    assert not changes_threads(DEFAULT_CONFIG, cores=4)
    assert changes_threads(dataclasses.replace(DEFAULT_CONFIG, intra_op_num_threads=1), cores=4)
    latency = provider("OpenVINOExecutionProvider", num_of_threads="4", num_streams="1")
    assert not changes_threads(latency, cores=4)
    fewer = provider("OpenVINOExecutionProvider", num_of_threads="2", num_streams="1")
    assert changes_threads(fewer, cores=4)
    streams = provider("OpenVINOExecutionProvider", num_of_threads="4", num_streams="2")
    assert changes_threads(streams, cores=4)
    assert not changes_threads(plugin({"INFERENCE_NUM_THREADS": "4", "NUM_STREAMS": "1"}), cores=4)
    assert changes_threads(plugin({"INFERENCE_NUM_THREADS": "1"}), cores=4)
    assert changes_threads(plugin({"NUM_STREAMS": "2"}), cores=4)
    assert not changes_threads(provider("CUDAExecutionProvider", device_id="0"), cores=4)


def test_a_provider_pick_under_light_load_stands_when_it_clears_the_widened_margin() -> None:
    """The OpenVINO case: 1.55x from another provider, measured while another program used 0.3
    of a core and the reference ran 1.3x its floor: the margin becomes 1.03 x 1.3, and 1.55x
    clears it. A 1.2x gain under the same load does not: inconclusive, the load named."""
    big = decide(
        _processes([1.0, 1 / 1.55], processes=3, spread=0.02),
        contenders=2, min_gain=0.03, conditions=LIGHT,
    )  # fmt: skip
    assert big.outcome == PICK and big.pick_index == 1, big.reason
    assert "light load" in big.reason
    small = decide(
        _processes([1.0, 1 / 1.2], processes=3, spread=0.01),
        contenders=2, min_gain=0.03, conditions=LIGHT,
    )  # fmt: skip
    assert small.outcome == INCONCLUSIVE and small.entries[1].state == "load"
    assert "widened by the load" in small.reason


def _bursty(candidate: float, candidate_feels_load: bool, processes: int = 4) -> list[Round]:
    """Rounds under a bursty load: in every other round ORT's defaults (contender 0 and the
    reference) run 1.4x slower; the candidate (``candidate`` x the default's quiet latency)
    with them, or untouched."""
    out = []
    for g in range(processes):
        for k in range(8):
            burst = 1.4 if k % 2 else 1.0
            cand = candidate * (burst if candidate_feels_load else 1.0)
            out.append(Round(g, (10.0 * burst, 10.0 * cand), 10.0 * burst))
    return out


def test_under_load_the_margin_widens_by_the_loads_effect_beyond_what_the_candidate_felt() -> None:
    """The reference ran 1.3x its floor. A provider that runs on the same cores is slowed by the
    same bursts: its 1.25x is a fair comparison and stands, where charging the whole 1.3x to
    the comparison (1.03 x 1.3 = 1.34x) would lose it. A candidate the bursts do not touch
    (no real gain: 1.01x when quiet) looks 1.2x faster under them: it keeps the whole factor
    and is not picked."""
    fair = decide(_bursty(0.8, True), contenders=2, min_gain=0.03, conditions=LIGHT)
    assert fair.outcome == PICK and fair.pick_index == 1, fair.reason
    assert 1.24 < (fair.entries[1].speedup or 0) < 1.26
    untouched = decide(_bursty(0.99, False), contenders=2, min_gain=0.03, conditions=LIGHT)
    assert untouched.outcome != PICK and untouched.entries[1].state == "load", untouched.reason
    assert "widened by the load (34" in untouched.reason  # 1.031 x 1.3: the whole factor
    quiet = decide(_bursty(0.99, False), contenders=2, min_gain=0.03)
    assert quiet.outcome == PICK  # without the load figures the inflated gain would be taken


def test_under_heavy_load_a_provider_pick_needs_the_wider_margin_and_threads_are_held() -> None:
    heavy = Conditions.measured(1.0, 0.0, cores=2, threads=2, slowdown=1.8)
    assert heavy.level == LoadLevel.HEAVY and heavy.widening == 1.8
    rounds = _processes([1.0, 1 / 2.5], processes=3, spread=0.01)
    v = decide(rounds, contenders=2, min_gain=0.03, conditions=heavy)
    assert v.outcome == PICK, v.reason  # 2.5x clears 1.03 x 1.8
    held = decide(
        rounds, contenders=2, min_gain=0.03, conditions=heavy, changes_threads=[False, True]
    )
    assert held.outcome == INCONCLUSIVE and held.held == 1
    small = decide(
        _processes([1.0, 1 / 1.6], processes=3, spread=0.01),
        contenders=2, min_gain=0.03, conditions=heavy,
    )  # fmt: skip
    assert small.outcome == INCONCLUSIVE and "heavy load" in small.reason
    same = decide(
        _processes([1.0, 1.3], processes=3, spread=0.01),
        contenders=2, min_gain=0.03, conditions=heavy,
    )  # fmt: skip
    assert same.outcome == DEFAULT


def test_a_candidate_slower_in_several_of_its_processes_is_not_picked() -> None:
    rounds = _rounds([[1.0, 0.7], [1.0, 0.7], [1.0, 1.1], [1.0, 0.7]])
    v = decide(rounds, contenders=2, min_gain=0.03)
    assert v.outcome != PICK, v.reason
    assert v.entries[1].why_not


def test_the_reference_far_outside_its_fresh_processes_gives_no_verdict() -> None:
    """Every fresh process of the default ran 2x the reference process of the same
    configuration, far beyond their spread: the measurement is not stable."""
    rounds = _rounds([[2.03, 1.49], [2.0, 1.5], [2.02, 1.48]])
    v = decide(rounds, contenders=2, min_gain=0.03)
    assert v.outcome == INCONCLUSIVE and v.pick_index is None
    assert v.aa_spread is not None and v.aa_spread > 0.9
    assert "not stable" in v.reason


def test_the_verdict_stores_its_resolution_load_and_processes() -> None:
    v = decide(
        _processes([1.0, 1 / 1.6], processes=3, spread=0.02),
        contenders=2, min_gain=0.03, conditions=LIGHT, changes_threads=[False, True],
    )  # fmt: skip
    stored = v.to_dict()
    assert stored["held"] == 1 and stored["generations"] == 3
    assert stored["load"]["level"] == "light" and stored["load"]["other_cores"] == 0.3
    assert stored["resolution"] == v.resolution


def test_the_t_quantiles_are_students() -> None:
    for df, expected in ((1, 12.706), (2, 4.303), (3, 3.182), (5, 2.571), (10, 2.228), (30, 2.042)):
        assert abs(t_quantile(0.975, df) - expected) < 0.01 * expected


def test_a_clear_gain_in_every_process_is_picked_with_its_interval() -> None:
    rounds = _rounds([[1.0, 0.8], [1.01, 0.81], [0.99, 0.79]])
    v = decide(rounds, contenders=2, min_gain=0.03)
    assert v.outcome == PICK and v.pick_index == 1
    e = v.entries[1]
    assert e.speedup is not None and e.speedup_low is not None and e.speedup_high is not None
    assert e.speedup_low <= e.speedup <= e.speedup_high
    assert 1.2 < e.speedup < 1.3
    assert len(e.process_speedups) == 3
    assert v.aa_spread is not None and v.aa_spread < 0.03


def test_a_gain_below_the_margin_with_confidence_keeps_the_default() -> None:
    rounds = _rounds([[1.0, 0.995], [1.0, 0.99], [1.0, 1.0]], noise=0.005)
    v = decide(rounds, contenders=2, min_gain=0.03)
    assert v.outcome == DEFAULT and v.pick_index == 0 and v.speedup == 1.0, v.reason
    assert "margin" in (v.entries[1].why_not or "")


def test_an_empty_head_to_head_is_inconclusive_not_a_verdict() -> None:
    v = decide([], contenders=3, min_gain=0.03, rounds_dropped=90)
    assert v.outcome == INCONCLUSIVE and v.pick_index is None
    assert "slow phase" in v.reason
    assert v.rounds_dropped == 90


def test_one_process_is_not_enough_to_judge() -> None:
    rounds = _rounds([[1.0, 0.7]])
    v = decide(rounds, contenders=2, min_gain=0.03)
    assert v.outcome == INCONCLUSIVE


@pytest.mark.slow
def test_an_injected_a_a_disagreement_gives_an_inconclusive_search_and_no_pick(
    mlp_path: Path,
) -> None:
    """Through the real measurement: every fresh process of the default runs 0.5 ms slower per
    run than the reference process of the same configuration."""
    # four processes: the veto compares the reference with a 99% prediction interval of the
    # default's processes, which at three (t with 2 df: 9.9) a little spread already covers
    protocol = dataclasses.replace(FAST, generations=4, max_generations=4)
    options = SearchOptions(
        trials=3, protocol=protocol, seed=1, worker_target=faults.slow_default_worker
    )
    outcome = run_search(mlp_path, options)
    assert outcome.outcome == INCONCLUSIVE, (outcome.reason, outcome.aa_spread, outcome.compared)
    assert outcome.pick is None and outcome.speedup is None
    assert outcome.aa_spread is not None and outcome.aa_spread > 1.0
    with Store.open() as store:
        (row,) = store.searches(outcome.key)
    assert row.state == "done" and row.outcome == INCONCLUSIVE
    assert row.pick_config is None and row.pick_ratio is None
    assert row.aa_spread == outcome.aa_spread


@pytest.mark.slow
def test_a_search_reports_one_figure_everywhere(mlp_path: Path) -> None:
    """The speed-up printed, returned and stored is the verdict's estimate, never a quotient."""
    from autotune.output.tables import outcome_dict, outcome_text

    outcome = run_search(mlp_path, SearchOptions(trials=4, protocol=FAST, seed=1))
    with Store.open() as store:
        (row,) = store.searches(outcome.key)
    assert row.outcome == outcome.outcome
    if outcome.outcome == INCONCLUSIVE:
        assert row.speedup is None
        assert "Inconclusive" in outcome_text(outcome)
        return
    assert row.speedup == outcome.speedup == outcome_dict(outcome)["speedup"]
    assert row.pick_ratio == 1 / outcome.speedup  # type: ignore[operator]
    entry = next(c for c in outcome.compared if c["config_id"] == row.pick_config_id)
    assert entry["speedup"] == outcome.speedup or row.pick_config_id == (DEFAULT_CONFIG.config_id)


def test_list_show_and_best_print_the_verdicts_figure_not_a_trial_estimate(
    mlp_path: Path,
) -> None:
    """A trial whose search-phase estimate (1.50x) the head-to-head did not confirm is never
    shown as the model's speed-up; the verdict's 1.234x [1.1-1.3] is, everywhere."""
    from click.testing import CliRunner

    from autotune.chip import current_chip
    from autotune.commands.cli import cli
    from autotune.config import SessionConfig
    from autotune.digest import model_digest

    chip = current_chip()
    pick = SessionConfig(intra_op_num_threads=1)
    refuted = SessionConfig(graph_optimization_level="ORT_ENABLE_BASIC")
    key = {
        "model_digest": model_digest(mlp_path),
        "model_name": mlp_path.name,
        "chip": chip.chip_id,
        "ort_version": chip.ort_version,
        "shapes": "x=1x16",
        "default_shapes": 1,
    }
    with Store.open(write=True) as store:
        for config, ratio in ((DEFAULT_CONFIG, 1.0), (pick, 0.8), (refuted, 1 / 1.5)):
            store.record_trial(
                TrialRecord.from_row(
                    {
                        **key,
                        "trial_uid": config.config_id,
                        "config_id": config.config_id,
                        "config": config.to_json(),
                        "label": config.describe(),
                        "status": "ok",
                        "ratio": ratio,
                        "created_at": "2026-12-01T00:00:00+00:00",
                    }
                )
            )
        store.upsert_search(
            SearchRecord.from_row(
                {
                    **key,
                    "search_id": "s1",
                    "state": "done",
                    "finished_at": "2026-12-01T00:01:00+00:00",
                    "objective": "latency",
                    "outcome": PICK,
                    "pick_config_id": pick.config_id,
                    "pick_config": pick.to_json(),
                    "pick_label": pick.describe(),
                    "pick_ratio": 1 / 1.234,
                    "speedup": 1.234,
                    "speedup_low": 1.1,
                    "speedup_high": 1.3,
                    "aa_spread": 0.012,
                }
            )
        )
    runner = CliRunner()
    listed = runner.invoke(cli, ["list"]).output
    assert f"{pick.describe()} 1.23×" in listed and "1.50" not in listed
    shown = runner.invoke(cli, ["show", str(mlp_path)]).output
    assert f"* {pick.describe()}, 1.234× [1.100–1.300]" in shown
    assert "A/A spread 1.2%" in shown
    assert "* ok" in shown  # the picked trial is marked in the table
    best = runner.invoke(cli, ["best", str(mlp_path)]).output
    assert "speed-up:    1.23× vs ORT defaults" in best


@pytest.mark.slow
def test_timeout_bounds_a_slow_models_whole_search_and_the_summary_says_why(
    tmp_path: Path,
) -> None:
    """A model of ~0.2 s a run: --timeout bounds everything, head-to-head included; the
    head-to-head prints its progress; the summary says the search stopped early and why."""
    import os
    import subprocess
    import sys
    import time

    from tests import models

    model = models.slow(tmp_path / "slow.onnx")
    started = time.monotonic()
    command = [sys.executable, "-m", "autotune", "search", str(model), "--timeout", "30"]
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**os.environ, "AUTOTUNE_DB": str(tmp_path / "autotune.db")},
        timeout=240,
    )
    wall = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert "head-to-head:" in proc.stderr and "rounds kept" in proc.stderr
    assert "stopped early: --timeout 30 s" in proc.stdout
    # the bound holds within the startup of the processes (imports, the reference session)
    assert wall < 30 + 30, wall


def test_best_and_show_say_what_an_inconclusive_search_concluded(mlp_path: Path) -> None:
    """Not "no tuned configuration; run autotune search": the last search was inconclusive,
    why, the resolution it reached, and what apps get."""
    from click.testing import CliRunner

    from autotune.chip import current_chip
    from autotune.commands.cli import cli
    from autotune.digest import model_digest

    chip = current_chip()
    reason = (
        "1 candidate(s) still straddle the margin after 20 processes; no candidate gains "
        "more than 6.0%"
    )
    with Store.open(write=True) as store:
        store.upsert_search(
            SearchRecord.from_row(
                {
                    "model_digest": model_digest(mlp_path),
                    "model_name": mlp_path.name,
                    "chip": chip.chip_id,
                    "ort_version": chip.ort_version,
                    "shapes": "x=1x16",
                    "default_shapes": 1,
                    "search_id": "s1",
                    "state": "done",
                    "finished_at": "2026-12-01T00:01:00+00:00",
                    "objective": "latency",
                    "outcome": INCONCLUSIVE,
                    "aa_spread": 0.041,
                    "verdict": json.dumps({"reason": reason, "resolution": 0.06}),
                }
            )
        )
    runner = CliRunner()
    best = runner.invoke(cli, ["best", str(mlp_path)])
    assert best.exit_code == 1
    assert f"the last search of {mlp_path} here (2026-12-01T00:01:00+00:00): inconclusive: " in (
        best.output
    )
    assert "no candidate gains more than 6.0%" in best.output
    assert "Apps get ORT's defaults" in best.output and "no tuned configuration" not in best.output
    shown = runner.invoke(cli, ["show", str(mlp_path)]).output
    assert f"inconclusive: {reason}, A/A spread 4.1%" in shown


def test_inspect_takes_the_shapes_and_inputs_a_search_takes(
    dynamic_path: Path, tmp_path: Path
) -> None:
    """A user copies the search's command line: --shape and --inputs work, and the shapes are
    fixed before the CoreML prediction."""
    import numpy as np
    from click.testing import CliRunner

    from autotune.commands.cli import cli

    runner = CliRunner()
    flags = ["--shape", "tokens=1x4", "--shape", "x=1x3x8"]
    out = runner.invoke(cli, ["inspect", str(dynamic_path), *flags, "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["shapes"] == {"tokens": [1, 4], "x": [1, 3, 8]}
    feeds = tmp_path / "feeds.npz"
    np.savez(feeds, tokens=np.zeros((1, 4), dtype=np.int64), x=np.zeros((1, 3, 8), np.float32))
    text = runner.invoke(cli, ["inspect", str(dynamic_path), "--inputs", str(feeds)])
    assert text.exit_code == 0, text.output
    assert "Shapes     tokens=1x4;x=1x3x8" in text.output
    bad = runner.invoke(cli, ["inspect", str(dynamic_path), "--shape", "nope=1"])
    assert bad.exit_code != 0 and "Traceback" not in bad.output


def test_compared_entries_are_read_typed_and_written_with_their_fields() -> None:
    """The head-to-head's stored entries: every key the search writes is a field of the typed
    record readers get, and values of the wrong type (a shared database is hostile input) read
    as None instead of reaching a reader."""
    from autotune.config import SessionConfig
    from autotune.measure.verdict import Entry
    from autotune.store.records import ComparedEntry, compared_entries
    from autotune.tuning.head_to_head import entry_figures

    written = entry_figures(SessionConfig(intra_op_num_threads=1), Entry(speedup=1.2))
    names = {f for f in ComparedEntry.__dataclass_fields__}
    assert set(written) <= names
    hostile = {
        "config_id": 7,
        "speedup": "1.5",
        "speedup_low": float("nan"),
        "process_speedups": [1.1, "x", True, 1.2],
        "eligible": "yes",
        "label": "ok",
        "load_ms": None,
        "session_create_ms": 10,
        "first_run_ms": 2.5,
    }
    (entry,) = compared_entries({"compared": [hostile, "not an entry", None]})
    assert entry.config_id is None and entry.speedup is None and entry.speedup_low is None
    assert entry.process_speedups == (1.1, 1.2) and entry.eligible is False
    assert entry.label == "ok" and entry.load == 12.5
    assert compared_entries("not a verdict") == []
    assert ComparedEntry.read(written) == ComparedEntry(**{**written, "process_speedups": ()})


def test_with_no_candidate_in_the_head_to_head_the_defaults_stay() -> None:
    v = decide(_rounds([[1.0], [1.0], [1.0]]), contenders=1, min_gain=0.03)
    assert v.outcome == DEFAULT and v.pick_index == 0 and "no other configuration" in v.reason
