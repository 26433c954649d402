"""Serving on the command line: ``search --objective throughput|coldstart``, ``--sustained``,
``best --concurrency``, and ``soak``. The options are added to the existing ``search`` and
``best`` commands at registration (``register``); their other objectives are untouched.

Errors are AutotuneError subclasses; the ``autotune`` group prints them as one ``Error:`` line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from autotune.errors import AutotuneError

SERVING_OBJECTIVES = ("throughput", "coldstart")
_SEARCH_OPTIONS = [
    click.Option(["--concurrency"], type=int, help="Requests in flight (--objective throughput)."),
    click.Option(["--p99-budget"], type=float, help="p99 latency bound in ms (throughput)."),
    click.Option(
        ["--arrival"],
        type=click.Choice(["closed", "poisson"]),
        help="closed: N clients back to back (default); poisson: random arrivals at --qps.",
    ),
    click.Option(["--qps"], type=float, help="Requests per second of --arrival poisson."),
    click.Option(["--warm-budget"], type=float, help="Warm p50 bound in ms (coldstart)."),
    click.Option(
        ["--sustained"],
        type=float,
        help="Run the finalists this many seconds after the head-to-head (drift, memory).",
    ),
    click.Option(
        ["--sustained-shape"],
        multiple=True,
        help="NAME=DIMS with ranges, e.g. x=1..16x1..512x64: each --sustained run draws its "
        "shape from them (default: the searched shape). Repeatable.",
    ),
]
_SERVING_KEYS = (
    "concurrency", "p99_budget", "arrival", "qps", "warm_budget", "sustained", "sustained_shape",
)  # fmt: skip


def _positive(name: str, value: float | None) -> None:
    if value is not None and not value > 0:
        raise AutotuneError(f"{name} must be a positive number, not {value:g}")


def _check(objective: str, o: dict[str, Any]) -> None:
    """One line naming the fix for each option that does not fit the objective."""
    for name in ("p99_budget", "qps", "warm_budget", "sustained"):
        _positive("--" + name.replace("_", "-"), o[name])
    if o["concurrency"] is not None and o["concurrency"] < 1:
        raise AutotuneError(f"--concurrency must be at least 1, not {o['concurrency']}")
    throughput_only = [k for k in ("concurrency", "p99_budget", "arrival", "qps") if o[k]]
    if objective != "throughput" and throughput_only:
        flag = "--" + throughput_only[0].replace("_", "-")
        raise AutotuneError(f"{flag} applies to --objective throughput; add it or drop {flag}")
    if objective != "coldstart" and o["warm_budget"] is not None:
        raise AutotuneError("--warm-budget applies to --objective coldstart; add it or drop it")
    if objective in SERVING_OBJECTIVES and o["sustained"]:
        raise AutotuneError(
            f"--sustained runs a latency search's finalists; for --objective {objective} "
            "run `autotune soak` on its pick instead"
        )
    if o["sustained_shape"] and not o["sustained"]:
        raise AutotuneError("--sustained-shape sets the shapes of --sustained; add --sustained S")
    if o["arrival"] == "poisson" and not o["qps"]:
        raise AutotuneError("--arrival poisson needs --qps, the requests per second to send")
    if o["qps"] and o["arrival"] != "poisson":
        raise AutotuneError("--qps sets the rate of --arrival poisson; add --arrival poisson")


def _sustained_ranges(model: str | None, args: tuple[str, ...]) -> dict[str, Any]:
    """``--sustained-shape`` checked against the model (one line naming the fix)."""
    from autotune.model import load_model_info
    from autotune.serving.soak import check_ranges, parse_shape_ranges

    if not model:
        raise AutotuneError("--sustained-shape needs the model: autotune search MODEL ...")
    ranges = parse_shape_ranges(list(args), "--sustained-shape")
    check_ranges(load_model_info(model), ranges, "--sustained-shape")
    return ranges


def _shapes(model: str, shapes: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    from autotune.model import load_model_info, parse_shape_args, resolve_shapes

    return resolve_shapes(load_model_info(model), parse_shape_args(shapes))


def serving_search(
    model: str, objective: str, shapes: tuple[str, ...], min_gain: float, db: str | None,
    o: dict[str, Any], as_json: bool,
) -> None:  # fmt: skip
    """Run a throughput or cold-start search, store its verdict, print it."""
    from autotune.chip import usable_cores
    from autotune.digest import model_digest
    from autotune.model import shape_signature
    from autotune.serving import text
    from autotune.serving.results import ServingKey, store_verdict

    resolved = _shapes(model, shapes)
    path = Path(model)
    if objective == "throughput":
        from autotune.serving.throughput_search import ThroughputOptions, search_throughput

        concurrency = o["concurrency"] or 1
        arrival = o["arrival"] or "closed"
        topts = ThroughputOptions(
            concurrency=concurrency,
            p99_budget_ms=o["p99_budget"],
            arrival=arrival,
            qps=o["qps"],
            min_gain=min_gain,
        )
        t = search_throughput(path, resolved, topts, usable_cores())
        details, pick = t.details(), t.pick
        key = ServingKey(path, objective, concurrency, arrival, o["qps"], shape_signature(resolved))
        i = t.verdict.pick_index
        value = t.throughput[i] if i is not None else None
        baseline_value, budget = t.throughput[0], o["p99_budget"]
    else:
        from autotune.serving.coldstart_search import ColdStartOptions, search_coldstart

        copts = ColdStartOptions(warm_budget_ms=o["warm_budget"], min_gain=min_gain)
        c = search_coldstart(path, model_digest(path), resolved, copts)
        details, pick = c.details(), c.pick  # type: ignore[assignment]
        key = ServingKey(path, objective, shapes=shape_signature(resolved))
        i = c.verdict.pick_index
        value = c.cold_ms[i] if i is not None else None
        baseline_value, budget = c.cold_ms[0], o["warm_budget"]
    verdict = t.verdict if objective == "throughput" else c.verdict
    e = verdict.entries[i] if i is not None else None
    store_verdict(
        db,
        key,
        outcome=verdict.outcome,
        pick=json.dumps(pick.to_dict(), sort_keys=True) if pick else None,
        pick_label=pick.label() if pick else None,
        speedup=(e.speedup, e.speedup_low, e.speedup_high) if e else (None, None, None),
        aa_spread=verdict.aa_spread,
        value=value,
        baseline_value=baseline_value,
        budget_ms=budget,
        details=details,
    )
    if as_json:
        click.echo(json.dumps({"outcome": verdict.outcome, **details}, indent=2, default=str))
        return
    show = text.throughput_text if objective == "throughput" else text.coldstart_text
    click.echo(show(details, pick.label() if pick else None, verdict.outcome))


def _wrap_search(search: click.Command) -> None:
    original = search.callback
    assert original is not None
    for param in search.params:
        if param.name == "objective" and isinstance(param.type, click.Choice):
            param.type = click.Choice([*param.type.choices, *SERVING_OBJECTIVES])
            param.help = (param.help or "") + " throughput: requests/s at --concurrency; "
            param.help += "coldstart: time to the first result after launch."
    search.params.extend(_SEARCH_OPTIONS)

    def callback(**kwargs: Any) -> Any:
        o = {k: kwargs.pop(k) for k in _SERVING_KEYS}
        objective = kwargs["objective"]
        _check(objective, o)
        if objective in SERVING_OBJECTIVES:
            if not kwargs["model"]:
                raise AutotuneError(
                    f"give the model: autotune search MODEL --objective {objective}"
                )
            return serving_search(
                kwargs["model"], objective, kwargs["shapes"], kwargs["min_gain"], kwargs["db"],
                o, kwargs["as_json"],
            )  # fmt: skip
        if not o["sustained"]:
            return original(**kwargs)
        env = {"AUTOTUNE_SUSTAINED": str(o["sustained"])}  # read by SearchOptions
        if o["sustained_shape"]:
            env["AUTOTUNE_SUSTAINED_SHAPES"] = json.dumps(
                _sustained_ranges(kwargs["model"], o["sustained_shape"])
            )
        os.environ.update(env)
        try:
            return original(**kwargs)
        finally:
            for key in env:
                del os.environ[key]

    search.callback = callback


def _wrap_best(best: click.Command) -> None:
    original = best.callback
    assert original is not None
    best.params.append(
        click.Option(
            ["--concurrency"], type=int, help="The arrangement picked for N requests in flight."
        )
    )

    def callback(**kwargs: Any) -> Any:
        concurrency = kwargs.pop("concurrency")
        if concurrency is None:
            out = original(**kwargs)
            if not kwargs.get("as_json"):
                _echo_long_run_flags(kwargs["model"], kwargs.get("db"))
            return out
        return best_serving_cmd(kwargs["model"], concurrency, kwargs["db"], kwargs["as_json"])

    best.callback = callback


def _echo_long_run_flags(model: str, db: str | None) -> None:
    """After ``best``: the flags of this model's long runs (``soak``), newest per
    configuration, when any run was flagged."""
    from autotune.serving.results import SOAK, verdicts
    from autotune.serving.text import serving_lines

    flagged = [r for r in verdicts(model, objective=SOAK, db=db) if any((r.flags or {}).values())]
    if flagged:
        click.echo("long runs (autotune soak):\n  " + "\n  ".join(serving_lines(flagged)))


def _wrap_show(show: click.Command) -> None:
    original = show.callback
    assert original is not None

    def callback(**kwargs: Any) -> Any:
        out = original(**kwargs)
        if not kwargs.get("as_json"):
            from autotune.serving.results import verdicts
            from autotune.serving.text import serving_lines

            lines = serving_lines(verdicts(kwargs["model"], db=kwargs.get("db")))
            if lines:
                click.echo("\nserving (autotune.serving):\n  " + "\n  ".join(lines))
        return out

    show.callback = callback


def best_serving_cmd(model: str, concurrency: int, db: str | None, as_json: bool) -> None:
    """Print the stored arrangement for ``concurrency``; exit 1 with the command to run when
    none is stored."""
    from autotune.serving.results import THROUGHPUT, latest_verdict

    if concurrency < 1:
        raise AutotuneError(f"--concurrency must be at least 1, not {concurrency}")
    record = latest_verdict(model, objective=THROUGHPUT, concurrency=concurrency, db=db)
    if record is None:
        raise AutotuneError(
            f"no throughput verdict for {model} at concurrency {concurrency} on this chip; run: "
            f"autotune search {model} --objective throughput --concurrency {concurrency}"
        )
    if as_json:
        click.echo(json.dumps(dict(record.__dict__), indent=2, default=str))
        return
    label = record.pick_label or f"1 shared session with ORT's defaults ({record.outcome})"
    lines = [f"{label}", f"  outcome: {record.outcome}; measured {record.created_at}"]
    if record.value and record.baseline_value:
        lines.append(
            f"  {record.value:.0f} req/s against {record.baseline_value:.0f} req/s for one "
            f"shared default session (speed-up {record.speedup or 1:.3f})"
        )
    lines.append(f"  in an app: autotune.best_serving({model!r}, concurrency={concurrency})")
    click.echo("\n".join(lines))


@click.command(name="soak")
@click.argument("model", type=click.Path())
@click.option("--seconds", type=float, default=60.0, show_default=True, help="How long to run.")
@click.option(
    "--shape",
    "shapes",
    multiple=True,
    metavar="NAME=1..512x16",
    help="An input's shape; a range LOW..HIGH varies that dimension run to run (repeatable).",
)
@click.option("--config", "configs", multiple=True, help="A configuration's JSON (repeatable).")
@click.option("--window", type=float, default=1.0, show_default=True, help="Window seconds.")
@click.option("--db", envvar="AUTOTUNE_DB", help="Tuning database (env AUTOTUNE_DB).")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def soak_cmd(
    model: str,
    seconds: float,
    shapes: tuple[str, ...],
    configs: tuple[str, ...],
    window: float,
    db: str | None,
    as_json: bool,
) -> None:
    """Run MODEL for a while: per-window latency and RSS, drift and memory growth flagged."""
    from autotune.config import DEFAULT_CONFIG, SessionConfig
    from autotune.model import load_model_info
    from autotune.serving import soak, text
    from autotune.serving.results import SOAK, ServingKey, store_verdict

    _positive("--seconds", seconds)
    _positive("--window", window)
    if seconds < 3 * window:
        raise AutotuneError(f"--seconds must cover at least 3 windows ({3 * window:g} s)")
    ranges = soak.parse_shape_ranges(shapes)
    soak.check_ranges(load_model_info(model), ranges)  # clear errors before any process starts
    chosen = [SessionConfig.from_json(c) for c in configs] or [DEFAULT_CONFIG]
    results = []
    for config in chosen:
        result = soak.soak(Path(model), config, seconds, ranges, window_s=window)
        results.append(result)
        store_verdict(
            db,
            ServingKey(Path(model), SOAK, shapes=";".join(shapes)),
            outcome="flagged" if result.flags else "stable",
            pick=config.to_json(),
            pick_label=result.label,
            flags={result.label: result.flags},
            details=result.to_dict(),
        )
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in results], indent=2))
        return
    click.echo("\n\n".join(text.soak_text(r) for r in results))


def register(group: click.Group) -> None:
    """Add the serving options to ``search`` and ``best``, serving verdicts to ``show``, and
    the ``soak`` command."""
    _wrap_search(group.commands["search"])
    _wrap_best(group.commands["best"])
    _wrap_show(group.commands["show"])
    group.add_command(soak_cmd)
