"""Render the generated parts of docs/ (run by cog; `cog --check` in scripts/check holds them).

    cog -r -I scripts README.md docs/cli.md docs/benchmarks.md      # regenerate after a change
    cog --check -I scripts README.md docs/cli.md docs/benchmarks.md # what scripts/check runs

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
        f"Measured with {measured_on(found)}\n"
    )
    return table(["what", "measured"], rows) + note


def decisions_table(name: str = "decisions.json") -> str:
    """Unseen models searched quiet and under a 0.3-core load (scripts/bench_decisions.py)."""
    from bench_decisions import markdown

    found = results(name)
    return (
        markdown(found)
        + f"\n\nRaw results: `docs/results/{name}`. Measured with {measured_on(found)}\n"
    )


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
    from bench_wall_time import markdown

    found = results(name)
    return (
        markdown(found)
        + f"\n\nRaw results: `docs/results/{name}`. Measured with {measured_on(found)}\n"
    )
