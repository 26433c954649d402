"""The ``autotune report`` command (registered on the ``autotune`` group in cli.py)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="report")
@click.argument("model", type=click.Path())
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Where to write the HTML (default: <model stem>-report.html).",
)
@click.option(
    "--png", type=click.Path(dir_okay=False), help="Also write a PNG chart (needs matplotlib)."
)
@click.option(
    "--db",
    envvar="AUTOTUNE_DB",
    help="Tuning database (default: per-user data directory; env AUTOTUNE_DB).",
)
def report_cmd(model: str, output: str | None, png: str | None, db: str | None) -> None:
    """Write a self-contained HTML report of MODEL's trials on this chip."""
    from autotune.output.html_report import write_report

    out = write_report(
        model,
        output or f"{Path(model).stem}-report.html",
        db=db,
        png=png,
        warn=lambda message: click.echo(f"warning: {message}", err=True),
    )
    click.echo(f"wrote {out}" + (f" and {png}" if png else ""))
