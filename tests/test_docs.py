"""The README is tested: its opening commands, and every autotune command line it shows uses a
real command with real options."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from autotune.commands.cli import cli

README = (Path(__file__).parent.parent / "README.md").read_text()


def _blocks() -> list[str]:
    """The fenced code blocks of the README, in order."""
    blocks: list[str] = []
    current: list[str] | None = None
    for line in README.splitlines():
        if line.startswith("```"):
            if current is None:
                current = []
            else:
                blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def test_readme_opens_with_install_and_test_commands() -> None:
    first, second = _blocks()[:2]
    assert "pip install ." in first and "autotune example resnet50" in first
    assert "autotune search resnet50.onnx" in first
    assert "scripts/check" in second
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    assert "scripts/check" in ci  # CI runs the README's test command


def _command_lines() -> list[list[str]]:
    lines = []
    for block in _blocks():
        for raw in block.splitlines():
            line = raw.strip().removeprefix("$ ")
            for part in line.split("&&"):
                part = part.split("#")[0].strip()
                if part.startswith("autotune "):
                    lines.append(shlex.split(part.replace("[", "").replace("]", "")))
    return lines


def test_every_documented_command_and_option_exists() -> None:
    seen = 0
    for argv in _command_lines():
        command: click.Command = cli
        args = argv[1:]
        while isinstance(command, click.Group) and args and args[0] in command.commands:
            command = command.commands[args.pop(0)]
        assert command is not cli, argv
        known = {opt for p in command.params for opt in getattr(p, "opts", [])}
        for arg in args:
            if arg.startswith("--"):
                assert arg.split("=")[0] in known, f"{' '.join(argv)}: unknown option {arg}"
        seen += 1
    assert seen >= 12


def test_every_command_is_documented() -> None:
    for name, command in cli.commands.items():
        assert f"autotune {name}" in README, name
        if isinstance(command, click.Group):
            for sub in command.commands:
                assert f"autotune {name} {sub}" in README, f"{name} {sub}"
