"""Pipeline files on the command line: ``autotune search pipeline.toml``, ``autotune best
pipeline.toml`` and ``autotune example pipeline -o DIR`` (cli.py dispatches a ``.toml`` model
and the ``pipeline`` example here)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from autotune.errors import AutotuneError


def is_pipeline(path: str | None) -> bool:
    return bool(path) and str(path).endswith(".toml")


# the search's options a pipeline search takes (--trials: each stage's own search, if any)
_APPLY = {"model", "trials", "rounds", "min_gain", "rtol", "atol", "db", "trial_timeout",
          "inputs", "allow_busy", "as_json"}  # fmt: skip


def _refuse_others(ctx: click.Context, applies: set[str]) -> None:
    """One line for an option given on the command line that a pipeline file does not take."""
    for param in ctx.command.params:
        name = param.name or ""
        if (
            name not in applies
            and ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
        ):
            raise AutotuneError(
                f"{param.opts[0]} does not apply to a pipeline file (shapes and inputs go in its "
                "stages; see docs/pipelines.md)"
            )


def search_pipeline(ctx: click.Context) -> None:
    """``autotune search PIPELINE.toml``: the search's options that apply to a pipeline."""
    from autotune.measure.manager import Protocol
    from autotune.pipeline.search import PipelineOptions, run_pipeline_search

    p = ctx.params
    _refuse_others(ctx, _APPLY)
    given = ctx.get_parameter_source("trials") == click.core.ParameterSource.COMMANDLINE
    if p["rounds"] < 1 or not 0 <= p["min_gain"] < 1:
        raise AutotuneError("--rounds must be at least 1 and --min-gain from 0 to below 1")
    inputs: dict[str, str] = {}
    if p["inputs"]:
        stage, sep, path = p["inputs"].partition("=")
        if not sep or not stage or not path:
            raise AutotuneError(
                f"--inputs {p['inputs']!r}: for a pipeline write STAGE=FILE.npz (or inputs = "
                '"FILE.npz" in the stage\'s table)'
            )
        inputs[stage] = path
    rounds = p["rounds"]
    options = PipelineOptions(
        db=p["db"],
        stage_trials=p["trials"] if given else 0,
        min_gain=p["min_gain"],
        protocol=Protocol(
            rounds=rounds, max_rounds=2 * rounds + 4, final_rounds=3 * rounds, rtol=p["rtol"],
            atol=p["atol"],
        ),
        trial_timeout=p["trial_timeout"],
        inputs=inputs,
        allow_busy=p["allow_busy"],
    )  # fmt: skip
    say = None if p["as_json"] else (lambda line: click.echo(line, err=True))
    try:
        outcome = run_pipeline_search(p["model"], options, progress=say)
    except KeyboardInterrupt:
        click.echo("\nInterrupted: nothing was stored for this pipeline.", err=True)
        sys.exit(130)
    if p["as_json"]:
        click.echo(json.dumps(outcome.to_dict(), indent=2, default=str))
        return
    click.echo(f"pipeline {outcome.name}: {outcome.outcome}: {outcome.reason}")
    if outcome.label:
        click.echo(f"  apps get: {outcome.label}")
    click.echo(f"  {'vs defaults':>11} {'vs picks':>9} {'peak RSS':>9}  contender")
    for c in outcome.contenders:
        cells = [_x(c["vs_defaults"]), _x(c["vs_picks"]), _mb(c["peak_rss_mb"])]
        click.echo(f"  {cells[0]:>11} {cells[1]:>9} {cells[2]:>9}  {c['label']}")
    click.echo(f"stored; apps get it with autotune.best_pipeline({p['model']!r})")


def _x(value: Any) -> str:
    return f"{value:.3f}×" if isinstance(value, float) else "-"


def _mb(value: Any) -> str:
    return f"{value:.0f} MB" if isinstance(value, float) else "-"


def best_pipeline_text(ctx: click.Context) -> None:
    """``autotune best PIPELINE.toml``: the arrangement stored for it on this chip."""
    from autotune.pipeline.runtime import stored_pipeline
    from autotune.pipeline.spec import load_pipeline
    from autotune.store.records import as_plain

    _refuse_others(ctx, {"model", "db", "as_json"})
    path, db, as_json = ctx.params["model"], ctx.params["db"], ctx.params["as_json"]
    spec = load_pipeline(path)
    record = stored_pipeline(spec, db)
    if record is None:
        if as_json:
            click.echo("null")
        raise AutotuneError(
            f"no tuned arrangement for pipeline {spec.name} on this chip; run: autotune search "
            f"{path}"
        )
    if as_json:
        click.echo(json.dumps(as_plain(record), indent=2))  # type: ignore[arg-type]
        return
    click.echo(f"pipeline {spec.name}: {record.outcome} ({record.created_at})")
    click.echo(f"  {record.label}")
    picks = (
        f", vs every stage's own pick {_x(record.speedup_vs_picks)}"
        if record.speedup_vs_picks is not None
        else ""
        if record.outcome == "default"
        else " (each stage's own pick is ORT's defaults here)"
    )
    click.echo(f"  vs ORT defaults {_x(record.speedup_vs_defaults)}{picks}")


def write_pipeline_example(output: str | None) -> None:
    """``autotune example pipeline -o DIR``."""
    from autotune.pipeline.example import write_example_pipeline

    path = write_example_pipeline(output or "pipeline")
    click.echo(f"wrote {path} (encoder, decoder step x8 with its state fed back, post-net)")
    click.echo(f"try: autotune search {path}")


def write_pipeline_manifest(path: str, output: str | None, db: str | None) -> None:
    """``autotune manifest PIPELINE.toml``: its arrangements per chip, as JSON."""
    from pathlib import Path

    from autotune.manifest import build_pipeline

    data = build_pipeline(path, db=db)
    out = Path(output) if output else Path(path).with_suffix(".autotune.json")
    out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    click.echo(f"wrote {out}: {len(data['entries'])} entries for pipeline {data['pipeline']}")
