"""Declarative study files."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from autotune.commands.cli import cli
from autotune.errors import SearchError
from autotune.tuning.study import load_study

STUDIES = sorted((Path(__file__).parent.parent / "studies").glob("*.toml"))


def test_the_reference_studies_load() -> None:
    names = {p.stem for p in STUDIES}
    assert names >= {"resnet50", "mobilenetv2", "mlp", "transformer"}
    for path in STUDIES:
        study = load_study(path)
        assert study.model.exists()
        assert study.options["providers"] == ("CPUExecutionProvider",)
        assert study.options["trials"] == 30


@pytest.mark.slow
def test_search_with_a_study(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    from tests.models import mlp

    mlp(model)
    study = tmp_path / "s.toml"
    study.write_text('model = { path = "m.onnx" }\nobjective = "latency"\ntrials = 2\n')
    result = CliRunner().invoke(cli, ["search", "--study", str(study), "--rounds", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert '"trials_measured": 2' in result.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model = [", "is not valid TOML"),
        ('model = { example = "mlp" }\nspeed = 1\n', "unknown key(s) speed"),
        ("trials = 3\n", "model must be"),
        ('model = { example = "mlp" }\ntrials = 0\n', "trials must be a positive number"),
        ('model = { example = "mlp" }\nobjective = "fast"\n', "not one of latency"),
    ],
)
def test_bad_study_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SearchError) as info:
        load_study(path)
    assert message in str(info.value)


def test_missing_model_argument() -> None:
    result = CliRunner().invoke(cli, ["search"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: give the model to search: autotune search MODEL.onnx (or --study FILE)"
    )
