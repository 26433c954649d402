"""``autotune db``: export, merge and summarize tuning databases (``autotune.store.sharing``).

Errors are AutotuneError subclasses; the ``autotune`` group prints them as one ``Error:`` line.
"""

from __future__ import annotations

import json

import click

from autotune.commands.cli_help import HelpGroup


@click.group(name="db", cls=HelpGroup)
def db() -> None:
    """Share results: export, merge and summarize tuning databases."""


@db.command()
@click.argument("out", type=click.Path())
@click.option("--model", help="Only this model: its file name or a prefix of its digest.")
@click.option("--chip", help="Only chips whose id contains this text.")
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
@click.option(
    "--db",
    "database",
    envvar="AUTOTUNE_DB",
    help="Database to export (default: the first of AUTOTUNE_DB, your personal one).",
)
def export(
    out: str, model: str | None, chip: str | None, force: bool, database: str | None
) -> None:
    """Write results to OUT: JSON lines if it ends in .jsonl (to commit), else a SQLite file."""
    from autotune.store.sharing import export as export_

    result = export_(out, model=model, chip=chip, db=database, force=force)
    click.echo(result.summary())


@db.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path())
@click.option(
    "--into",
    type=click.Path(),
    help="Database to merge into (default: the first of AUTOTUNE_DB, your personal one).",
)
def merge(sources: tuple[str, ...], into: str | None) -> None:
    """Merge exported .db or .jsonl files into one database, without duplicates or losses."""
    from autotune.store.sharing import merge as merge_

    for report in merge_(sources, into=into):
        click.echo(report.summary())


@db.command()
@click.option(
    "--db",
    "database",
    envvar="AUTOTUNE_DB",
    help="Database(s) to summarize (default: AUTOTUNE_DB, every layer).",
)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def stats(database: str | None, as_json: bool) -> None:
    """Count trials per model and chip: statuses, searches, chips and ORT versions."""
    from autotune.output.tables import stats_text
    from autotune.store.sharing import stats as stats_

    summary = stats_(database)
    click.echo(json.dumps(summary.to_dict(), indent=2) if as_json else stats_text(summary))
