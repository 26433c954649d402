"""Pipeline files, the replayed call pattern, the two-baseline decision and the pipelines
table, on real files, real onnxruntime sessions and real SQLite (no timing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from autotune.commands.cli import cli
from autotune.errors import ConfigError
from autotune.measure.verdict import Round
from autotune.pipeline.arrangement import Arrangement
from autotune.pipeline.decision import STAGE_PICKS, decide_pipeline, rebased
from autotune.pipeline.example import speech, streams
from autotune.pipeline.feeds import stage_feeds
from autotune.pipeline.replay import Replay, build_sessions
from autotune.pipeline.spec import load_pipeline
from tests import models


def _write(tmp_path: Path, text: str) -> Path:
    models.mlp(tmp_path / "a.onnx")
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_pipeline_file_reads_to_its_call_pattern(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        'name = "two"\n'
        '[[stages]]\nname = "det"\nmodel = "a.onnx"\nshapes = { x = "2x16" }\n'
        '[[stages]]\nname = "rec"\nmodel = "a.onnx"\nrepeat = 8\noverlap = ["det"]\n'
        '[[stages]]\nname = "post"\nmodel = "a.onnx"\n',
    )
    spec = load_pipeline(path)
    assert [s.name for s in spec.stages] == ["det", "rec", "post"]
    assert spec.groups == ((0, 1), (2,))  # det and rec at the same time, then post
    assert spec.stage("det").shapes == {"x": (2, 16)}
    assert spec.stage("rec").repeat == 8
    assert spec.stage("det").model == (tmp_path / "a.onnx").resolve()
    assert spec.key() == load_pipeline(path).key()
    # the call pattern is in the key: another repeat count is another pipeline
    path.write_text(path.read_text().replace("repeat = 8", "repeat = 4"))
    assert load_pipeline(path).key() != spec.key()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "x"\n', "no stages; add one [[stages]] table per model"),
        ('stage = 1\n[[stages]]\nname = "a"\nmodel = "a.onnx"\n', "unknown key 'stage'"),
        ('[[stages]]\nname = "a"\n', "stage 'a' needs model = \"path/to/model.onnx\""),
        ('[[stages]]\nname = "a"\nmodel = "b.onnx"\n', "does not exist; fix its path"),
        ('[[stages]]\nname = "a"\nmodel = "a.onnx"\nrepeat = 0\n', "repeat must be a whole"),
        ('[[stages]]\nname = "a"\nmodel = "a.onnx"\nshapes = { x = "1xN" }\n', '"1x3x224x224"'),
        (
            '[[stages]]\nname = "a"\nmodel = "a.onnx"\n[[stages]]\nname = "a"\nmodel = "a.onnx"\n',
            "two stages are named 'a'",
        ),
        ('overlap = ["a", "z"]\n[[stages]]\nname = "a"\nmodel = "a.onnx"\n', "no stage 'z'"),
        ("[[stages]\n", "not valid TOML"),
    ],
)
def test_a_bad_pipeline_file_is_one_line_naming_the_fix(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=r"^pipeline ") as info:
        load_pipeline(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    result = CliRunner().invoke(cli, ["search", str(path)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: pipeline ") and result.output.count("\n") == 1


def test_state_is_fed_back_and_outputs_feed_the_next_stage(tmp_path: Path) -> None:
    """The replay against the same calls written out by hand."""
    spec = load_pipeline(speech(tmp_path))
    feeds = stage_feeds(spec)
    assert set(feeds["decoder"]) == {"h_in"}  # memory comes from the encoder
    replay = Replay(spec, build_sessions(spec, Arrangement.defaults(3)), feeds)
    got = replay.run()
    replay.close()

    def session(name: str) -> ort.InferenceSession:
        return ort.InferenceSession(str(tmp_path / f"{name}.onnx"))

    (memory,) = session("encoder").run(None, feeds["encoder"])
    decoder, h = session("decoder"), feeds["decoder"]["h_in"]
    for _ in range(8):
        h, token = decoder.run(None, {"memory": memory, "h_in": h})
    (wave,) = session("postnet").run(None, {"token": token})
    np.testing.assert_allclose(got["decoder"][1], token, rtol=1e-5)
    np.testing.assert_allclose(got["postnet"][0], wave, rtol=1e-5)
    # one call fewer would differ: the state really went round eight times
    h7 = feeds["decoder"]["h_in"]
    for _ in range(7):
        h7, _ = decoder.run(None, {"memory": memory, "h_in": h7})
    assert not np.allclose(h7, got["decoder"][0])


def test_a_state_naming_no_output_is_one_line(tmp_path: Path) -> None:
    path = speech(tmp_path)
    path.write_text(path.read_text().replace('h_out = "h_in"', 'hidden = "h_in"'))
    spec = load_pipeline(path)
    with pytest.raises(ConfigError, match="state names output 'hidden'; its outputs are"):
        Replay(spec, build_sessions(spec, Arrangement.defaults(3)), stage_feeds(spec))


def test_overlapping_stages_run_on_threads_and_give_the_same_outputs(tmp_path: Path) -> None:
    spec = load_pipeline(streams(tmp_path))
    feeds = stage_feeds(spec)
    assert spec.overlapping() == [(0, 1)]
    seq_path = streams(tmp_path / "seq")
    seq_path.write_text(seq_path.read_text().replace('overlap = ["video", "audio"]', ""))
    sequential = load_pipeline(seq_path)
    assert sequential.groups == ((0,), (1,))
    one = Replay(spec, build_sessions(spec, Arrangement.defaults(2)), feeds)
    assert len(one.lanes) == 2  # a thread of its own for each of the two streams
    a = one.run()
    b = Replay(sequential, build_sessions(sequential, Arrangement.defaults(2)), feeds).run()
    for name in ("video", "audio"):
        np.testing.assert_allclose(a[name][0], b[name][0], rtol=1e-5)
    one.close()


def _rounds(per_generation: list[tuple[float, ...]]) -> list[Round]:
    """Rounds whose contender medians are the given ones (ms), with noise, reference 10 ms."""
    rng = np.random.default_rng(0)
    out = []
    for generation, medians in enumerate(per_generation):
        for _ in range(4):
            noise = 1 + rng.normal(0, 0.002, len(medians) + 1)
            out.append(
                Round(
                    generation,
                    tuple(m * n for m, n in zip(medians, noise[1:], strict=True)),
                    10.0 * noise[0],
                )
            )
    return out


def test_rebased_rounds_keep_the_machines_a_a_control() -> None:
    rounds = _rounds([(10.0, 8.0, 6.0)] * 3)
    for a, b in zip(rounds, rebased(rounds, 1), strict=True):
        assert b.medians == a.medians[1:]
        assert b.medians[0] / b.reference == pytest.approx(a.medians[0] / a.reference)


def test_a_joint_pick_must_beat_both_baselines() -> None:
    # defaults 10 ms, stage picks 8 ms, a joint candidate 6 ms: it beats both
    rounds = _rounds([(10.0, 8.0, 6.0)] * 4)
    v = decide_pipeline(rounds, contenders=3, picks=1, min_gain=0.03)
    assert (v.outcome, v.chosen) == ("pick", 2)
    assert v.speedups(2)["vs_picks"] == pytest.approx(8 / 6, rel=0.02)


def test_no_false_gain_when_the_joint_candidate_only_matches_the_picks() -> None:
    # the joint candidate beats ORT's defaults as much as the stage picks do, no more
    rounds = _rounds([(10.0, 8.0, 8.0)] * 4)
    v = decide_pipeline(rounds, contenders=3, picks=1, min_gain=0.03)
    assert (v.outcome, v.chosen) == (STAGE_PICKS, 1)


def test_the_pipelines_table_holds_the_records_columns(tmp_path: Path) -> None:
    from dataclasses import fields

    from autotune.store.database import COLUMNS, open_writable
    from autotune.store.records import PipelineRecord

    db = open_writable(tmp_path / "new.db")
    stored = db["pipelines"].columns_dict
    assert COLUMNS["pipelines"] == stored
    assert [f.name for f in fields(PipelineRecord)] == list(stored)
    db.conn.close()


def test_example_pipeline_and_best_without_a_result(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["example", "pipeline", "-o", str(tmp_path / "ex")])
    assert result.exit_code == 0, result.output
    path = tmp_path / "ex" / "pipeline.toml"
    assert [s.name for s in load_pipeline(path).stages] == ["encoder", "decoder", "postnet"]
    result = runner.invoke(cli, ["best", str(path)])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: no tuned arrangement for pipeline speech on this chip; run: autotune search "
        f"{path}\n"
    )


def test_a_thread_arrangement_measured_under_load_is_held() -> None:
    """As a single model's: one thread each can win while another program holds a core and
    lose on the quiet machine the app runs on."""
    from autotune.measure.conditions import Conditions, LoadLevel

    light = Conditions.measured(0.4, 0.0, 2, 2, 1.1, "other programs use 0.40 cores")
    assert light.level == LoadLevel.LIGHT
    rounds = _rounds([(10.0, 8.0, 6.0)] * 4)
    flags = [[False, False, True], [False, False, True]]
    v = decide_pipeline(
        rounds, contenders=3, picks=1, min_gain=0.03, conditions=light, changes_threads=flags
    )
    assert v.outcome != "pick"
    assert v.vs_defaults.entries[2].state == "held"
