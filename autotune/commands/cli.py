"""The ``autotune`` command. Each command parses its arguments, calls the library, prints."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import click

from autotune import defaults
from autotune.commands import cli_pipeline
from autotune.commands.cli_help import HelpGroup
from autotune.errors import AutotuneError, printable
from autotune.tuning.objectives import OBJECTIVES


class _Group(HelpGroup):
    """Turns every AutotuneError into one ``Error: …`` line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AutotuneError as exc:
            click.echo(f"Error: {printable(exc)}", err=True)  # may quote stored text
            sys.exit(1)
        except click.UsageError as exc:
            # one line, like every other error, instead of click's usage block
            where = exc.ctx.command_path if exc.ctx else "autotune"
            click.echo(f"Error: {exc.format_message()} (see: {where} --help)", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="autotune")
def cli() -> None:
    """Find, remember and apply the fastest correct ONNX Runtime configuration for a model."""


def _db_option(f: Any) -> Any:
    return click.option(
        "--db",
        envvar="AUTOTUNE_DB",
        help="Tuning database (default: per-user data directory; env AUTOTUNE_DB).",
    )(f)


def _shape_option(f: Any) -> Any:
    return click.option(
        "--shape",
        "shapes",
        multiple=True,
        metavar="NAME=1x3x224x224",
        help="Shape of an input with symbolic dimensions (repeatable).",
    )(f)


@cli.command()
@click.argument("name")
@click.option(
    "-o", "--output", type=click.Path(), help="Where to write the model (pipeline: a directory)."
)
def example(name: str, output: str | None) -> None:
    """Write an example model (resnet50, mobilenetv2, mlp, transformer) with random weights, or
    a pipeline of three models and its file (pipeline)."""
    from autotune.examples import EXAMPLES, write_example

    if name == "pipeline":  # autotune.pipeline
        return cli_pipeline.write_pipeline_example(output)
    path = write_example(name, output or f"{name}.onnx")
    size_mb = path.stat().st_size / 2**20
    click.echo(f"wrote {path} ({EXAMPLES[name].description}, {size_mb:.1f} MB)")


# study keys a search option of the same name can replace on the command line
_STUDY_PARAMS = ("trials", "timeout", "shapes", "inputs", "objective")


@cli.command()
@click.argument("model", type=click.Path(), required=False)
@click.option(
    "--study", type=click.Path(), help="A study file (studies/NAME.toml): what to search."
)
@click.option(
    "--trials",
    default=defaults.TRIALS,
    show_default=True,
    type=int,
    help="Configurations to measure.",
)
@click.option(
    "--timeout", type=float, help="Bound the whole search, head-to-head included, in seconds."
)
@_shape_option
@click.option(
    "--inputs", type=click.Path(), help="Real input data: an .npz with one array per input."
)
@_db_option
@click.option(
    "--trial-timeout",
    default=defaults.TRIAL_TIMEOUT_S,
    show_default=True,
    help="Kill a trial after this many seconds.",
)
@click.option(
    "--rounds",
    default=defaults.ROUNDS,
    show_default=True,
    help="Paired rounds per candidate (the head-to-head takes three times as many).",
)
@click.option(
    "--min-gain",
    default=defaults.MIN_GAIN,
    show_default=True,
    help="Gain a candidate needs to replace the default.",
)
@click.option(
    "--accuracy",
    default="auto",
    show_default=True,
    help="How outputs must match the CPU fp32 reference: fp32, fp16, cosine:T (e.g. "
    "cosine:0.999) or topk:K (e.g. topk:5); auto: fp16 for accelerators that compute in fp16, "
    "fp32 for the rest (docs/accuracy.md).",
)
@click.option(
    "--rtol", type=float, help="Relative tolerance of the fp32/fp16 tiers (default per tier)."
)
@click.option(
    "--atol", type=float, help="Absolute tolerance of the fp32/fp16 tiers (default per tier)."
)
@click.option(
    "--objective",
    type=click.Choice(list(OBJECTIVES)),
    default=defaults.OBJECTIVE,
    show_default=True,
    help="What 'best' means: steady-state latency, load time, session memory, or a balance.",
)
@click.option("--seed", type=int, help="Sampler seed.")
@click.option(
    "--patience",
    default=defaults.PATIENCE,
    show_default=True,
    help="Stop after this many trials without a 1% better one (0: never).",
)
@click.option(
    "--storage",
    help="Shared Optuna storage for a study spanning machines: journal:/shared/file or an RDB URL.",
)
@click.option(
    "--allow-busy",
    is_flag=True,
    envvar="AUTOTUNE_ALLOW_BUSY",
    help="Search even while other programs use the CPU (trials are marked).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def search(
    model: str | None,
    study: str | None,
    trials: int,
    timeout: float | None,
    shapes: tuple[str, ...],
    inputs: str | None,
    db: str | None,
    trial_timeout: float,
    rounds: int,
    min_gain: float,
    accuracy: str,
    rtol: float | None,
    atol: float | None,
    objective: str,
    seed: int | None,
    patience: int,
    storage: str | None,
    allow_busy: bool,
    as_json: bool,
) -> None:
    """Search the fastest correct configuration for MODEL on this machine and store it (MODEL
    may be a pipeline file, pipeline.toml: its models tuned together)."""
    if cli_pipeline.is_pipeline(model):  # autotune.pipeline
        return cli_pipeline.search_pipeline(click.get_current_context())
    from autotune.measure.manager import Protocol
    from autotune.model import parse_shape_args
    from autotune.output.tables import outcome_dict, outcome_text
    from autotune.tuning.progress import ProgressLine
    from autotune.tuning.search import SearchOptions, run_search

    _check_search_numbers(trials, rounds, min_gain, timeout)
    model, study_options = _with_study(model, study)
    options = SearchOptions(
        trials=trials,
        timeout=timeout,
        trial_timeout=trial_timeout,
        shapes=parse_shape_args(shapes),
        inputs=inputs,
        db=db,
        protocol=Protocol(
            rounds=rounds,
            max_rounds=defaults.max_rounds(rounds),
            final_rounds=defaults.FINAL_ROUNDS_PER_ROUND * rounds,
            accuracy=accuracy,
            rtol=rtol,
            atol=atol,
        ),
        min_gain=min_gain,
        objective=objective,
        seed=seed,
        patience=patience or None,
        storage=storage,
        allow_busy=allow_busy,
    )
    for key, value in study_options.items():  # the study file wins over defaults
        setattr(options, key, value)
    try:
        outcome = run_search(model, options, progress=None if as_json else ProgressLine())
    except KeyboardInterrupt:
        click.echo(
            "\nInterrupted: every finished trial is stored; run the same command again to resume.",
            err=True,
        )
        sys.exit(130)
    click.echo(json.dumps(outcome_dict(outcome), indent=2) if as_json else outcome_text(outcome))


def _check_search_numbers(trials: int, rounds: int, min_gain: float, timeout: float | None) -> None:
    """One line naming the fix for a number ``search`` cannot use."""
    if trials < 1:
        raise AutotuneError(f"--trials must be at least 1, not {trials}")
    if rounds < 1:
        raise AutotuneError(f"--rounds must be at least 1, not {rounds}")
    if not 0 <= min_gain < 1:
        raise AutotuneError(
            f"--min-gain must be from 0 (any gain) to below 1, not {min_gain}; e.g. 0.03 for 3%"
        )
    if timeout is not None and timeout <= 0:
        raise AutotuneError(
            f"--timeout must be a positive number of seconds, not {timeout:g}; leave it out for "
            "no time limit"
        )


def _with_study(model: str | None, study: str | None) -> tuple[str, dict[str, Any]]:
    """The model to search and the study file's options (``--study``); an option given on the
    command line replaces the study's, and says so."""
    study_options: dict[str, Any] = {}
    if study:
        from autotune.tuning.study import load_study

        loaded = load_study(study)
        model, study_options = model or str(loaded.model), dict(loaded.options)
        if loaded.example:
            click.echo(f"study model: example {loaded.example}, at {loaded.model}", err=True)
        ctx = click.get_current_context()
        for key in _STUDY_PARAMS:
            source = ctx.get_parameter_source(key)
            if key in study_options and source == click.core.ParameterSource.COMMANDLINE:
                # the command line wins, and says so (a quick run of a study with fewer trials)
                flag = "--shape" if key == "shapes" else f"--{key}"
                click.echo(
                    f"note: {flag} from the command line replaces the study's {key}", err=True
                )
                del study_options[key]
    if not model:
        raise AutotuneError(
            "give the model to search: autotune search MODEL.onnx (or --study FILE)"
        )
    return model, study_options


@cli.command()
@click.argument("model", type=click.Path())
@_shape_option
@_db_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["python", "swift", "json"]),
    help="Print the configuration as a ready-to-paste snippet.",
)
def best(
    model: str, shapes: tuple[str, ...], db: str | None, as_json: bool, fmt: str | None
) -> None:
    """Print the best known configuration for MODEL (or pipeline.toml) on this chip."""
    if cli_pipeline.is_pipeline(model):  # autotune.pipeline
        return cli_pipeline.best_pipeline_text(click.get_current_context())
    from autotune.errors import DatabaseError
    from autotune.model import parse_shape_args, search_hint
    from autotune.output.snippets import snippet, unsupported
    from autotune.output.tables import best_text, printable
    from autotune.resolver import lookup

    given = parse_shape_args(shapes)
    choice, notes = lookup(model, shapes=given or None, db=db)
    if notes.skipped and not notes.read:  # no database could be read at all
        raise DatabaseError(printable(notes.skipped[0]))
    if notes.text():
        click.echo(f"warning: {notes.text()}", err=True)
    if choice is None:
        # exit 1 like plain best (--json prints null first); say if the file is not a model
        if as_json and not fmt:
            click.echo("null")
        if notes.skipped:  # a search would not repair a broken database: no hint to run one
            raise AutotuneError(f"no usable tuned configuration for {model} on this chip")
        hint = search_hint(model, given)
        concluded = _last_inconclusive(model, db)
        if concluded:  # say what the last search concluded, and what apps get
            click.echo(f"{concluded}\nTo decide it, run again when the machine is quieter: {hint}")
            sys.exit(1)
        raise AutotuneError(f"no tuned configuration for {model} on this chip; run: {hint}")
    if as_json and not fmt:
        click.echo(json.dumps(choice.to_dict(), indent=2))
        return
    if fmt:
        for gap in unsupported(choice.config, fmt):
            click.echo(f"warning: the {fmt} snippet cannot express {gap}", err=True)
        click.echo(snippet(choice.config, fmt, model_path=model))
        return
    click.echo(best_text(choice))


def _last_inconclusive(model: str, db: str | None) -> str | None:
    """What the last finished search of MODEL here concluded, when it was inconclusive."""
    from autotune.chip import current_chip
    from autotune.digest import model_digest
    from autotune.output.tables import printable, verdict_line
    from autotune.store.database import Store

    try:
        digest = model_digest(model)
    except (OSError, AutotuneError):
        return None
    with Store.open(db, write=False) as store:
        latest = store.latest_search(digest, current_chip().chip_id)
    verdict = latest.stored_verdict if latest else None
    if latest is None or verdict is None or verdict.outcome != "inconclusive":
        return None
    return (
        printable(
            verdict_line(latest).replace("verdict", f"the last search of {model} here", 1)
        ).replace("; apps keep", ". Apps get", 1)
        + " (best_session() returns it)."
    )


@cli.command(name="list")
@_db_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_(db: str | None, as_json: bool) -> None:
    """List the models, chips and shapes the database holds results for."""
    from autotune.output.tables import summary_text
    from autotune.store.database import Store

    with Store.open(db, write=False) as store:
        rows = store.summary()
    _warn_skipped(store)
    plain = [dataclasses.asdict(r) for r in rows]
    click.echo(json.dumps(plain, indent=2) if as_json else summary_text(rows))


@cli.command()
@click.argument("model", type=click.Path())
@_db_option
@click.option("--all-chips", is_flag=True, help="Show trials from every chip, not only this one.")
@click.option("--host", help="Only trials from this host name (or anonymous host id).")
@click.option("--user", help="Only trials run by this user.")
@click.option("--ort", "ort_version", help="Only trials measured with this onnxruntime version.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def show(
    model: str,
    db: str | None,
    all_chips: bool,
    host: str | None,
    user: str | None,
    ort_version: str | None,
    as_json: bool,
) -> None:
    """List every trial of MODEL on this chip, best first, failures with their reasons."""
    from autotune.chip import current_chip
    from autotune.digest import model_digest
    from autotune.model import search_hint
    from autotune.output.tables import ordered_trials, trials_text
    from autotune.store.database import Store
    from autotune.store.records import MERGED, as_plain

    digest = model_digest(model)
    chip_id = current_chip().chip_id
    with Store.open(db, write=False) as store:
        latest = store.latest_search(digest, chip_id)
        rows = ordered_trials(
            [
                r
                for r in store.trials_of_model(digest, None if all_chips else chip_id)
                if (host is None or host in (r.host, (r.host_id or "").removeprefix(MERGED)))
                and (user is None or r.user == user)
                and (ort_version is None or r.ort_version == ort_version)
            ]
        )
    _warn_skipped(store)
    if as_json:
        verdict = as_plain(latest) if latest else None
        click.echo(
            json.dumps({"verdict": verdict, "trials": [as_plain(r) for r in rows]}, indent=2)
        )
        return
    click.echo(trials_text(rows, model, latest, command=None if rows else search_hint(model)))


def _warn_skipped(store: Any) -> None:
    """One line per database layer that could not be read, when others were read; when none
    could be, the first reason as the error."""
    from autotune.errors import DatabaseError
    from autotune.output.tables import printable

    if store.problems and not store.layers:
        raise DatabaseError(printable(store.problems[0]))
    for problem in store.problems:
        click.echo(f"warning: skipped {printable(problem)}", err=True)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def chip(as_json: bool) -> None:
    """Print this machine's chip id, the ORT version and the providers available."""
    from dataclasses import asdict

    from autotune.chip import current_chip, current_descriptor
    from autotune.plugins import report
    from autotune.providers import installed_providers

    c = current_chip()
    plugins = report()  # registers each plugin package in this process first
    # one provider list: those ORT can create here (its build's, and EP devices it sees)
    data = {
        **asdict(c),
        "chip_id": c.chip_id,
        "providers": installed_providers(),
        "plugins": plugins,
    }
    descriptor = current_descriptor()
    data["descriptor"] = descriptor.to_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"chip:        {c.chip_id}")
    click.echo(f"system:      {c.system}")
    click.echo(f"onnxruntime: {c.ort_version}")
    click.echo(f"providers:   {', '.join(data['providers'])}")
    if plugins:
        click.echo("plugins:")
    else:
        click.echo("plugins:     none installed (e.g. pip install onnxruntime-ep-webgpu)")
    for p in plugins:
        click.echo(f"  {p['package']} {p['version']} ({', '.join(p['ep_names']) or 'no EP'})")
        for d in p["devices"]:
            click.echo(f"    device {d['device']}: {d['label']}")
        if p["no_device_reason"]:
            click.echo(f"    no device: {p['no_device_reason']}")
    parts = (descriptor.family, descriptor.generation, descriptor.tier)
    known = ", ".join(
        f"{k} {v}" for k, v in zip(("family", "generation", "tier"), parts, strict=True) if v
    )
    click.echo(f"descriptor:  {descriptor.label}" + (f" ({known})" if known else ""))


@cli.command(name="adapt")
@click.argument("model", type=click.Path())
@_shape_option
@_db_option
@click.option("--budget", default=30.0, show_default=True, help="Seconds to spend, about.")
@click.option("--top", default=3, show_default=True, help="Borrowed candidates to race.")
@click.option(
    "--min-gain", default=defaults.MIN_GAIN, show_default=True, help="Margin to beat the default."
)
@click.option("--nice", default=10, show_default=True, help="Lower this process's priority.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def adapt_cmd(
    model: str,
    shapes: tuple[str, ...],
    db: str | None,
    budget: float,
    top: int,
    min_gain: float,
    nice: int,
    as_json: bool,
) -> None:
    """On a chip with no result of its own, race the best borrowed ones against ORT's
    defaults here and store the verdict, so the next best_session uses a local result."""
    from autotune.adapt import adapt, lower_priority
    from autotune.model import parse_shape_args

    lower_priority(nice)
    result = adapt(
        model,
        shapes=parse_shape_args(shapes) or None,
        db=db,
        budget_s=budget,
        top=top,
        min_gain=min_gain,
    )
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(f"{result.status}: {result.message} ({result.wall_s:.1f} s)")
    for entry in result.compared:
        where = f"  from {entry['borrowed_from']}" if entry["borrowed_from"] else " (ORT default)"
        speedup = entry.get("speedup")
        figure = f"{speedup:.3f}×" if speedup is not None else "-"
        click.echo(f"  {figure:>7}  {entry['label']}{where}")


@cli.command(name="manifest")
@click.argument("model", type=click.Path())
@click.option(
    "-o", "--output", type=click.Path(), help="Where to write it (default: MODEL.autotune.json)."
)
@click.option("--swift", type=click.Path(), help="Also write the Swift resolver to this file.")
@_db_option
def manifest_cmd(model: str, output: str | None, swift: str | None, db: str | None) -> None:
    """Write MODEL's (or pipeline.toml's) verdicts per chip as a small JSON manifest an app
    reads without SQLite."""
    if cli_pipeline.is_pipeline(model):  # autotune.pipeline
        return cli_pipeline.write_pipeline_manifest(model, output, db)
    from pathlib import Path

    from autotune import manifest
    from autotune.output.snippets import manifest_swift

    out = Path(output) if output else Path(model).with_suffix(".autotune.json")
    data = manifest.write(model, out, db=db)
    chips = sorted({e["chip"] for e in data["entries"]})
    click.echo(f"wrote {out}: {len(data['entries'])} entries for {len(chips)} chip(s)")
    if swift:
        Path(swift).write_text(manifest_swift(out.name), encoding="utf-8")
        click.echo(f"wrote {swift}: the Swift resolver for {out.name}")


def _register() -> None:
    """Commands that live in their own modules (each imports its heavy parts lazily)."""
    from autotune.commands.cli_db import db
    from autotune.commands.cli_inspect import inspect_cmd
    from autotune.commands.cli_report import report_cmd
    from autotune.commands.cli_serving import register as register_serving

    cli.add_command(inspect_cmd)
    cli.add_command(report_cmd)
    cli.add_command(db)
    register_serving(cli)


_register()


def main() -> None:
    cli(prog_name="autotune")


if __name__ == "__main__":
    main()
