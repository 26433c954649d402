"""Render the generated parts of docs/ (run by cog; `cog --check` in scripts/check holds them).

    cog -r -I scripts README.md docs/*.md       # regenerate after a change
    cog --check -I scripts README.md docs/*.md  # what scripts/check runs

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


def measured_on(found: dict[str, Any]) -> str:
    """The sentence naming a results file's command, machine and load."""
    machine = found["machine"]
    before, after = found["others_cores"]
    return (
        f"`{found['command']}`, {machine['date']}, {machine['chip']}, {machine['os']}, "
        f"onnxruntime {machine['onnxruntime']}, Python {machine['python']}; other programs used "
        f"{before:.2f} cores before the run and {after:.2f} after it (psutil)."
    )


def overhead_table(name: str = "overhead.json") -> str:
    """The run-time and isolation overhead table, from scripts/bench_overhead.py's results."""
    found = results(name)
    in_app = found["best_session_in_process_ms"] - found["ort_in_process_ms"]
    cached = found["best_session_new_process_cached_ms"] - found["ort_new_process_ms"]
    uncached = found["best_session_new_process_uncached_ms"] - found["ort_new_process_ms"]
    rows = [
        (
            "`best_session()` in a running app, digest cached, vs `InferenceSession()` with the "
            "same configuration",
            f"{in_app:+.2f} ms ({found['best_session_in_process_ms']:.2f} ms against "
            f"{found['ort_in_process_ms']:.2f} ms for {found['model']})",
        ),
        (
            "the same in a new process (importing autotune, chip id, digest cache, lookup, "
            "validation)",
            f"{cached:+.0f} ms with the digest cached; {uncached:+.0f} ms when it is not",
        ),
        (
            "model hashing (first sight of a model file)",
            f"{found['hash_mb_per_s']:.0f} MB/s (on a {found['model_mb']:.2f} MB model)",
        ),
        (
            "isolation per trial (spawn a process, import onnxruntime, exit; session build "
            "excluded)",
            f"{found['isolation_ms']:.0f} ms",
        ),
    ]
    built = (
        "the stored verdict's configuration"
        if found["lookup_found_a_verdict"]
        else "ORT's defaults (the seeding search left no verdict, so the lookup found none)"
    )
    note = (
        f"\nMedians of {found['repeats']} fresh processes each (in one process: "
        f"{4 * found['repeats']} calls); best_session built {built}. "
        f"Raw results: `docs/results/{name}`. Measured with {measured_on(found)}\n"
    )
    return table(["what", "measured"], rows) + note


def rendered(script: str, name: str) -> str:
    """A results file as its benchmark script's ``markdown()`` prints it, with the line naming
    the file, the command, the machine and the load."""
    import importlib

    found = results(name)
    text = importlib.import_module(script).markdown(found).rstrip("\n")
    return f"{text}\n\nRaw results: `docs/results/{name}`. Measured with {measured_on(found)}\n"


def decisions_table(name: str = "decisions.json") -> str:
    """Unseen models searched quiet and under a 0.3-core load (scripts/bench_decisions.py)."""
    return rendered("bench_decisions", name)


def decisions_summary(*names: str) -> str:
    """One line per run and load of scripts/bench_decisions.py (README's table): how many
    verdicts were decisive, the picks and how they checked, the resolution and the wall time."""
    import statistics

    rows = []
    for name in names:
        found = results(name)
        for condition in ("quiet", "light"):
            runs = [(m, r[condition]) for m, r in found["models"].items() if condition in r]
            runs = [(m, r) for m, r in runs if "error" not in r]
            if not runs:
                continue
            decisive = sum(r["outcome"] in ("pick", "default") for _, r in runs)
            picks = [(m, r) for m, r in runs if r["outcome"] == "pick" and not r["pick_is_default"]]
            checks = [r["check"]["speedup"] for _, r in picks if r.get("check")]
            wrong = sum(c < 0.99 for c in checks)
            large = [f"{m} {r['speedup']:.2f}×" for m, r in picks if r["speedup"] >= 1.3]
            resolutions = [  # none where no candidate reached the head-to-head
                r["resolution"]
                for _, r in runs
                if r["outcome"] == "default" and r.get("resolution") is not None
            ]
            walls = [r["wall_s"] for _, r in runs]
            loads = [r["h2h_other_cores"] for _, r in runs if r.get("h2h_other_cores") is not None]
            load = condition + (f" ({min(loads):.2f}–{max(loads):.2f})" if loads else "")
            rows.append(
                (
                    f"`{name}`",
                    load,
                    f"{decisive} of {len(runs)} ({decisive / len(runs):.0%})",
                    f"{len(picks)}"
                    + (f": checked {min(checks):.2f}–{max(checks):.2f}×" if checks else ""),
                    ", ".join(large) or "-",
                    wrong,
                    f"≤ {statistics.median(resolutions):.1%}" if resolutions else "-",
                    f"{statistics.median(walls):.0f} s (≤ {max(walls):.0f} s)",
                )
            )
    header = [
        "results",
        "load (others' cores)",
        "decisive",
        "picks",
        "≥ 1.3× picked",
        "wrong picks",
        "largest gain left possible (median of defaults)",
        "wall per search",
    ]
    return table(header, rows)


def wall_time_table(name: str = "wall_time.json") -> str:
    """Search wall time, an earlier revision against this one (scripts/bench_wall_time.py)."""
    return rendered("bench_wall_time", name)


def _span(values: list[float], fmt: str) -> str:
    """min–max of values (one value: itself)."""

    def text(value: float) -> str:
        out = format(value, fmt)
        return out.lstrip("-") if float(out.rstrip("%")) == 0 else out  # no "-0.0"

    low, high = text(min(values)), text(max(values))
    return low if low == high else f"{low}–{high}"


def process_spread_table(name: str = "process_spread.json") -> str:
    """Sequential fresh processes of ORT's pinned default and the explicit thread count
    (scripts/bench_process_spread.py)."""
    import statistics

    found = results(name)
    rows = [
        (
            r["model"],
            r["phase"],
            r["config"],
            f"{statistics.median(r['p50_ms']):.2f} ms",
            f"{max(r['p50_ms']) / min(r['p50_ms']) - 1:.1%}",
        )
        for r in found["rows"]
    ]
    header = [
        "model",
        "machine",
        "configuration",
        "median p50",
        f"spread of the {found['processes']} processes",
    ]
    return table(header, rows) + (
        f"\nRaw results: `docs/results/{name}`. Measured with {measured_on(found)}\n"
    )


def processes_differ_table(name: str = "processes_differ.json") -> str:
    """Processes of one configuration timed at the same moments (scripts/why_processes_differ.py),
    one row per model, configuration and address-space layout, over its runs."""
    found = results(name)
    groups: dict[tuple[str, str, bool], list[dict[str, Any]]] = {}
    for run in found["runs"]:
        groups.setdefault((run["model"], run["config"], run["aslr"]), []).append(run)
    rows = []
    for (model, config, aslr), runs in groups.items():
        shared = sum(r["blocks_sharing_a_cpu"] for r in runs)
        rows.append(
            (
                model,
                config + ("" if aslr else ", ASLR off"),
                len(runs),
                _span([r["ms"] for r in runs], ".3g"),
                _span([r["spread"] for r in runs], ".1%"),
                _span([r["paired"] for r in runs], ".1%"),
                _span([r["halves_correlation"] for r in runs], ".2f"),
                f"{shared} of {sum(r['blocks'] for r in runs)}",
            )
        )
    header = [
        "model",
        "configuration",
        "runs",
        "ms a run (median process)",
        "A/A spread of the processes",
        "paired within rounds",
        "halves' correlation",
        "blocks whose two busiest threads shared a CPU",
    ]
    runs = found["runs"]
    return table(header, rows) + (
        f"\n{runs[0]['processes']} processes, {runs[0]['rounds']} rounds each. Raw results: "
        f"`docs/results/{name}`. Measured (last run) with {measured_on(found)}\n"
    )


def oracle_table(name: str = "oracle.json") -> str:
    """autotune's pick against ORT's defaults and an oracle grid (scripts/bench.py)."""
    return rendered("bench", name)


def under_load_table(name: str = "under_load.json") -> str:
    """Searches quiet and with one core busy, picks checked independently
    (scripts/bench_under_load.py)."""
    return rendered("bench_under_load", name)


def repeat_table(name: str = "repeat.json") -> str:
    """The same search run again, fresh database each time (scripts/repeat_search.py)."""
    found = results(name)
    rows = []
    for m in found["models"]:
        by_pick: dict[str, list[str]] = {}  # each configuration once, its runs' outcomes
        for r in m["runs"]:
            claimed = f" {r['claimed']:.3f}×" if r["outcome"] == "pick" and r["claimed"] else ""
            by_pick.setdefault(r["pick"], []).append(f"{r['outcome']}{claimed}")
        picks = "; ".join(f"{pick} ({', '.join(runs)})" for pick, runs in by_pick.items())
        same = "the same configuration" if m["distinct"] == 1 else f"{m['distinct']} distinct"
        rows.append(
            (
                m["model"],
                picks,
                same,
                ", ".join(f"{x:.3f}×" for x in m["measured"]),
                f"{m['rounds_kept']} ({m['rounds_dropped']})",
                ", ".join(f"{r['wall_s']:.0f} s" for r in m["runs"]),
            )
        )
    header = [
        "model",
        "the picks (outcome, claimed speed-up)",
        "configurations",
        "each pick against ORT's defaults, measured together afterwards",
        "rounds kept (dropped)",
        "search wall times",
    ]
    return table(header, rows) + (
        f"\nRaw results: `docs/results/{name}`. Measured (last model) with {measured_on(found)}\n"
    )


def adapt_table(name: str = "adapt.json") -> str:
    """``autotune adapt`` on borrowed results (scripts/bench_adapt.py)."""
    found = results(name)
    rows = []
    for r in found["runs"]:
        if "error" in r:
            rows.append((r["example"], "-", "-", f"error: {r['error'][:80]}", "-", "-", "-"))
            continue
        measured = ", ".join(f"{label} {ratio:.2f}" for label, ratio in r["compared"]) or "-"
        check, aa = r.get("check"), r.get("check_aa")
        checked = "-"
        if check and aa:
            checked = (
                f"{check['speedup']:.3f}× ({check['min']:.2f}–{check['max']:.2f}); "
                f"A/A {aa['min']:.2f}–{aa['max']:.2f}"
            )
        rows.append(
            (
                r["example"],
                f"{r['adapt_wall_s']:.1f} s, {r['rounds']} rounds",
                r["status"],
                r["message"],
                measured,
                "yes" if r["next_lookup_exact"] else "no",
                checked,
            )
        )
    header = [
        "model",
        "adapt wall time",
        "outcome",
        "what it said",
        "candidates measured here (latency / ORT default's)",
        "next lookup exact",
        "stored pick, independent check: median (pairs); the check's A/A",
    ]
    return table(header, rows) + (
        f"\nBudget {found['budget_s']:g} s. Raw results: `docs/results/{name}`. "
        f"Measured with {measured_on(found)}\n"
    )


def soak_table(name: str = "soak.json") -> str:
    """Soaks with varying shapes (scripts/bench_soak.py)."""
    found = results(name)
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in found["rows"]:
        groups.setdefault(row["label"], []).append(row)
    rows = []
    for label, soaks in groups.items():
        flagged = sum(any(f.startswith("memory:") for f in s["flags"]) for s in soaks)
        rows.append(
            (
                label,
                len(soaks),
                _span([s["runs"] for s in soaks], ".0f"),
                _span([s["growth_mb"] for s in soaks], ".1f"),
                _span([s["growth_mb_per_1000_runs"] for s in soaks], ".1f"),
                f"{flagged} of {len(soaks)}",
            )
        )
    header = [
        "configuration",
        "soaks",
        "runs each",
        "RSS growth after warm-up (MB)",
        "MB per 1,000 runs",
        "memory flag",
    ]
    return table(header, rows) + (
        f"\nShapes {found['shapes']}, {found['seconds']:g} s a soak. Raw results: "
        f"`docs/results/{name}`. Measured with {measured_on(found)}\n"
    )


def serving_tables(name: str = "serving.json") -> str:
    """Throughput, cold start and soak flags (scripts/bench_serving.py)."""
    from bench_serving import markdown

    return markdown(results(name)).rstrip("\n") + f"\n\nRaw results: `docs/results/{name}`.\n"


def pipeline_table(name: str = "pipeline.json") -> str:
    """Pipelines tuned together (scripts/bench_pipeline.py)."""
    return rendered("bench_pipeline", name)
