"""Pipeline searches with real processes (issue 20): overlapping stages whose thread split
matters on a 2-core machine, a looped stage with state, and a pipeline whose joint candidate
can only match the stage picks (no false gain). What apps get back: best_pipeline()."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import autotune
from autotune.config import SessionConfig
from autotune.pipeline.example import speech, streams
from autotune.pipeline.search import PipelineOptions, run_pipeline_search
from autotune.pipeline.spec import load_pipeline, write_pipeline
from tests import models
from tests.conftest import FAST

# a few rounds per process, three fresh processes per contender: seconds per pipeline
QUICK = replace(FAST, block_seconds=0.03, rounds=3, max_rounds=8, final_rounds=6, generations=3)


def _options(**kw: object) -> PipelineOptions:
    return PipelineOptions(protocol=QUICK, trial_timeout=120, **kw)  # type: ignore[arg-type]


def test_overlapping_stages_split_the_threads(tmp_path: Path) -> None:
    """Two encoders at the same time, each with ORT's default pool (a thread per core, which
    spin): on 2 cores the split (one thread each), no spinning, and one shared pool are the
    joint candidates; the verdict holds them against both baselines."""
    path = streams(tmp_path)
    outcome = run_pipeline_search(path, _options(cores=2))
    labels = [c["label"] for c in outcome.screened]
    assert "video: CPU ALL t1 | audio: CPU ALL t1" in labels
    assert any("spin=0" in label for label in labels)
    assert any("shared pool of 2 threads" in label for label in labels)
    assert all(c["status"] == "ok" and c["peak_rss_mb"] > 0 for c in outcome.screened), [
        (c["status"], c["error"], c["peak_rss_mb"]) for c in outcome.screened
    ]
    assert outcome.contenders[0]["label"] == "ORT defaults for every stage"
    # oversubscribed default pools are not the best arrangement: never "no gain possible"
    assert outcome.outcome in ("pick", "inconclusive"), outcome.reason
    if outcome.outcome == "pick":
        assert outcome.chosen is not None and not outcome.chosen.is_default()
        assert outcome.speedup_vs_defaults and outcome.speedup_vs_defaults > 1.03
        # in a fresh process: a shared-pool pick creates ORT's global pool, after which ORT
        # refuses every session with pools of its own in that process (the rest of this suite)
        served = _served_in_a_fresh_process(path)
        assert served == {"arrangement": outcome.chosen.to_json(), "source": "pick"}


def _served_in_a_fresh_process(path: Path) -> dict[str, str]:
    """What best_pipeline(path) serves, asked in a process of its own."""
    code = (
        "import json, autotune\n"
        f"p = autotune.best_pipeline({str(path)!r})\n"
        "print(json.dumps({'arrangement': p.arrangement.to_json(), 'source': p.source}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_looped_stage_with_state(tmp_path: Path) -> None:
    """Encoder, a decoder step called 8 times with its hidden state fed back, a post-net fed
    the decoder's last output: searched end to end, stored, and served with prewarm()."""
    path = speech(tmp_path)
    outcome = run_pipeline_search(path, _options())
    labels = [c["label"] for c in outcome.screened]
    # the looped stage at one thread is a joint candidate, its neighbours untouched
    assert "encoder: CPU ALL t0 | decoder: CPU ALL t1 | postnet: CPU ALL t0" in labels
    assert all(c["status"] == "ok" for c in outcome.screened), outcome.screened
    if outcome.chosen is not None and outcome.chosen.shared_threads is not None:
        # a shared-pool pick is served in a process of its own (ORT's global pool would refuse
        # every later session of this one with pools of its own)
        served = _served_in_a_fresh_process(path)
        assert served["arrangement"] == outcome.chosen.to_json()
        return
    pipeline = autotune.best_pipeline(path)
    if outcome.outcome == "inconclusive":
        assert pipeline.source == "none stored" and pipeline.arrangement.is_default()
    else:
        assert pipeline.arrangement == outcome.chosen
    took = pipeline.prewarm()
    assert list(took) == ["encoder", "decoder", "postnet"]
    assert pipeline["decoder"].get_inputs()[1].name == "h_in"


def test_no_false_gain_when_the_joint_candidate_is_the_stage_picks(tmp_path: Path) -> None:
    """Two sequential stages whose own picks (stored as their searches leave them) run one
    thread each, and a budget of one
    thread: the only joint candidate (one shared pool of one thread) runs what the picks run.
    It must not be picked over them."""
    from tests.test_resolver import _store_pick

    picks = {
        "a": SessionConfig(intra_op_num_threads=1),
        "b": SessionConfig(intra_op_num_threads=1, graph_optimization_level="ORT_ENABLE_EXTENDED"),
    }
    for name, config in picks.items():
        models.mlp(tmp_path / f"{name}.onnx", width=512)
        _store_pick(tmp_path / f"{name}.onnx", config)
    path = write_pipeline(
        {
            "name": "pair",
            "stages": [
                {"name": "a", "model": "a.onnx"},
                {"name": "b", "model": "b.onnx"},
            ],
        },
        tmp_path / "pipeline.toml",
    )
    outcome = run_pipeline_search(path, _options(cores=1))
    assert outcome.stage_sources["a"] == "its own pick, CPU ALL t1"
    roles = [c["role"] for c in outcome.contenders]
    assert roles == ["defaults", "stage picks", "joint"]
    assert outcome.contenders[2]["label"].endswith("(one shared pool of 1 threads)")
    assert outcome.outcome != "pick", outcome.reason
    if outcome.outcome == "stage_picks":
        assert autotune.best_pipeline(path).arrangement.configs[0].intra_op_num_threads == 1


def test_best_pipeline_does_not_import_optuna_or_onnx(tmp_path: Path) -> None:
    path = speech(tmp_path)
    code = (
        "import sys, autotune\n"
        f"p = autotune.best_pipeline({str(path)!r})\n"
        "p.prewarm()\n"
        "heavy = sorted(m for m in ('optuna', 'onnx', 'sqlite_utils') if m in sys.modules)\n"
        "print(sorted(p.sessions), p.source, heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "['decoder', 'encoder', 'postnet'] none stored []"


def test_a_shared_pool_is_created_once_per_process(tmp_path: Path) -> None:
    """A stored shared-pool arrangement, served in a fresh process (one pool for every
    session) and in one whose shared pool already exists at another size (ORT creates it
    once per process: the sessions join it, noted)."""
    from autotune.pipeline.arrangement import Arrangement
    from autotune.pipeline.runtime import stored_pipeline
    from autotune.pipeline.search import PipelineOutcome, _store

    path = speech(tmp_path)
    spec = load_pipeline(path)
    shared = Arrangement((SessionConfig(),) * 3, shared_threads=2)
    outcome = PipelineOutcome(
        "speech", spec.key(), "pick", "stored by the test", shared, "shared", 1.2, 1.1, [], [],
        {}, 1.0,
    )  # fmt: skip
    _store(spec, outcome, None, autotune.current_chip())
    assert stored_pipeline(spec) is not None
    code = (
        "import sys, autotune, onnxruntime as ort\n"
        "if sys.argv[1] == 'taken':\n"
        "    ort.set_global_thread_pool_sizes(1, 1)\n"
        "    so = ort.SessionOptions()\n"
        "    so.use_per_session_threads = False\n"
        f"    ort.InferenceSession({str(tmp_path / 'postnet.onnx')!r}, so)\n"
        f"p = autotune.best_pipeline({str(path)!r})\n"
        f"q = autotune.best_pipeline({str(streams(tmp_path / 'streams'))!r})\n"
        "print(p.arrangement.shared_threads, len(p.notes), q.source, len(q.notes))\n"
    )
    # the second pipeline has nothing stored: ORT's defaults, one pool per session, unless the
    # process has a shared pool (then every session must use it)
    for state, expected in (("fresh", "2 0 none stored 1"), ("taken", "2 1 none stored 1")):
        out = subprocess.run(
            [sys.executable, "-c", code, state], capture_output=True, text=True, check=True
        ).stdout.strip()
        # ORT prints its own "EP Error" block before a session that must use the shared pool
        assert out.splitlines()[-1] == expected, state


@pytest.mark.parametrize("stage", ["nope", ""])
def test_inputs_for_an_unknown_stage_is_one_line(tmp_path: Path, stage: str) -> None:
    from click.testing import CliRunner

    from autotune.commands.cli import cli

    path = speech(tmp_path)
    result = CliRunner().invoke(cli, ["search", str(path), "--inputs", f"{stage}=x.npz"])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and result.output.startswith("Error: --inputs ")


def test_the_manifest_carries_a_pipelines_arrangement(tmp_path: Path) -> None:
    """``autotune manifest pipeline.toml``: per chip, each stage's configuration and the pool."""
    import json

    from click.testing import CliRunner

    from autotune.commands.cli import cli
    from autotune.pipeline.arrangement import Arrangement
    from autotune.pipeline.search import PipelineOutcome, _store

    path = speech(tmp_path)
    result = CliRunner().invoke(cli, ["manifest", str(path)])
    assert result.exit_code == 1 and "holds no result for pipeline speech" in result.output
    spec = load_pipeline(path)
    one = SessionConfig(intra_op_num_threads=1)
    picked = Arrangement((SessionConfig(), one, SessionConfig()))
    outcome = PipelineOutcome(
        "speech", spec.key(), "pick", "stored by the test", picked, "t1 decoder", 1.2, 1.1, [],
        [], {}, 1.0,
    )  # fmt: skip
    _store(spec, outcome, None, autotune.current_chip())
    out = tmp_path / "speech.json"
    result = CliRunner().invoke(cli, ["manifest", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    (entry,) = data["entries"]
    assert entry["chip"] == autotune.current_chip().chip_id
    assert entry["stages"]["decoder"] == one.to_dict()
    assert (entry["shared_threads"], entry["speedup_vs_picks"]) == (None, 1.1)
    assert data["pattern"]["steps"] == [["encoder"], ["decoder"], ["postnet"]]
    lines = CliRunner().invoke(cli, ["best", str(path)]).output.splitlines()
    assert lines[0].startswith("pipeline speech: pick (")
    assert lines[1:] == [
        "  t1 decoder",
        "  vs ORT defaults 1.200×, vs every stage's own pick 1.100×",
    ]


def test_a_search_option_that_does_not_apply_is_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from autotune.commands.cli import cli

    path = speech(tmp_path)
    result = CliRunner().invoke(cli, ["search", str(path), "--shape", "x=1x2"])
    assert result.exit_code == 1
    assert result.output == (
        "Error: --shape does not apply to a pipeline file (shapes and inputs go in its stages; "
        "see docs/pipelines.md)\n"
    )


def test_best_with_a_format_a_pipeline_cannot_take_is_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from autotune.commands.cli import cli

    result = CliRunner().invoke(cli, ["best", str(speech(tmp_path)), "--format", "swift"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: --format does not apply to a pipeline file")


def test_a_stages_runners_up_are_joint_candidates(tmp_path: Path) -> None:
    """The other configurations a stage's own head-to-head found faster than ORT's defaults
    (stored with its verdict) are tried in the pipeline, one stage at a time."""
    from autotune.config import DEFAULT_CONFIG
    from autotune.pipeline.search import joint_candidates, stage_runners_up
    from tests.test_resolver import _store_pick

    path = speech(tmp_path)
    pick = SessionConfig(intra_op_num_threads=1)
    second = SessionConfig(graph_optimization_level="ORT_ENABLE_BASIC")
    slower = SessionConfig(enable_mem_pattern=False)
    compared = [
        {"config": DEFAULT_CONFIG.to_json(), "speedup": 1.0},
        {"config": pick.to_json(), "speedup": 1.2},
        {"config": slower.to_json(), "speedup": 0.9},
        {"config": second.to_json(), "speedup": 1.1},
        {"config": "not a configuration", "speedup": 1.5},
    ]
    _store_pick(tmp_path / "decoder.onnx", pick, outcome="pick", verdict={"compared": compared})
    spec = load_pipeline(path)
    runners_up = stage_runners_up(spec, None)
    assert runners_up == [[], [second], []]
    picks = [SessionConfig(), pick, SessionConfig()]
    labels = [a.describe(["e", "d", "p"]) for a in joint_candidates(spec, picks, 2, runners_up)]
    assert "e: CPU ALL t0 | d: CPU BASIC t0 | p: CPU ALL t0" in labels


def _pair(tmp_path: Path) -> Path:
    """Two small sequential stages (the 512-wide MLP twice)."""
    for name in ("a", "b"):
        models.mlp(tmp_path / f"{name}.onnx", width=512)
    stages = [{"name": "a", "model": "a.onnx"}, {"name": "b", "model": "b.onnx"}]
    return write_pipeline({"name": "pair", "stages": stages}, tmp_path / "pipeline.toml")


def test_the_head_to_head_adds_processes_while_a_decision_is_open(tmp_path: Path) -> None:
    """The pipeline's head-to-head replicates as the single model's does: after the planned
    processes, more of the defaults and of the contenders still open (here: contender 2), not of
    the closed ones (contender 1: its rounds say nan there). Real processes."""
    from autotune.measure.generations import Replication
    from autotune.pipeline.arrangement import Arrangement
    from autotune.pipeline.feeds import stage_feeds
    from autotune.pipeline.measure import PipelineBench

    spec = load_pipeline(_pair(tmp_path))
    one = SessionConfig(intra_op_num_threads=1)
    arrangements = [
        Arrangement.defaults(2),
        Arrangement((one, one)),
        Arrangement((SessionConfig(), SessionConfig()), shared_threads=1),
    ]
    asked: list[int] = []

    def still_open(measured: object) -> list[int]:
        asked.append(len(asked))
        return [2]

    plan = Replication(generations=2, still_open=still_open, max_generations=3, extra_seconds=60)
    bench = PipelineBench(str(spec.path), stage_feeds(spec), QUICK, 120)
    try:
        measured = bench.head_to_head(arrangements, 2, plan)
    finally:
        bench.close()
    assert asked == [0]  # asked once, after the planned two; the third is the last allowed
    assert {r.generation for r in measured.rounds} == {0, 1, 2}
    extra = [r for r in measured.rounds if r.generation == 2]
    assert extra and all(r.medians[1] != r.medians[1] for r in extra)  # nan: not measured
    assert all(r.medians[0] > 0 and r.medians[2] > 0 for r in extra)
    assert len(measured.latencies[2]) > len(measured.latencies[1]) > 0
    assert all(rss and rss > 0 for rss in measured.peak_rss_mb)


def test_an_open_decision_keeps_both_baselines_measured() -> None:
    """Which contenders get more processes (no processes here: rounds made up): a joint
    candidate whose interval straddles the margin is open, and with it the stage picks, which
    it is also judged against; ORT's defaults are always measured (not named)."""
    from autotune.measure.generations import HeadToHead
    from autotune.measure.load import LoadOver
    from autotune.measure.verdict import Round
    from autotune.pipeline.arrangement import Arrangement
    from autotune.pipeline.search import Contender, _Judged
    from tests.deterministic import SteadyMonitor

    one = SessionConfig(intra_op_num_threads=1)
    picks = Arrangement((one, one))
    final = [
        Contender("defaults", Arrangement.defaults(2), "defaults"),
        Contender("stage picks", picks, "picks"),
        Contender("joint", Arrangement((one, one), shared_threads=1), "joint"),
    ]

    def measured(joint: list[float]) -> HeadToHead:  # per process: joint / defaults
        out = HeadToHead(contenders=3, target_rounds=9)
        for generation, ratio in enumerate(joint):
            for noise in (0.999, 1.0, 1.001):
                medians = (1.0 * noise, 1.0 * noise, ratio * noise)
                out.rounds.append(Round(generation, medians, 1.0))
        return out

    bench = type("Bench", (), {"floor_ms": 1.0})()
    judged = _Judged(final, picks, LoadOver(SteadyMonitor()), bench, _options())
    assert judged.still_open(measured([0.90, 1.04, 0.97])) == [1, 2]
    assert judged.still_open(measured([0.5, 0.5, 0.5])) == []  # a clear winner: closed
