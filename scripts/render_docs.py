"""Render the generated parts of docs/ (run by cog; `cog --check` in scripts/check holds them).

    cog -r -I scripts docs/cli.md docs/benchmarks.md      # regenerate after a change
    cog --check -I scripts docs/cli.md docs/benchmarks.md # what scripts/check runs

``cli_reference()`` is every command's ``--help``, as a terminal 100 columns wide prints it.
The benchmark tables are rendered from the results files committed under docs/results/ (the
benchmark scripts write there), so a figure in the docs is the one in the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
WIDTH = 100


def _commands(command: click.Command, path: list[str]) -> Iterator[tuple[list[str], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            yield from _commands(command.commands[name], [*path, name])


def cli_reference() -> str:
    """Every command's --help, in order, each under its own heading (Markdown)."""
    from click.testing import CliRunner

    from autotune.commands.cli import cli

    runner = CliRunner()
    parts: list[str] = []
    for path, _ in _commands(cli, []):
        result = runner.invoke(cli, [*path, "--help"], prog_name="autotune", terminal_width=WIDTH)
        if result.exit_code != 0:
            raise RuntimeError(f"autotune {' '.join(path)} --help failed: {result.output}")
        name = " ".join(["autotune", *path])
        parts.append(f"### `{name}`\n\n```\n{result.output.rstrip()}\n```\n")
    return "\n".join(parts)


def results(name: str) -> Any:
    """The committed results file docs/results/NAME (JSON)."""
    return json.loads((RESULTS / name).read_text())


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; cells are printed as given (format them first)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
