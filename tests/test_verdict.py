"""The verdict: A/A veto, one statistic with its interval, and what a search then stores."""

from __future__ import annotations

import random
from pathlib import Path

from autotune.config import DEFAULT_CONFIG
from autotune.measure.verdict import DEFAULT, INCONCLUSIVE, PICK, Round, decide, unless_busy
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


def test_a_pick_measured_on_a_busy_machine_is_not_issued() -> None:
    """Fewer threads win while another program holds a core, and lose when it is gone: a
    head-to-head run under load yields no pick (ORT's defaults winning stays a verdict)."""
    busy = "other programs use 0.98 cores"
    v = unless_busy(decide(_rounds([[1.0, 0.8], [1.01, 0.81], [0.99, 0.79]]), contenders=2,
                           min_gain=0.03), busy)  # fmt: skip
    assert v.outcome == INCONCLUSIVE and v.pick_index is None and v.speedup is None
    assert busy in v.reason and "quiet machine" in v.reason
    assert (
        unless_busy(decide(_rounds([[1.0, 0.8]] * 3), contenders=2, min_gain=0.03), None).outcome
        == PICK
    )
    same = decide(_rounds([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]), contenders=2, min_gain=0.03)
    assert same.outcome == DEFAULT and unless_busy(same, busy).outcome == DEFAULT


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


def test_default_processes_that_disagree_veto_the_pick() -> None:
    # the reported case: the default's fresh process ran 2.03x the reference, the candidate
    # 1.49x; the quotient claimed 1.36x, but the default's processes disagree
    rounds = _rounds([[2.03, 1.49], [2.0, 1.5], [1.02, 1.48]])
    v = decide(rounds, contenders=2, min_gain=0.03)
    assert v.outcome == INCONCLUSIVE
    assert v.pick_index is None and v.speedup is None
    assert v.aa_spread is not None and v.aa_spread > 0.9
    assert "A/A" in v.reason
    assert v.resolvable_margin is None and "--min-gain" not in v.reason  # beyond 25%: no hint


def test_a_veto_names_the_margin_this_machine_can_resolve_when_a_candidate_clears_it() -> None:
    """The default's processes disagree by 14% (ORT's two threads on tiny ops, measured on
    scripts/bench_unseen.py's branches model); the candidate is 1.25x faster in every process.
    No pick from this run, but the reason names the margin it would clear, and at that margin
    the same figures (a rerun measures afresh) pass the A/A control and give the pick."""
    rounds = _rounds([[1.0, 0.8], [1.12, 0.9], [0.98, 0.79]])
    v = decide(rounds, contenders=2, min_gain=0.03)
    assert v.outcome == INCONCLUSIVE and v.pick_index is None
    assert v.aa_spread is not None and 0.13 < v.aa_spread < 0.15
    assert v.resolvable_margin == 0.15
    assert "run again with --min-gain 0.15" in v.reason and "1.2" in v.reason
    assert v.to_dict()["resolvable_margin"] == 0.15
    wider = decide(rounds, contenders=2, min_gain=0.15)
    assert wider.outcome == PICK and wider.pick_index == 1
    # a candidate that does not clear the spread gets no hint
    small = decide(_rounds([[1.0, 0.92], [1.12, 1.03], [0.98, 0.9]]), contenders=2, min_gain=0.03)
    assert small.outcome == INCONCLUSIVE and small.resolvable_margin is None
    assert "--min-gain" not in small.reason


def test_a_gain_that_does_not_clear_the_margin_with_confidence_keeps_the_default() -> None:
    rounds = _rounds([[1.0, 0.98], [1.0, 0.985], [1.0, 0.975]], noise=0.005)
    v = decide(rounds, contenders=2, min_gain=0.03)
    assert v.outcome == DEFAULT and v.pick_index == 0 and v.speedup == 1.0
    assert "margin" in (v.entries[1].why_not or "")


def test_a_candidate_slower_in_one_of_its_processes_is_not_picked() -> None:
    rounds = _rounds([[1.0, 0.7], [1.0, 0.7], [1.0, 1.1], [1.0, 0.7]])
    v = decide(rounds, contenders=2, min_gain=0.03)
    e = v.entries[1]
    assert v.outcome == DEFAULT, v.reason
    assert e.why_not and ("process" in e.why_not or "interval" in e.why_not)


def test_an_empty_head_to_head_is_inconclusive_not_a_verdict() -> None:
    v = decide([], contenders=3, min_gain=0.03, rounds_dropped=90)
    assert v.outcome == INCONCLUSIVE and v.pick_index is None
    assert "slow phase" in v.reason
    assert v.rounds_dropped == 90


def test_one_process_is_not_enough_to_judge() -> None:
    rounds = _rounds([[1.0, 0.7]])
    v = decide(rounds, contenders=2, min_gain=0.03)
    assert v.outcome == INCONCLUSIVE


def test_an_injected_a_a_disagreement_gives_an_inconclusive_search_and_no_pick(
    mlp_path: Path,
) -> None:
    """Through the real measurement: every fresh process of the default runs 0.5 ms slower per
    run than the reference process of the same configuration."""
    options = SearchOptions(
        trials=3, protocol=FAST, seed=1, worker_target=faults.slow_default_worker
    )
    outcome = run_search(mlp_path, options)
    assert outcome.outcome == INCONCLUSIVE
    assert outcome.pick is None and outcome.speedup is None
    assert outcome.aa_spread is not None and outcome.aa_spread > 1.0
    with Store.open() as store:
        (row,) = store.searches(outcome.key)
    assert row.state == "done" and row.outcome == INCONCLUSIVE
    assert row.pick_config is None and row.pick_ratio is None
    assert row.aa_spread == outcome.aa_spread


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


def test_sampling_noise_alone_does_not_veto() -> None:
    """Three default processes that run alike, measured with 3% round-to-round noise: their
    medians scatter by a few percent, which is not a disagreement between processes."""
    rounds = _rounds([[1.0, 0.8], [1.0, 0.8], [1.0, 0.8]], noise=0.03, seed=11)
    v = decide(rounds, contenders=2, min_gain=0.03)
    assert v.outcome == PICK, v.reason
