"""The HTML report of a real (small) search: self-contained, complete, and escaped."""

from __future__ import annotations

import html
import json
import re
import shutil
import sqlite3
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from autotune.commands.cli_report import report_cmd
from autotune.errors import AutotuneError, ReportError
from autotune.output.html_report import format_speedup, pareto_front, write_report
from autotune.store.database import Store
from autotune.store.records import TrialRecord
from autotune.tuning.importances import param_importances
from autotune.tuning.search import SearchOptions, run_search
from tests import browser, models
from tests.conftest import FAST

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """One real search of the MLP for the whole module: (model, database)."""
    root = tmp_path_factory.mktemp("report")
    db = root / "autotune.db"
    with pytest.MonkeyPatch.context() as mp:  # the autouse isolation is per test; this is ours
        mp.setenv("AUTOTUNE_DB", str(db))
        mp.setenv("AUTOTUNE_CACHE_DIR", str(root / "cache"))
        model = models.mlp(root / "mlp.onnx")
        options = SearchOptions(trials=6, protocol=FAST, seed=1, db=str(db), allow_busy=True)
        run_search(model, options)
        yield model, db


def _rows(db: Path, table: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY rowid")]
    finally:
        conn.close()


def _section(page: str, name: str) -> str:
    found = re.search(rf'<section id="{name}">(.*?)</section>', page, re.S)
    assert found, f"no {name} section"
    return found.group(1)


def _copy_db(db: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy.db"
    shutil.copy(db, copy)
    for suffix in ("-wal", "-shm"):
        if Path(str(db) + suffix).exists():
            shutil.copy(str(db) + suffix, str(copy) + suffix)
    return copy


@pytest.mark.slow
def test_report_is_self_contained_and_complete(searched: tuple[Path, Path], tmp_path: Path) -> None:
    model, db = searched
    out = write_report(model, tmp_path / "report.html", db=str(db))
    page = out.read_text(encoding="utf-8")
    trials = _rows(db, "trials")
    search = _rows(db, "searches")[-1]

    # self-contained: no external references, no scripts, nothing fetched
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower() and "<link" not in page.lower()

    assert "mlp.onnx" in page
    assert search["chip"] in page and search["ort_version"] in page
    for row in trials:
        assert html.escape(row["label"]) in page
    verdict = _section(page, "verdict")
    if search["outcome"] == "inconclusive":
        assert "Inconclusive." in verdict and "picked" not in verdict
    elif search["pick_config_id"] == trials[0]["config_id"]:  # trial 0 is ORT's default
        assert "Keep ORT's default configuration" in verdict
    else:
        assert f'<span class="big">{search["speedup"]:.2f}×</span>' in verdict
        assert html.escape(search["pick_label"]) in verdict

    svg = re.search(r'<svg id="pareto-chart".*?</svg>', page, re.S)
    assert svg
    ok = [r for r in trials if r["status"] == "ok" and r["ratio"] is not None]
    assert svg.group(0).count('class="point') == len(ok) > 0
    assert 'class="point front"' in svg.group(0)

    assert "<h2>Which options mattered</h2>" in page
    placement = _section(page, "placement")
    assert "CPU 3" in placement  # the MLP's three nodes, all on the CPU EP
    if all(r["status"] in ("ok", "pruned") for r in trials):
        assert "No configuration failed." in _section(page, "failures")


@pytest.mark.slow
def test_failures_are_listed_with_reasons_and_escaped(
    searched: tuple[Path, Path], tmp_path: Path
) -> None:
    model, db = searched
    copy = _copy_db(db, tmp_path)
    base = _rows(copy, "trials")[0]
    hostile = {
        **base,
        "id": None,
        "trial_uid": "hostile-trial",
        "trial_number": 99,
        "config_id": "0123456789abcdef",
        "status": "crashed",
        "label": HOSTILE,
        "error": 'worker died (SIGSEGV) <img src="https://evil.example/x.png">',
        "ratio": None,
        "host": '"><script>alert(2)</script>',
        "placement": '{"available": true, "nodes": {"<b>EP</b>": 1}}',
    }
    conn = sqlite3.connect(copy)
    with conn:
        cols = ", ".join(hostile)
        conn.execute(
            f"INSERT INTO trials ({cols}) VALUES ({', '.join('?' * len(hostile))})",
            list(hostile.values()),
        )
    conn.close()

    page = write_report(model, tmp_path / "report.html", db=str(copy)).read_text()
    failures = _section(page, "failures")
    assert "crashed" in failures
    assert html.escape(HOSTILE) in failures
    assert (
        "worker died (SIGSEGV) &lt;img src=&quot;https://evil.example/x.png&quot;&gt;" in failures
    )
    assert "<script" not in page.lower()
    assert "<img" not in page.lower()
    assert "<b>EP</b>" not in page and "&lt;b&gt;EP&lt;/b&gt;" in page


@pytest.mark.slow
def test_png_chart(searched: tuple[Path, Path], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    model, db = searched
    png = tmp_path / "chart.png"
    write_report(model, tmp_path / "report.html", db=str(db), png=png)
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 1000


@pytest.mark.slow
def test_cli_writes_the_report_in_the_working_directory(
    searched: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, db = searched
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(report_cmd, [str(model), "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert result.output == "wrote mlp-report.html\n"
    assert (tmp_path / "mlp-report.html").read_text().startswith("<!DOCTYPE html>")
    out = tmp_path / "r.html"
    result = runner.invoke(report_cmd, [str(model), "-o", str(out)], env={"AUTOTUNE_DB": str(db)})
    assert result.exit_code == 0, result.output
    assert out.exists()


def test_no_trials_names_the_search_command(tmp_path: Path) -> None:
    model = models.mlp(tmp_path / "fresh.onnx")
    with pytest.raises(ReportError) as info:
        write_report(model, tmp_path / "report.html")
    message = str(info.value)
    assert isinstance(info.value, AutotuneError)
    assert "\n" not in message
    assert f"run: autotune search {model}" in message
    assert not (tmp_path / "report.html").exists()


def _provider_choices(params: Any) -> int:
    """How many choices the study's provider parameter had (stored as Optuna's JSON)."""
    stored = json.loads(params) if isinstance(params, str) else params
    dist = json.loads(stored["distributions"]["provider"])
    return len(dist["attributes"]["choices"])


@pytest.mark.slow
def test_importances_need_enough_trials(searched: tuple[Path, Path]) -> None:
    _, db = searched
    with Store.open(str(db)) as store:
        rows = store.trials_of_model(_rows(db, "trials")[0]["model_digest"])
    importances, note = param_importances(rows[:2])
    assert importances is None and note.startswith("not enough trials to tell")
    importances, note = param_importances(rows)
    if importances is not None:  # six trials may or may not tell, but never wrongly shaped
        assert abs(sum(importances.values()) - 1.0) < 1e-6 or sum(importances.values()) < 1.0
        choices = {_provider_choices(r.params) for r in rows if r.params}
        if choices == {1}:  # one choice here: it cannot matter (a plugin device makes more)
            assert "provider" not in importances


def test_pareto_front_and_speedup_format() -> None:
    rows = [
        TrialRecord(trial_uid=uid, ratio=ratio, session_create_ms=load, first_run_ms=0.0)
        for uid, load, ratio in [("a", 10.0, 1.0), ("b", 5.0, 1.2), ("c", 20.0, 0.9),
                                 ("d", 15.0, 1.1)]
    ]  # fmt: skip
    assert pareto_front(rows) == ["b", "a", "c"]  # d: slower and slower to load than a
    assert format_speedup(0.5) == "2.00×"
    assert format_speedup(1 / 1.07, 0.04 / 1.07) == "1.07× ±0.02"
    assert format_speedup(0.97, 0.001) == "1.03× ±<0.01"
    assert format_speedup(None) == "-"


LAPTOP_WIDTH = 1366  # CSS pixels: the most common laptop screen


@pytest.mark.slow
def test_report_renders_in_a_real_browser(searched: tuple[Path, Path], tmp_path: Path) -> None:
    """autotune report's page in headless Chromium at a laptop's width: no console errors, every
    section laid out, the chart wide enough to read and not wider than the window."""
    binary = browser.find_chromium()
    if binary is None:
        pytest.skip(
            "no Chromium binary on PATH (chromium, chromium-browser, google-chrome): "
            "install Debian's package with apt-get install chromium, as .ci/run does"
        )
    model, db = searched
    result = CliRunner().invoke(
        report_cmd, [str(model), "--db", str(db), "-o", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 0, result.output

    page = browser.render(binary, tmp_path / "r.html", width=LAPTOP_WIDTH)
    (tmp_path / "report-screenshot.png").write_bytes(page.png)  # kept for a person to look at

    assert page.errors == []
    assert page.viewport == LAPTOP_WIDTH
    assert page.scroll_width <= LAPTOP_WIDTH  # nothing makes the page scroll sideways
    for section in ("verdict", "placement", "failures"):
        assert section in page.sections
    charts = {chart["id"]: chart for chart in page.charts}
    pareto = charts["pareto-chart"]
    assert 600 <= pareto["width"] <= LAPTOP_WIDTH
    assert pareto["height"] >= 300
    assert pareto["smallestFontPx"] >= 11  # the axis labels, as rendered
    assert page.png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", page.png[16:24])  # the PNG's IHDR
    assert (width, height) == (LAPTOP_WIDTH, page.height) and height > 900


@pytest.mark.slow
def test_serving_verdicts_and_soak_flags_are_in_the_report(
    searched: tuple[Path, Path], tmp_path: Path
) -> None:
    """A stored throughput verdict and a soak's flags appear in a Serving section (as ``show``
    lists them, escaped); a report without any has no such section."""
    from autotune.serving.results import SOAK, THROUGHPUT, ServingKey, store_verdict

    model, db = searched
    copy = _copy_db(db, tmp_path)
    before = write_report(model, tmp_path / "before.html", db=str(copy)).read_text()
    assert '<section id="serving">' not in before
    store_verdict(
        str(copy),
        ServingKey(model, THROUGHPUT, 2),
        outcome="pick",
        pick="{}",
        pick_label="2 sessions, CPU ALL t1",
        value=2000.0,
        baseline_value=1500.0,
    )
    store_verdict(
        str(copy),
        ServingKey(model, SOAK),
        outcome="flagged",
        pick="{}",
        pick_label="CPU ALL t0 <no arena>",
        flags={"CPU ALL t0 <no arena>": ["memory: RSS +90.0 MB after warm-up"]},
    )
    page = write_report(model, tmp_path / "after.html", db=str(copy)).read_text()
    serving = _section(page, "serving")
    assert "throughput at concurrency 2 (closed loop): pick, 2 sessions, CPU ALL t1" in serving
    assert "2000 req/s against 1500" in serving
    assert "flag (CPU ALL t0 &lt;no arena&gt;): memory: RSS +90.0 MB" in serving
