"""The ``autotune inspect`` command (registered on the ``autotune`` group in cli.py)."""

from __future__ import annotations

import json

import click


@click.command(name="inspect")
@click.argument("model", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def inspect_cmd(model: str, as_json: bool) -> None:
    """Describe MODEL without running it: inputs, ops, predicted CoreML partitions."""
    from autotune.output.inspection import format_inspection, inspect_model

    found = inspect_model(model)
    click.echo(json.dumps(found.to_dict(), indent=2) if as_json else format_inspection(found))
