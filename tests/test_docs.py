"""The README and docs/ are tested: the README's opening commands, its length, that every page
is reachable and every relative link resolves, and that every autotune command line shown uses a
real command with real options."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import click

from autotune.commands.cli import cli

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _blocks(text: str) -> list[str]:
    """The fenced code blocks of a Markdown text, in order."""
    blocks: list[str] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            if current is None:
                current = []
            else:
                blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def _prose(text: str) -> str:
    """The text outside fenced code blocks (links there are Markdown, not code)."""
    return re.sub(r"^\s*```.*?^\s*```", "", text, flags=re.S | re.M)


def _anchors(text: str) -> set[str]:
    """GitHub's anchors for a page's headings."""
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", _prose(text), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_readme_opens_with_install_and_test_commands() -> None:
    first, second = _blocks(README)[:2]
    assert "pip install ." in first and "autotune example resnet50" in first
    assert "autotune search resnet50.onnx" in first
    assert "scripts/check" in second
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/check" in ci  # CI runs the README's test command


def test_ci_runs_the_fast_and_the_full_check() -> None:
    steps = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "scripts/check --fast" in steps and "scripts/check" in steps
    check = (ROOT / "scripts" / "check").read_text()
    assert '-m "not slow"' in check and "cog --check" in check


def test_readme_is_read_in_five_minutes() -> None:
    assert len(README.splitlines()) < 200


def test_every_docs_page_is_linked_from_the_readme_or_the_index() -> None:
    index = ROOT / "docs" / "index.md"
    assert index in DOCS and "docs/index.md" in LINK.findall(README)
    linked = {(ROOT / target.split("#")[0]).resolve() for target in LINK.findall(README)}
    linked |= {(index.parent / t.split("#")[0]).resolve() for t in LINK.findall(index.read_text())}
    unlinked = [page.name for page in DOCS if page.resolve() not in linked and page != index]
    assert not unlinked, f"docs pages linked from neither README.md nor docs/index.md: {unlinked}"


def test_every_relative_link_resolves() -> None:
    broken = []
    for page in PAGES:
        text = page.read_text()
        for target in LINK.findall(_prose(text)):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked.read_text()):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken


def test_no_page_shows_figures_whose_results_were_not_kept() -> None:
    """A benchmark table comes from a results file (rendered by cog), never typed by hand."""
    for page in [ROOT / "README.md", *DOCS]:
        assert "raw results not committed" not in page.read_text().lower(), page.name


def test_every_results_file_is_rendered_and_names_its_machine_and_load() -> None:
    rendered = (ROOT / "docs" / "benchmarks.md").read_text()
    for found in sorted((ROOT / "docs" / "results").glob("*.json")):
        assert f"results/{found.name}" in rendered, f"{found.name} is rendered nowhere"
        data = json.loads(found.read_text())
        # run by a venv's interpreter (the OpenVINO one) or the project's
        assert re.match(r"(\S+/)?python3? scripts/\w+\.py", data["command"]), found.name
        assert {"date", "chip", "onnxruntime"} <= set(data["machine"]), found.name
        assert len(data["others_cores"]) == 2, found.name  # the load, before and after


def _command_lines(text: str) -> list[list[str]]:
    lines = []
    for block in _blocks(text):
        for raw in block.splitlines():
            line = raw.strip().removeprefix("$ ")
            for part in line.split("&&"):
                part = part.split("#")[0].strip()
                if part.startswith("autotune "):
                    lines.append(shlex.split(part.replace("[", "").replace("]", "")))
    return lines


def _check_command_line(argv: list[str]) -> None:
    command: click.Command = cli
    args = argv[1:]
    while isinstance(command, click.Group) and args and args[0] in command.commands:
        command = command.commands[args.pop(0)]
    assert command is not cli, argv
    known = {opt for p in command.params for opt in getattr(p, "opts", [])}
    for arg in args:
        if arg.startswith("--"):
            assert arg.split("=")[0] in known, f"{' '.join(argv)}: unknown option {arg}"


def test_every_documented_command_and_option_exists() -> None:
    readme = _command_lines(README)
    assert len(readme) >= 6
    for argv in readme:
        _check_command_line(argv)
    seen = 0
    for page in DOCS:
        for argv in _command_lines(page.read_text()):
            _check_command_line(argv)
            seen += 1
    assert seen >= 12


def test_every_command_is_in_the_cli_reference() -> None:
    reference = (ROOT / "docs" / "cli.md").read_text()
    regenerate = "regenerate docs/cli.md: cog -r -I scripts docs/cli.md"
    for name, command in cli.commands.items():
        assert f"### `autotune {name}`" in reference, f"autotune {name}: {regenerate}"
        if isinstance(command, click.Group):
            for sub in command.commands:
                assert f"### `autotune {name} {sub}`" in reference, f"{name} {sub}: {regenerate}"
