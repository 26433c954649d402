"""Traits of third-party ONNX models (issue 12), each on a model built in code with that trait:
0-d scalar inputs, integer inputs the synthetic value breaks, graphs onnx.checker refuses but
onnxruntime runs, unnamed (``?``) dimensions, real input data; and the hints, exits and small
things a new user meets on them."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from autotune.build import build_session
from autotune.config import DEFAULT_CONFIG, SessionConfig
from autotune.errors import ModelError
from autotune.model import (
    feeds_digest,
    free_dimensions,
    load_model_info,
    match_signature,
    parse_shape_args,
    resolve_shapes,
    sentences,
    shape_signature,
    synthetic_feeds,
)
from autotune.resolver import best_config, best_session
from autotune.store.database import Store
from autotune.tuning.search import SearchOptions, run_search
from tests import models
from tests.conftest import FAST

VOICE_SHAPES = {"input": (1, 512), "state": (2, 1, 128)}


def cli(*args: str) -> tuple[int, str, str]:
    from autotune.commands.cli import cli as group

    result = CliRunner().invoke(group, list(args))
    return result.exit_code, result.stdout, result.stderr


def autotune_process(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command in its own process: what reaches the terminal's stderr, ORT's native
    log lines included (a CliRunner sees only Python's)."""
    return subprocess.run(
        [sys.executable, "-m", "autotune.commands.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )


def _options(**kw: object) -> SearchOptions:
    base: dict[str, object] = {"trials": 1, "protocol": FAST, "seed": 1}
    base.update(kw)
    return SearchOptions(**base)  # type: ignore[arg-type]


# -- 1. 0-d scalar inputs ------------------------------------------------------------------


def test_scalar_inputs_need_no_shape(tmp_path: Path) -> None:
    info = load_model_info(models.voice(tmp_path / "voice.onnx"))
    shapes = resolve_shapes(info, VOICE_SHAPES)
    assert shapes["sr"] == ()
    assert shape_signature(shapes) == "input=1x512;sr=;state=2x1x128"
    # ``--shape sr=`` is accepted (a scalar), though never needed
    given = parse_shape_args(["input=1x512", "state=2x1x128", "sr="])
    assert given["sr"] == ()
    assert resolve_shapes(info, given) == shapes


@pytest.mark.slow
def test_lookups_with_the_shapes_searched_with_find_the_result(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = models.voice(tmp_path / "voice.onnx")
    # a wide margin: a verdict (the default) even where a loaded machine's A/A spread is large
    outcome = run_search(path, _options(shapes=VOICE_SHAPES, min_gain=0.99))
    assert outcome.outcome != "inconclusive", outcome.reason
    assert outcome.key.shapes == "input=1x512;sr=;state=2x1x128"
    flags = ["--shape", "input=1x512", "--shape", "state=2x1x128"]
    code, out, err = cli("best", str(path), *flags, "--json")
    assert code == 0, err
    assert json.loads(out)["shapes"] == "input=1x512;sr=;state=2x1x128"
    code, out, err = cli("best", str(path), *flags, "--shape", "sr=", "--json")
    assert code == 0 and json.loads(out)["shapes"] == outcome.key.shapes, err
    with caplog.at_level(logging.WARNING, logger="autotune"):
        session = best_session(path, shapes=VOICE_SHAPES)
    assert not [r for r in caplog.records if "no tuned configuration" in r.getMessage()]
    assert {i.name for i in session.get_inputs()} == {"input", "sr", "state"}
    # another shape was not searched: still nothing
    assert best_config(path, shapes={"input": (1, 256), "state": (2, 1, 128)}) is None


def test_a_signature_is_matched_only_when_the_given_shapes_choose_one() -> None:
    stored = ["a=1x8;b=1x4", "a=1x8;b=1x16", "a=1x2;sr="]
    assert match_signature({"a": (1, 8), "b": (1, 4)}, stored) == "a=1x8;b=1x4"
    assert match_signature({"a": (1, 2)}, stored) == "a=1x2;sr="
    assert match_signature({"a": (1, 8)}, stored) is None  # two searched shapes agree: ambiguous
    assert match_signature({"a": (1, 3)}, stored) is None


# -- 2. integer inputs the synthetic value breaks --------------------------------------------


@pytest.mark.slow
def test_integer_input_broken_by_the_synthetic_value_names_it_and_the_fix(
    tmp_path: Path,
) -> None:
    path = models.sample_rate(tmp_path / "vad.onnx")
    proc = autotune_process("search", str(path), "--trials", "2")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    # one Error line, last (autotune's notes on providers or a busy machine may come first);
    # ORT's own (coloured) log lines never reach the terminal
    assert [x for x in lines if x.startswith("Error:")] == lines[-1:], proc.stderr
    assert not [x for x in lines if ":onnxruntime:" in x or "\x1b[" in x], proc.stderr
    line = lines[-1]
    assert line.startswith("Error: the model fails with ORT's default configuration")
    assert "integer input sr is 1" in line
    assert "--inputs FEEDS.npz" in line
    assert "[E:onnxruntime" not in proc.stderr and "\x1b[" not in proc.stderr
    assert "onnxruntime_src" not in line  # ORT's source locations are dropped, not its reason
    assert "cannot be reshaped" in line
    # the one-line example, with a real value put in, writes feeds a search accepts
    example = re.search(r'python -c "(.*)"$', line)
    assert example is not None
    code = example.group(1).replace("VALUE", "16000")
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=60)
    outcome = run_search(path, _options(inputs=str(tmp_path / "feeds.npz")))
    assert outcome.measured == 1 and outcome.compared[0]["latency_ms_p50"] is not None


# -- 3. a graph onnx.checker refuses and onnxruntime runs ------------------------------------


@pytest.mark.slow
def test_a_model_onnxruntime_loads_is_accepted_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = models.unsorted(tmp_path / "seg.onnx")
    with caplog.at_level(logging.WARNING, logger="autotune"):
        info = load_model_info(path)
        load_model_info(path)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings  # once
    # the checker's whole sentence, not cut at "of node:"
    assert "must be topologically sorted" in warnings[0]
    assert "is not output of any previous nodes.)" in warnings[0]
    assert "onnxruntime loads it" in warnings[0]
    assert info.checker_warning == warnings[0]
    outcome = run_search(path, _options())
    assert outcome.measured == 1 and outcome.compared[0]["latency_ms_p50"] is not None


def test_inspect_of_such_a_model_prints_no_traceback(tmp_path: Path) -> None:
    path = models.unsorted(tmp_path / "seg.onnx")
    proc = autotune_process("inspect", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    assert proc.stderr.count("fails onnx.checker") == 1
    assert "Relu 1" in proc.stdout


def test_a_model_neither_accepts_is_refused_with_both_reasons(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "ghost"], ["y"])],
        "broken",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "broken.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelError) as caught:
        load_model_info(path)
    text = str(caught.value)
    assert "is not a valid ONNX model (" in text and "onnxruntime cannot load it (" in text
    assert "is not output of any previous nodes." in text and text.endswith("; re-export it")


def test_long_messages_are_cut_after_a_whole_sentence() -> None:
    text = "First sentence here. " + "Second one is long. " * 40
    cut = sentences(text, limit=60)
    assert cut == "First sentence here. Second one is long. Second one is long."
    assert sentences("one sentence without an end " * 30, 50).endswith("end")  # whole, uncut


# -- 4. unnamed dimensions --------------------------------------------------------------------


@pytest.mark.slow
def test_only_named_dimensions_are_overridden(tmp_path: Path) -> None:
    path = models.unnamed_dims(tmp_path / "ocr.onnx")
    info = load_model_info(path)
    assert info.inputs[0].shape == (None, 3, 8, None)  # "?" is not a name
    shapes = resolve_shapes(info, parse_shape_args(["image=1x3x8x40", "mask=1x40"]))
    free = free_dimensions(info, shapes)
    assert free == {"batch": 1, "width": 40}
    # the overrides a trial tries build and run with the real onnxruntime
    session = build_session(path, SessionConfig(free_dimension_overrides=free))
    session.run(None, synthetic_feeds(info, shapes))
    outcome = run_search(path, _options(trials=1, shapes=shapes))
    assert outcome.compared[0]["latency_ms_p50"] is not None


# -- 6. hints that work -------------------------------------------------------------------------


def test_best_and_show_of_a_file_that_is_not_a_model(tmp_path: Path) -> None:
    notes = tmp_path / "notes.onnx"
    notes.write_text("not a model\n")
    for command in ("best", "show"):
        code, out, err = cli(command, str(notes))
        assert code == 1, out
        assert err.strip() == (
            f"Error: {notes} is not an ONNX model or is truncated (DecodeError); "
            "re-export or re-download it"
        )


def test_suggested_search_commands_carry_the_shapes_they_need(
    tmp_path: Path, dynamic_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    code, _, err = cli("best", str(dynamic_path))
    assert code == 1
    assert err.strip().endswith(
        f"run: autotune search {dynamic_path} --shape tokens=1xN --shape x=1xNx8"
    )
    code, _, err = cli("best", str(dynamic_path), "--shape", "tokens=1x7", "--shape", "x=1x3x8")
    assert err.strip().endswith("--shape tokens=1x7 --shape x=1x3x8"), err
    code, out, _ = cli("show", str(dynamic_path))
    assert code == 0 and out.strip().endswith("--shape tokens=1xN --shape x=1xNx8")
    code, _, err = cli("report", str(dynamic_path), "-o", str(tmp_path / "r.html"))
    assert code == 1 and err.strip().endswith("--shape tokens=1xN --shape x=1xNx8"), err
    with caplog.at_level(logging.WARNING, logger="autotune"):
        best_session(dynamic_path)
    assert caplog.records[-1].getMessage().endswith("--shape tokens=1xN --shape x=1xNx8)")


def test_inputs_that_are_not_npz_get_one_line(tmp_path: Path, mlp_path: Path) -> None:
    for name, content in (("feeds.txt", b"x = 1, 2, 3\n"), ("feeds.npy", b"\x93NUMPY pickled")):
        bad = tmp_path / name
        bad.write_bytes(content)
        code, _, err = cli("search", str(mlp_path), "--inputs", str(bad))
        assert code == 1
        assert err.strip() == (
            f"Error: --inputs {bad} is not an .npz file; write one with numpy.savez "
            "(one array per input, named as the input)"
        )


def test_db_export_refuses_a_missing_directory_and_other_formats(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "out.jsonl"
    code, _, err = cli("db", "export", str(missing))
    assert code == 1 and "(no directory " in err and "create it first" in err
    assert not (tmp_path / "no").exists()
    code, _, err = cli("db", "export", str(tmp_path / "out.csv"))
    assert code == 1
    assert "give a name ending in .jsonl (JSON lines) or .db (SQLite)" in err
    assert not (tmp_path / "out.csv").exists()


# -- 7. consistent exits and values -----------------------------------------------------------


def test_best_json_with_nothing_stored_exits_like_best(mlp_path: Path) -> None:
    code, out, err = cli("best", str(mlp_path), "--json")
    assert code == 1
    assert out.strip() == "null"
    assert err.startswith("Error: no tuned configuration")


def test_out_of_range_values_are_refused(mlp_path: Path) -> None:
    code, _, err = cli("search", str(mlp_path), "--min-gain", "-0.1")
    assert code == 1 and err.strip() == (
        "Error: --min-gain must be from 0 (any gain) to below 1, not -0.1; e.g. 0.03 for 3%"
    )
    code, _, err = cli("search", str(mlp_path), "--timeout", "0")
    assert code == 1 and err.strip() == (
        "Error: --timeout must be a positive number of seconds, not 0; leave it out for no "
        "time limit"
    )
    with pytest.raises(ValueError, match='warmup must be True, False or "background"'):
        best_session(mlp_path, warmup="yes")


def test_png_without_matplotlib_writes_nothing(tmp_path: Path, mlp_path: Path) -> None:
    html, png = tmp_path / "r.html", tmp_path / "r.png"
    code = (
        "import sys; sys.modules['matplotlib'] = None; from autotune.commands.cli import main; "
        f"sys.argv = ['autotune', 'report', {str(mlp_path)!r}, '-o', {str(html)!r}, "
        f"'--png', {str(png)!r}]; main()"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "Error: --png needs matplotlib, the autotune[report] extra: install it with pip install "
        "matplotlib (or pip install '.[report]' in autotune's checkout); nothing was written"
    )
    assert not html.exists() and not png.exists()


# -- 9. real inputs are real ------------------------------------------------------------------


@pytest.mark.slow
def test_a_search_on_real_inputs_measures_again(tmp_path: Path, mlp_path: Path) -> None:
    synthetic = run_search(mlp_path, _options(trials=4))
    feeds = {"x": np.linspace(-3, 3, 16, dtype=np.float32).reshape(1, 16)}
    npz = tmp_path / "feeds.npz"
    np.savez(npz, **feeds)  # type: ignore[arg-type]
    real = run_search(mlp_path, _options(trials=3, inputs=str(npz)))
    assert real.key == synthetic.key  # same model, chip, ORT, shapes: told apart by the data
    assert real.resumed == 0 and real.measured == 3
    with Store.open() as store:
        rows = store.trials(real.key)
        searches = store.searches(real.key)
    digest = feeds_digest(feeds)
    on_real = [r for r in rows if r.inputs_digest == digest]
    on_synthetic = [r for r in rows if r.inputs_digest is None]
    assert len(on_real) == 3 and len(on_synthetic) == 4
    first_two = {r.config_id for r in sorted(on_real, key=lambda r: r.trial_number or 0)[:2]}
    assert DEFAULT_CONFIG.config_id in {r.config_id for r in on_real}
    # the best result stored on synthetic inputs is validated on the real ones first
    best_synthetic = min(
        (r for r in on_synthetic if r.status == "ok" and r.config_id != DEFAULT_CONFIG.config_id),
        key=lambda r: r.ratio or 0.0,
    )
    assert best_synthetic.config_id in first_two | {DEFAULT_CONFIG.config_id}
    # the verdict on real inputs compares only configurations measured on them
    assert {c["config_id"] for c in real.compared} <= {r.config_id for r in on_real}
    assert {s.inputs_digest for s in searches} == {None, digest}
    again = run_search(mlp_path, _options(trials=3, inputs=str(npz)))
    assert again.resumed == 3 and again.measured == 0


# -- 10. small things a user notices ------------------------------------------------------------


@pytest.mark.slow
def test_study_search_says_where_its_example_is_and_what_the_command_line_replaces(
    tmp_path: Path,
) -> None:
    study = tmp_path / "s.toml"
    study.write_text('model = { example = "mlp" }\ntrials = 30\n')
    code, out, err = cli(
        "search", "--study", str(study), "--trials", "1", "--rounds", "1", "--json"
    )
    assert code == 0, err
    example = Path(os.environ["AUTOTUNE_CACHE_DIR"]) / "examples" / "mlp.onnx"
    assert f"study model: example mlp, at {example}" in err
    assert "note: --trials from the command line replaces the study's trials" in err
    assert json.loads(out)["trials_measured"] == 1
    # show --json: JSON columns are objects
    code, out, _ = cli("show", str(example), "--json")
    rows = json.loads(out)["trials"]
    assert code == 0 and isinstance(rows[0]["config"], dict)
    assert isinstance(rows[0]["placement"], dict)
    code, out, _ = cli("db", "stats")
    assert code == 0 and "1 model, 1 chip, 1 trial, 1 search;" in out


def test_chip_json_lists_the_providers_once() -> None:
    code, out, _ = cli("chip", "--json")
    data = json.loads(out)
    assert code == 0 and "providers_available" not in data
    assert "CPUExecutionProvider" in data["providers"]


def test_help_lists_whole_first_sentences() -> None:
    from autotune.commands.cli import cli as group
    from autotune.commands.cli_db import db

    for args, commands in ((["--help"], group.commands), (["db", "--help"], db.commands)):
        result = CliRunner().invoke(group, args)
        assert result.exit_code == 0
        listing = " ".join(result.output.split("Commands:")[1].split())
        assert "..." not in listing
        for name, command in commands.items():
            first = " ".join((command.help or "").split("\n\n")[0].split())
            assert f"{name} {first}" in listing, name
