"""The ``autotune inspect`` command (registered on the ``autotune`` group in cli.py)."""

from __future__ import annotations

import json

import click


@click.command(name="inspect")
@click.argument("model", type=click.Path())
@click.option(
    "--shape",
    "shapes",
    multiple=True,
    metavar="NAME=1x3x224x224",
    help="Shape of an input with symbolic dimensions (repeatable), as for search.",
)
@click.option(
    "--inputs", type=click.Path(), help="Real input data (.npz), as for search: its shapes."
)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def inspect_cmd(model: str, shapes: tuple[str, ...], inputs: str | None, as_json: bool) -> None:
    """Describe MODEL without running it: inputs, ops, predicted CoreML partitions."""
    from autotune.model import load_feeds, load_model_info, parse_shape_args
    from autotune.output.inspection import format_inspection, inspect_model

    given = parse_shape_args(shapes)
    if inputs:  # the shapes of the real data, as search measures them
        _, from_inputs = load_feeds(load_model_info(model), inputs)
        given = {**from_inputs, **given}
    found = inspect_model(model, given or None)
    click.echo(json.dumps(found.to_dict(), indent=2) if as_json else format_inspection(found))
