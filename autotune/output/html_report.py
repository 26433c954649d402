"""A self-contained HTML report of one model's trials on this chip, for a person to read.

One file, inline CSS and inline SVG: no scripts, no external links, readable offline and safe
to attach to an issue. Every string that comes from the database is escaped, since a team
database may have been written on another machine.

Sections: what was measured (model, chip, ORT version, shapes, when); the verdict of the latest
search (the pick against ORT's default, re-measured head to head); every configuration tried,
with its speed-up and spread, latency, load time and memory; speed against load time with the
Pareto front; which options mattered (Optuna's parameter importances over the stored trials);
where the nodes ran (per execution provider); and the failures with their reasons.

Optuna is imported only to compute the importances, matplotlib only for ``png=``.
"""

from __future__ import annotations

import html
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autotune.config import DEFAULT_CONFIG, SessionConfig
from autotune.errors import AutotuneError, DatabaseError, ReportError
from autotune.figures import speedup_text
from autotune.output.tables import ms, ordered_trials, printable
from autotune.store.database import ResultKey, Store
from autotune.store.records import (
    ComparedEntry,
    Outcome,
    SearchRecord,
    Status,
    TrialRecord,
    compared_entries,
    current_verdict,
)
from autotune.tuning.objectives import load_ms, pareto
from autotune.version import __version__

log = logging.getLogger("autotune")


PARAM_NAMES = {
    "provider": "execution provider",
    "graph_optimization_level": "graph optimization level",
    "intra_op_num_threads": "intra-op threads",
    "intra_op_spinning": "intra-op thread spinning",
    "execution_mode": "execution mode",
    "inter_op_num_threads": "inter-op threads",
    "enable_mem_pattern": "memory pattern",
    "enable_cpu_mem_arena": "CPU memory arena",
    "free_dimension_overrides": "free-dimension overrides",
    "gelu_approximation": "GELU approximation",
}


@dataclass
class ReportData:
    """What the report shows: the trials of one model × chip × ORT version × shapes."""

    model_name: str
    key: ResultKey
    trials: list[TrialRecord]
    search: SearchRecord | None  # the latest finished search of this key
    other_keys: list[tuple[str, str, int]]  # (ORT version, shapes, trials) also stored
    generated_at: str
    serving: list[str] = field(default_factory=list)  # serving verdicts and soak flags (show's)

    @property
    def measured(self) -> list[TrialRecord]:
        return [
            r
            for r in self.trials
            if r.status == Status.OK and r.ratio is not None and math.isfinite(r.ratio)
        ]

    @property
    def failures(self) -> list[TrialRecord]:
        return [r for r in self.trials if r.status not in (Status.OK, Status.PRUNED)]

    @property
    def pick_config_id(self) -> str | None:
        """The id of what apps get from the verdict (never the row's own claim)."""
        verdict = self.search.stored_verdict if self.search else None
        return verdict.pick_config_id if verdict else None


# -- public API --------------------------------------------------------------------------------


def write_report(
    model_path: str | Path,
    out_path: str | Path,
    *,
    db: str | None = None,
    png: str | Path | None = None,
    warn: Callable[[str], None] | None = None,
) -> Path:
    """Write the HTML report of ``model_path``'s trials on this chip to ``out_path``.

    The report covers the model's most recently measured ORT version and shapes. With ``png``,
    also writes a PNG chart (latency against load time) there; that needs matplotlib.
    Raises ModelError for a missing model, DatabaseError for an unusable database, and
    ReportError when nothing is stored for this model on this chip.
    """
    if png is not None:
        _need_matplotlib()  # before anything is written: no HTML without the PNG asked for
    data = load_report_data(model_path, db=db, warn=warn)
    if png is not None and not _points(data):
        raise ReportError("no measured configuration to plot; nothing was written")
    out = Path(out_path)
    try:
        out.write_text(render_html(data), encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot write the report to {out} ({exc.strerror})") from None
    if png is not None:
        write_png(data, Path(png))
    return out


def load_report_data(
    model_path: str | Path, *, db: str | None = None, warn: Callable[[str], None] | None = None
) -> ReportData:
    """The stored trials and latest verdict of ``model_path`` on this chip. A database layer
    that cannot be read is skipped and named to ``warn`` (default: a logged warning)."""
    from autotune.chip import current_chip
    from autotune.digest import model_digest

    digest = model_digest(model_path)
    chip = current_chip().chip_id
    with Store.open(db, write=False) as store:
        rows = store.trials_of_model(digest, chip)
        if store.problems and not store.layers:
            raise DatabaseError(printable(store.problems[0]))
        for problem in store.problems:
            if warn is None:
                log.warning("autotune: skipped %s", printable(problem))
            else:
                warn(f"skipped {printable(problem)}")
        if not rows:
            from autotune.model import search_hint

            hint = "" if store.problems else f"; run: {search_hint(model_path)}"
            raise ReportError(f"no trials of {model_path} on {chip} are stored{hint}")
        latest = max(rows, key=lambda r: (r.created_at or "", r.id or 0))
        key = ResultKey(digest, chip, latest.ort_version or "", latest.shapes or "")
        trials = store.trials(key)
        search = None
        for layer in list(store.layers):  # the personal layer's verdicts first, as in lookups
            # the lookup's rule (records.current_verdict), as show and list
            search = current_verdict(store.searches(key, layer=layer.index))
            if search is not None:
                break
    counts: dict[tuple[str, str], int] = {}
    for row in rows:
        k = (row.ort_version or "", row.shapes or "")
        counts[k] = counts.get(k, 0) + 1
    others = [
        (v, s, n) for (v, s), n in sorted(counts.items()) if (v, s) != (key.ort_version, key.shapes)
    ]
    from autotune.serving.results import verdicts
    from autotune.serving.text import serving_lines

    return ReportData(
        model_name=latest.model_name or Path(model_path).name,
        key=key,
        trials=trials,
        search=search,
        other_keys=others,
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        serving=serving_lines(verdicts(model_path, db=db)),
    )


def format_speedup(ratio: float | None, iqr: float | None = None, *, base: float = 1.0) -> str:
    """Speed-up against the default, ``base / ratio``, e.g. ``1.07×``; with the interquartile
    range of the ratio over the measured rounds, ``1.07× ±0.02`` (± half the IQR, carried over
    to the speed-up to first order)."""
    if not ratio or ratio <= 0 or not math.isfinite(ratio):
        return "-"
    speedup = base / ratio
    text = speedup_text(speedup, digits=2)
    if iqr is not None and math.isfinite(iqr):
        half = speedup * iqr / ratio / 2
        text += " ±<0.01" if half < 0.005 else f" ±{half:.2f}"
    return text


def pareto_front(rows: Sequence[TrialRecord]) -> list[str]:
    """Trial ids of the rows no other row beats on both latency ratio and load time
    (``objectives.pareto`` in two dimensions), by load time."""
    front = pareto(rows, memory=False)
    return [str(r.trial_uid) for r in sorted(front, key=lambda r: (load_ms(r) or 0.0, r.ratio))]


# -- HTML ------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} MB" if value >= 10 else f"{value:.1f} MB"


def _when(value: str | None) -> str:
    if not value:
        return "-"
    return value.replace("T", " ").replace("+00:00", " UTC")


def _short(provider: str) -> str:
    return provider.replace("ExecutionProvider", "")


def render_html(data: ReportData) -> str:
    """The report as one HTML document (a string)."""
    parts = [
        _head(data),
        _verdict(data),
        _trials_table(data),
        _pareto_section(data),
        _importance_section(data),
        _placement_section(data),
        _failures_section(data),
        _serving_section(data),
        _footer(data),
    ]
    title = f"autotune report: {data.model_name}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(parts)
        + "\n</main>\n</body>\n</html>\n"
    )


_CSS = """
:root { --fg: #1f2328; --muted: #656d76; --line: #d0d7de; --bg-alt: #f6f8fa;
  --accent: #0969da; --good: #1a7f37; --bad: #cf222e; --pick: #bf5700; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
  font: 15px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 10px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
p { margin: 6px 0 10px; }
.muted, figcaption, .note { color: var(--muted); }
.note { font-size: 13px; }
code, pre { font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { background: var(--bg-alt); border: 1px solid var(--line); border-radius: 6px;
  padding: 12px 14px; overflow-x: auto; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 18px; margin: 14px 0; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; }
.verdict { border: 1px solid var(--line); border-left: 5px solid var(--accent); border-radius: 6px;
  padding: 12px 18px; background: var(--bg-alt); }
.verdict .big { font-size: 30px; font-weight: 650; margin-right: 8px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 4px; font-size: 14px; }
th, td { padding: 5px 9px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
td { overflow-wrap: anywhere; }
th { background: var(--bg-alt); font-weight: 600; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fbfcfd; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.cfg { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
.faster { color: var(--good); font-weight: 600; }
.slower { color: var(--bad); }
.badge { display: inline-block; font: 600 11px/1.6 -apple-system, "Segoe UI", sans-serif;
  padding: 0 6px; border-radius: 9px; margin-left: 6px; vertical-align: 1px;
  border: 1px solid var(--line); color: var(--muted); background: #fff; }
.badge.pick { color: #fff; background: var(--pick); border-color: var(--pick); }
.badge.front { color: var(--accent); border-color: var(--accent); }
.status { font-weight: 600; }
.status.failed, .status.crashed, .status.timeout, .status.inaccurate, .status.ep_dropped {
  color: var(--bad); }
.bar { background: var(--bg-alt); border-radius: 3px; height: 14px; min-width: 220px; }
.bar > span { display: block; height: 14px; border-radius: 3px; background: var(--accent); }
figure { margin: 10px 0; }
svg { max-width: 100%; height: auto;
  font-family: -apple-system, "Segoe UI", Helvetica, sans-serif; }
footer { margin-top: 40px; font-size: 13px; color: var(--muted); }
li.flag { color: var(--bad); margin-left: 18px; }
"""


def _head(data: ReportData) -> str:
    k = data.key
    measured = data.measured
    pruned = sum(1 for r in data.trials if r.status == Status.PRUNED)
    dates = sorted(r.created_at for r in data.trials if r.created_at)
    when = _when(dates[0]) if dates else "-"
    if len(dates) > 1 and dates[-1] != dates[0]:
        when += f" to {_when(dates[-1])}"
    items = [
        ("model", f"<code>{_e(data.model_name)}</code>"),
        ("digest", f'<code title="{_e(k.model_digest)}">{_e(k.model_digest[:16])}</code>'),
        ("chip", _e(k.chip)),
        ("onnxruntime", _e(k.ort_version)),
        ("input shapes", f"<code>{_e(k.shapes)}</code>"),
        (
            "trials",
            f"{len(data.trials)} stored: {len(measured)} measured, {pruned} pruned, "
            f"{len(data.failures)} failed",
        ),
        ("measured", _e(when)),
    ]
    hosts = sorted({f"{r.host or '?'} ({r.os or '?'})" for r in data.trials})
    if hosts:
        items.append(("on", _e(", ".join(hosts[:3]) + (" …" if len(hosts) > 3 else ""))))
    meta = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in items)
    others = ""
    if data.other_keys:
        listed = "; ".join(
            f"onnxruntime {_e(v)}, shapes <code>{_e(s)}</code>: {n} trials"
            for v, s, n in data.other_keys
        )
        others = (
            f'<p class="note">Also stored for this model on this chip, not shown: {listed}.</p>'
        )
    return (
        f"<header>\n<h1>{_e(data.model_name)}: the fastest ONNX Runtime configuration here</h1>\n"
        f'<p class="muted">Every speed-up is against ORT\'s default configuration, measured in '
        f"the same rounds on the same machine.</p>\n"
        f'<dl class="meta">{meta}</dl>\n{others}</header>'
    )


def _verdict(data: ReportData) -> str:
    s = data.search
    if s is None:
        return _section("verdict", "Verdict", _no_verdict_yet(data))
    compared = compared_entries(s.verdict)
    stored = s.stored_verdict
    outcome = stored.outcome if stored else Outcome.INCONCLUSIVE
    pick_id = stored.pick_config_id if stored else None  # what apps get, not the row's claim
    parts = [
        f'<div class="verdict">{_verdict_body(s, outcome, pick_id)}</div>',
        f'<p class="note">Search finished {_e(_when(s.finished_at))}; the default and the '
        f"best {max(0, len(compared) - 1)} candidates were re-measured head to head, each in "
        "several fresh processes, to avoid the winner's curse of the best single trial.</p>",
        _compared_table(compared, pick_id, outcome),
    ]
    if pick_id != DEFAULT_CONFIG.config_id:
        parts.append(_snippet_block(s.pick_config, data.model_name))
    return _section("verdict", "Verdict", "\n".join(p for p in parts if p))


def _section(ident: str, title: str, body: str) -> str:
    return f'<section id="{ident}">\n<h2>{title}</h2>\n{body}\n</section>'


def _no_verdict_yet(data: ReportData) -> str:
    best = min(data.measured, key=lambda r: r.ratio or 0.0, default=None)
    text = (
        "No search of this model has finished yet, so there is no head-to-head verdict."
        if best is None
        else "No search of this model has finished yet, so there is no head-to-head verdict "
        "and apps get ORT's defaults; the best single trial's search estimate is "
        f"<code>{_e(best.label)}</code> at "
        f"{_e(format_speedup(best.ratio, best.ratio_iqr))}."
    )
    return f'<div class="verdict"><p>{text}</p></div>'


def _verdict_body(s: SearchRecord, outcome: str, pick_id: str | None) -> str:
    """The verdict in a sentence or two: inconclusive (why, with the resolution reached), ORT's
    defaults (what was ruled out), or the pick with its figure."""
    stored = s.stored_verdict
    reason = stored.reason if stored else None
    aa = _float(s.aa_spread)
    aa_text = f" A/A spread of ORT's defaults across processes: {aa:.1%}." if aa is not None else ""
    if outcome == "inconclusive":
        return (
            "<p><strong>Inconclusive.</strong> "
            f"{_e(reason or 'The head-to-head could not resolve the margin.')}. Nothing new "
            "reaches apps; search again on a quieter machine (measured trials are kept) or with "
            f"a longer <code>--timeout</code>.{_e(aa_text)}</p>"
        )
    if pick_id == DEFAULT_CONFIG.config_id or pick_id is None:
        why = reason or "no candidate beat it by the required margin with 95% confidence"
        return f"<p><strong>Keep ORT's default configuration.</strong> {_e(why)}.{_e(aa_text)}</p>"
    figure, interval = _verdict_speedup(s)
    return (
        f'<p><span class="big">{_e(figure)}</span><span class="muted">{_e(interval)}'
        "</span> the speed of ORT's defaults with "
        f"<code>{_e(stored.pick_label if stored else None)}</code></p>"
        f'<p class="note">p50 {_e(ms(s.pick_latency_ms_p50))} against '
        f"{_e(ms(s.default_latency_ms_p50))} for the default.{_e(aa_text)} "
        "Apps get it with <code>autotune.best_session(path)</code>.</p>"
    )


def _compared_table(compared: list[ComparedEntry], pick_id: str | None, outcome: str) -> str:
    if not compared:
        return ""
    rows = []
    for c in compared:
        value, low, high = _entry_speedup(c, compared[0])
        badges = ""
        if c.config_id == DEFAULT_CONFIG.config_id:
            badges += '<span class="badge">ORT default</span>'
        if c.config_id == pick_id and outcome != "inconclusive":
            badges += '<span class="badge pick">picked</span>'
        first = c is compared[0]
        speed = speedup_text(value, None if first else low, None if first else high, digits=2)
        css = _speed_class(1 / value if value else None)
        rows.append(
            f'<tr><td class="cfg">{_e(c.label)}{badges}</td>'
            f'<td class="{css}">{_e(speed)}</td>'
            f'<td class="num">{_e(ms(c.latency_ms_p50))}</td>'
            f'<td class="num">{_e(ms(c.latency_ms_p90))}</td>'
            f'<td class="num">{_e(ms(c.load))}</td></tr>'
        )
    return (
        '<table class="compared"><thead><tr><th>configuration</th>'
        '<th class="num">speed-up [95%]</th><th class="num">p50</th><th class="num">p90</th>'
        '<th class="num">load</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>"
    )


def _snippet_block(pick_config: str | None, model_name: str) -> str:
    """The pick in plain onnxruntime, for an app that does not use autotune."""
    from autotune.output.snippets import snippet

    try:
        code = snippet(SessionConfig.from_json(pick_config or ""), "python", model_name)
    except AutotuneError:
        return ""
    return (
        "<p>The same configuration in plain onnxruntime (also "
        "<code>autotune best MODEL --format python|swift|json</code>):</p>"
        f"<pre><code>{_e(code)}</code></pre>"
    )


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _verdict_speedup(search: SearchRecord) -> tuple[str, str]:
    """The verdict's speed-up and its interval, as stored (older rows: from ``pick_ratio``)."""
    stored = search.stored_verdict
    value = stored.speedup if stored else None
    if value is None or stored is None:
        return "-", ""
    low, high = _float(stored.speedup_low), _float(stored.speedup_high)
    interval = f" [{low:.2f}–{high:.2f}] (95%)" if low is not None and high is not None else ""
    return speedup_text(value, digits=2), interval


def _entry_speedup(
    entry: ComparedEntry, default: ComparedEntry
) -> tuple[float | None, float | None, float | None]:
    """A head-to-head entry's speed-up (and interval): the stored estimate, or for rows of
    earlier versions the default's ratio over this one's."""
    if entry.speedup is not None:
        return entry.speedup, entry.speedup_low, entry.speedup_high
    ratio, base = entry.ratio, default.ratio
    return ((base or 1.0) / ratio if ratio else None), None, None


def _speed_class(ratio: float | None, base: float | None = None) -> str:
    if not ratio:
        return "num"
    speedup = (base or 1.0) / ratio
    return "num faster" if speedup >= 1.03 else "num slower" if speedup <= 0.97 else "num"


def _trials_table(data: ReportData) -> str:
    rows = []
    front = set(pareto_front(_plotted(data)))
    for r in ordered_trials([t for t in data.trials if t.status in (Status.OK, Status.PRUNED)]):
        badges = ""
        if r.config_id == DEFAULT_CONFIG.config_id:
            badges += '<span class="badge">ORT default</span>'
        if r.config_id == data.pick_config_id:
            badges += '<span class="badge pick">picked</span>'
        if r.trial_uid in front:
            badges += '<span class="badge front">Pareto front</span>'
        if r.status == Status.OK:
            speed = format_speedup(r.ratio, r.ratio_iqr)
            speed_cell = f'<td class="{_speed_class(r.ratio)}">{_e(speed)}</td>'
        else:
            approx = f" at {format_speedup(r.ratio)}" if r.ratio else ""
            speed_cell = f'<td class="num slower">pruned{_e(approx)}</td>'
        rows.append(
            f'<tr><td class="num">{_e(r.trial_number)}</td>'
            f'<td class="cfg">{_e(r.label)}{badges}</td>{speed_cell}'
            f'<td class="num">{_e(ms(r.latency_ms_p50))}</td>'
            f'<td class="num">{_e(ms(r.latency_ms_p90))}</td>'
            f'<td class="num">{_e(ms(load_ms(r)))}</td>'
            f'<td class="num">{_e(_mb(r.peak_rss_mb))}</td>'
            f'<td class="note">{_e(r.error or "")}</td></tr>'
        )
    if not rows:
        table = "<p>No configuration was measured to the end (all failed).</p>"
    else:
        table = (
            '<table class="trials"><thead><tr><th class="num">#</th><th>configuration</th>'
            '<th class="num">speed-up</th><th class="num">p50</th><th class="num">p90</th>'
            '<th class="num">load</th><th class="num">peak RSS</th><th>note</th></tr></thead>'
            "<tbody>" + "".join(rows) + "</tbody></table>"
        )
    return (
        '<section id="trials">\n<h2>Configurations tried</h2>\n'
        "<p>Best first. <em>Speed-up</em> is ORT's default latency divided by this "
        "configuration's, the median over paired rounds; ± is half the spread of the middle half "
        "of the rounds. <em>Load</em> is session creation plus the first run (for a compiling "
        "EP, from its compile cache, as each launch after the first pays it). <em>Pruned</em> "
        "configurations were stopped early because they were clearly slower. The ORT default "
        "row measures the default against itself: its distance from 1.00× is the noise of these "
        "measurements.</p>\n"
        f"{table}\n</section>"
    )


def _plotted(data: ReportData) -> list[TrialRecord]:
    """The measured rows the chart can place: a positive, finite load time and ratio."""
    return [
        r
        for r in data.measured
        if (load := load_ms(r)) is not None
        and 0 < load < math.inf
        and r.ratio
        and r.trial_uid is not None
    ]


def _points(data: ReportData) -> list[tuple[str, float, float]]:
    return [(str(r.trial_uid), float(load_ms(r) or 0), float(r.ratio or 0)) for r in _plotted(data)]


def _pareto_section(data: ReportData) -> str:
    points = _points(data)
    head = '<section id="pareto">\n<h2>Speed against load time</h2>\n'
    if not points:
        return head + "<p>No measured configuration to plot.</p>\n</section>"
    front = pareto_front(_plotted(data))
    by_uid = {r.trial_uid: r for r in data.measured}
    svg = _scatter_svg(data, points, front)
    items = []
    for i, uid in enumerate(front, start=1):
        r = by_uid[uid]
        items.append(
            f'<tr><td class="num">{i}</td><td class="cfg">{_e(r.label)}</td>'
            f'<td class="num">{_e(format_speedup(r.ratio, r.ratio_iqr))}</td>'
            f'<td class="num">{_e(ms(load_ms(r)))}</td></tr>'
        )
    return (
        head + "<p>Each dot is a measured configuration. Lower is faster to run, further left is "
        "faster to load. The blue line joins the Pareto front: the configurations that no other "
        "one beats on both.</p>\n"
        f"<figure>{svg}<figcaption>Latency relative to ORT's default (the dashed line) against "
        "load time (session creation + first run); hover a dot for its configuration."
        "</figcaption></figure>\n"
        '<table class="front"><thead><tr><th class="num">front</th><th>configuration</th>'
        '<th class="num">speed-up</th><th class="num">load</th></tr></thead><tbody>'
        + "".join(items)
        + "</tbody></table>\n</section>"
    )


def _nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    span = high - low
    if span <= 0:
        return [low]
    raw = span / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(low / step) * step
    ticks = []
    v = first
    while v <= high + step * 1e-9:
        ticks.append(round(v, 10))
        v += step
    return ticks


def _log_ticks(low: float, high: float) -> list[float]:
    ticks = []
    for decade in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for m in (1, 2, 5):
            v = m * 10.0**decade
            if low <= v <= high:
                ticks.append(v)
    return ticks


def _tick_label(v: float) -> str:
    if v >= 1000:
        return f"{v / 1000:g} s"
    return f"{v:g}"


@dataclass(frozen=True)
class _Axes:
    """The chart's plot area and scales: load time (log when it spans 8x) against latency."""

    width: int
    height: int
    left: int
    top: int
    pw: int
    ph: int
    x_lo: float
    x_hi: float
    y_lo: float
    y_hi: float
    log_x: bool

    @classmethod
    def fit(cls, loads: list[float], ratios: list[float]) -> _Axes:
        width, height = 760, 380
        left, right, top, bottom = 70, 24, 18, 56
        x_lo, x_hi = min(loads), max(loads)
        log_x = x_hi / x_lo > 8
        if log_x:
            x_lo, x_hi = x_lo / 1.25, x_hi * 1.25
        else:
            pad = (x_hi - x_lo) * 0.08 or x_hi * 0.1 or 1.0
            x_lo, x_hi = max(0.0, x_lo - pad), x_hi + pad
        y_lo, y_hi = min(ratios), max(ratios)
        pad = (y_hi - y_lo) * 0.1 or 0.05
        pw, ph = width - left - right, height - top - bottom
        return cls(width, height, left, top, pw, ph, x_lo, x_hi, y_lo - pad, y_hi + pad, log_x)

    def sx(self, v: float) -> float:
        if self.log_x:
            span = math.log10(self.x_hi) - math.log10(self.x_lo)
            frac = (math.log10(v) - math.log10(self.x_lo)) / span
        else:
            frac = (v - self.x_lo) / (self.x_hi - self.x_lo)
        return self.left + frac * self.pw

    def sy(self, v: float) -> float:
        return self.top + (1 - (v - self.y_lo) / (self.y_hi - self.y_lo)) * self.ph


def _scatter_svg(data: ReportData, points: list[tuple[str, float, float]], front: list[str]) -> str:
    ax = _Axes.fit([p[1] for p in points], [p[2] for p in points] + [1.0])
    svg = [
        f'<svg id="pareto-chart" viewBox="0 0 {ax.width} {ax.height}" width="{ax.width}" '
        f'height="{ax.height}" role="img" aria-label="latency against load time">',
        f'<rect x="{ax.left}" y="{ax.top}" width="{ax.pw}" height="{ax.ph}" fill="#fbfcfd" '
        'stroke="#d0d7de"/>',
        *_grid(ax),
        *_front_line(ax, points, front),
        *_point_marks(ax, data, points, front),
        "</svg>",
    ]
    return "\n".join(svg)


def _grid(ax: _Axes) -> list[str]:
    """Ticks, grid lines, the default's 1.0 line and the axis titles."""
    out = []
    for t in _log_ticks(ax.x_lo, ax.x_hi) if ax.log_x else _nice_ticks(ax.x_lo, ax.x_hi):
        x = ax.sx(t)
        out.append(
            f'<line x1="{x:.1f}" y1="{ax.top}" x2="{x:.1f}" y2="{ax.top + ax.ph}" '
            'stroke="#eaeef2"/>'
            f'<text x="{x:.1f}" y="{ax.top + ax.ph + 18}" text-anchor="middle" font-size="12" '
            f'fill="#656d76">{_e(_tick_label(t))}</text>'
        )
    for t in _nice_ticks(ax.y_lo, ax.y_hi, 5):
        y = ax.sy(t)
        out.append(
            f'<line x1="{ax.left}" y1="{y:.1f}" x2="{ax.left + ax.pw}" y2="{y:.1f}" '
            'stroke="#eaeef2"/>'
            f'<text x="{ax.left - 8}" y="{y + 4:.1f}" text-anchor="end" font-size="12" '
            f'fill="#656d76">{t:.2f}</text>'
        )
    y1 = ax.sy(1.0)
    scale = " (log scale)" if ax.log_x else ""
    out.append(
        f'<line x1="{ax.left}" y1="{y1:.1f}" x2="{ax.left + ax.pw}" y2="{y1:.1f}" '
        'stroke="#656d76" stroke-dasharray="5 4"/>'
    )
    out.append(
        f'<text x="{ax.left + ax.pw / 2:.1f}" y="{ax.height - 12}" text-anchor="middle" '
        f'font-size="13" fill="#1f2328">load time: session creation + first run, ms{scale}</text>'
        f'<text transform="translate(18 {ax.top + ax.ph / 2:.1f}) rotate(-90)" '
        'text-anchor="middle" font-size="13" fill="#1f2328">latency vs ORT default (lower is '
        "faster)</text>"
    )
    return out


def _front_line(ax: _Axes, points: list[tuple[str, float, float]], front: list[str]) -> list[str]:
    """The Pareto front as steps: it holds its ratio until the next point's load time."""
    if len(front) < 2:
        return []
    by_id = {p[0]: p for p in points}
    coords = []
    for i, pid in enumerate(front):
        _, load, ratio = by_id[pid]
        if i:
            coords.append(f"{ax.sx(load):.1f},{ax.sy(by_id[front[i - 1]][2]):.1f}")
        coords.append(f"{ax.sx(load):.1f},{ax.sy(ratio):.1f}")
    return [
        f'<polyline points="{" ".join(coords)}" fill="none" stroke="#0969da" '
        'stroke-width="1.5" stroke-opacity="0.7"/>'
    ]


def _point_marks(
    ax: _Axes, data: ReportData, points: list[tuple[str, float, float]], front: list[str]
) -> list[str]:
    """Every trial as a point with its tooltip; the front numbered, drawn last (on top); the
    default and the pick ringed."""
    out = []
    rows = {r.trial_uid: r for r in data.measured}
    front_index = {pid: i for i, pid in enumerate(front, start=1)}
    for pid, load, ratio in sorted(points, key=lambda p: p[0] in front_index):
        r = rows[pid]
        x, y = ax.sx(load), ax.sy(ratio)
        on_front = pid in front_index
        fill, radius = ("#0969da", 6.0) if on_front else ("#8c959f", 5.0)
        classes = "point front" if on_front else "point"
        tip = f"{r.label}: {format_speedup(ratio, r.ratio_iqr)} speed-up, load {ms(load)}"
        out.append(
            f'<circle class="{classes}" cx="{x:.1f}" cy="{y:.1f}" r="{radius}" '
            f'fill="{fill}" fill-opacity="0.85"><title>{_e(tip)}</title></circle>'
        )
        if on_front:
            out.append(
                f'<text x="{x + 8:.1f}" y="{y - 7:.1f}" font-size="11" fill="#0969da" '
                f'font-weight="600">{front_index[pid]}</text>'
            )
        marks = []
        if r.config_id == DEFAULT_CONFIG.config_id:
            marks.append(("default", "#1f2328"))
        if r.config_id == data.pick_config_id and r.config_id != DEFAULT_CONFIG.config_id:
            marks.append(("picked", "#bf5700"))
        for j, (text, color) in enumerate(marks):
            out.append(
                f'<circle class="ring" cx="{x:.1f}" cy="{y:.1f}" r="{radius + 4 + 3 * j}" '
                f'fill="none" stroke="{color}" stroke-width="1.5"/>'
                f'<text x="{x + 12:.1f}" y="{y + 16 + 13 * j:.1f}" font-size="12" '
                f'fill="{color}" font-weight="600">{text}</text>'
            )
    return out


def _importance_section(data: ReportData) -> str:
    head = '<section id="importance">\n<h2>Which options mattered</h2>\n'
    from autotune.tuning.importances import param_importances

    importances, note = param_importances(data.trials)
    if importances is None:
        return head + f"<p>{_e(note[0].upper() + note[1:])}.</p>\n</section>"
    top = max(importances.values()) or 1.0
    rows = []
    for name, value in importances.items():
        friendly = PARAM_NAMES.get(name, name)
        rows.append(
            f'<tr><td>{_e(friendly)} <code class="muted">{_e(name)}</code></td>'
            f'<td class="num">{value:.0%}</td>'
            f'<td><div class="bar"><span style="width:{100 * value / top:.1f}%"></span>'
            "</div></td></tr>"
        )
    return (
        head + "<p>How much of the difference between fast and slow configurations each option "
        "explains, from Optuna's parameter importances over the stored trials.</p>\n"
        '<table class="importance"><thead><tr><th>option</th><th class="num">importance</th>'
        "<th></th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>\n"
        f'<p class="note">{_e(note)}.</p>\n</section>'
    )


def _placement_section(data: ReportData) -> str:
    head = '<section id="placement">\n<h2>Where the nodes ran</h2>\n'
    groups: dict[tuple[str, str], list[TrialRecord]] = {}
    for r in data.trials:
        p = r.placement
        if not isinstance(p, dict) or not p.get("available"):
            continue
        shape = json.dumps(
            {k: p.get(k) for k in ("nodes", "partitions", "cpu_fallback_ops")}, sort_keys=True
        )
        groups.setdefault((r.provider or "?", shape), []).append(r)
    if not groups:
        return head + "<p>No placement was recorded (it needs onnxruntime ≥ 1.23).</p>\n</section>"
    rows = []
    for (provider, shape), members in sorted(groups.items()):
        p = json.loads(shape)
        nodes = p.get("nodes") if isinstance(p.get("nodes"), dict) else {}
        parts = p.get("partitions") if isinstance(p.get("partitions"), dict) else {}
        fallback = p.get("cpu_fallback_ops") if isinstance(p.get("cpu_fallback_ops"), dict) else {}
        node_text = ", ".join(
            f"{_short(str(ep))} {n}" for ep, n in sorted(nodes.items(), key=lambda kv: str(kv[0]))
        )
        part_text = ", ".join(f"{_short(str(ep))} {n}" for ep, n in sorted(parts.items())) or "-"
        fb_items = list(fallback.items())
        fb_text = ", ".join(f"{op} ×{n}" for op, n in fb_items[:8]) + (
            " …" if len(fb_items) > 8 else ""
        )
        example = min(members, key=lambda m: (m.status != Status.OK, m.ratio or 9e9))
        rows.append(
            f"<tr><td>{_e(_short(provider))}</td><td>{_e(node_text or '-')}</td>"
            f"<td>{_e(part_text)}</td><td>{_e(fb_text or '-')}</td>"
            f'<td class="num">{len(members)}</td><td class="cfg">{_e(example.label)}</td></tr>'
        )
    return (
        head + "<p>Nodes per execution provider as ORT assigned them; partitions are the "
        "subgraphs a compiling EP took (each boundary costs a copy); fallback ops are the op "
        "types left on the CPU although another EP was asked for.</p>\n"
        '<table class="placement"><thead><tr><th>asked for</th><th>nodes</th><th>partitions</th>'
        '<th>CPU fallback ops</th><th class="num">trials</th><th>for example</th></tr></thead>'
        "<tbody>" + "".join(rows) + "</tbody></table>\n</section>"
    )


def _failures_section(data: ReportData) -> str:
    head = '<section id="failures">\n<h2>Failures</h2>\n'
    failures = data.failures
    if not failures:
        return head + "<p>No configuration failed.</p>\n</section>"
    rows = []
    for r in sorted(failures, key=lambda r: (r.status or "", r.trial_number or 0)):
        status = str(r.status or "?")
        rows.append(
            f'<tr><td class="num">{_e(r.trial_number)}</td>'
            f'<td class="status {_e(status)}">{_e(status.replace("_", " "))}</td>'
            f'<td class="cfg">{_e(r.label)}</td><td>{_e(r.error or "-")}</td></tr>'
        )
    return (
        head + "<p>Recorded and never tried again: a crash, a hang (timeout), outputs outside the "
        "accuracy tolerance (inaccurate), or an EP that ORT dropped (ep dropped).</p>\n"
        '<table class="failures"><thead><tr><th class="num">#</th><th>status</th>'
        "<th>configuration</th><th>reason</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>\n</section>"
    )


def _serving_section(data: ReportData) -> str:
    """The newest serving verdict per objective, concurrency and arrival, and the soaks' flags,
    as ``autotune show`` lists them (nothing when none is stored)."""
    if not data.serving:
        return ""
    items = "\n".join(
        f'<li class="flag">{_e(line.strip())}</li>'
        if line.startswith("  flag")
        else f"<li>{_e(line)}</li>"
        for line in data.serving
    )
    note = (
        '<p class="note">Throughput under concurrency, cold start and long runs '
        "(<code>autotune search --objective</code>, <code>autotune soak</code>); apps get "
        "them through <code>autotune.best_serving</code> and "
        "<code>autotune.serving.runtime.best_start</code>.</p>"
    )
    return _section("serving", "Serving", f"{note}\n<ul>\n{items}\n</ul>")


def _footer(data: ReportData) -> str:
    return (
        f"<footer>Written by autotune {_e(__version__)} on {_e(_when(data.generated_at))}. "
        "Search again with <code>autotune search MODEL</code>; list the trials in a terminal "
        "with <code>autotune show MODEL</code>.</footer>"
    )


# -- PNG -------------------------------------------------------------------------------------


def _need_matplotlib() -> None:
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError:
        raise ReportError(
            "--png needs matplotlib, the autotune[report] extra: install it with "
            "pip install matplotlib (or pip install '.[report]' in autotune's checkout); "
            "nothing was written"
        ) from None


def write_png(data: ReportData, path: Path) -> Path:
    """A PNG chart of latency against load time, default and pick marked (needs matplotlib)."""
    _need_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = _points(data)
    if not points:
        raise ReportError("no measured configuration to plot; the PNG was not written")
    front = pareto_front(_plotted(data))
    by_id = {p[0]: p for p in points}
    rows = {r.trial_uid: r for r in data.measured}
    fig = Figure(figsize=(8, 4.5), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    others = [p for p in points if p[0] not in set(front)]
    ax.scatter(
        [p[1] for p in others],
        [p[2] for p in others],
        s=28,
        color="#8c959f",
        alpha=0.8,
        label="configuration",
        zorder=3,
    )
    fx = [by_id[p][1] for p in front]
    fy = [by_id[p][2] for p in front]
    ax.step(fx, fy, where="post", color="#0969da", alpha=0.6, linewidth=1.3, zorder=2)
    ax.scatter(fx, fy, s=36, color="#0969da", label="Pareto front", zorder=4)
    ax.axhline(
        1.0, color="#57606a", linestyle="--", linewidth=1, zorder=2.5, label="ORT default = 1.0"
    )
    for pid, load, ratio in points:
        r = rows[pid]
        if r.config_id == DEFAULT_CONFIG.config_id:
            ax.scatter(
                [load],
                [ratio],
                s=140,
                facecolors="none",
                edgecolors="#1f2328",
                linewidths=1.6,
                label="ORT default, as a trial",
                zorder=5,
            )
        elif r.config_id == data.pick_config_id:
            ax.scatter(
                [load],
                [ratio],
                s=220,
                marker="*",
                color="#bf5700",
                label=f"picked: {r.label}",
                zorder=6,
            )
    loads = [p[1] for p in points]
    if max(loads) / min(loads) > 8:
        ax.set_xscale("log")
    ax.set_xlabel("load time: session creation + first run (ms)")
    ax.set_ylabel("latency vs ORT default (lower is faster)")
    ax.set_title(
        f"{data.model_name} on {data.key.chip}, onnxruntime {data.key.ort_version}", fontsize=11
    )
    ax.grid(True, color="#eaeef2", zorder=0)
    ax.legend(fontsize=8, loc="best", frameon=False)
    try:
        fig.savefig(path, format="png")
    except OSError as exc:
        raise ReportError(f"cannot write the PNG to {path} ({exc.strerror})") from None
    return path
