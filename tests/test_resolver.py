"""best_session / best_config: what an app gets, with and without stored results."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

import autotune
from autotune.config import SessionConfig
from autotune.errors import SessionBuildError
from autotune.store import Store


def _store_pick(
    mlp_path: Path,
    config: SessionConfig,
    *,
    ort_version: str | None = None,
    finished_at: str = "2026-11-23T00:00:00+00:00",
    **search: object,
) -> None:
    """Write a finished search whose verdict is ``config`` (as a search on this chip would)."""
    from autotune.chip import current_chip
    from autotune.digest import model_digest

    chip = current_chip()
    with Store.open(write=True) as store:
        store.upsert_search(
            {
                "search_id": config.config_id + (ort_version or ""),
                "model_digest": model_digest(mlp_path),
                "model_name": mlp_path.name,
                "chip": chip.chip_id,
                "ort_version": ort_version or chip.ort_version,
                "shapes": "x=1x16",
                "default_shapes": 1,
                "state": "done",
                "finished_at": finished_at,
                "pick_config": config.to_json(),
                "pick_ratio": 0.9,
                **search,
            }
        )
        store.record_trial(
            {
                "trial_uid": "t-" + config.config_id + (ort_version or ""),
                "model_digest": model_digest(mlp_path),
                "chip": chip.chip_id,
                "ort_version": ort_version or chip.ort_version,
                "shapes": "x=1x16",
                "default_shapes": 1,
                "config_id": config.config_id,
                "config": config.to_json(),
                "status": "ok",
                "ratio": 0.9,
            }
        )


def test_no_database_gives_defaults_and_one_warning(
    mlp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="autotune"):
        session = autotune.best_session(mlp_path)
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert session.get_session_options().intra_op_num_threads == 0
    assert len(caplog.records) == 1
    assert "no tuned configuration" in caplog.records[0].getMessage()
    assert autotune.best_config(mlp_path) is None
    with pytest.raises(SessionBuildError, match="run: autotune search"):
        autotune.best_session(mlp_path, strict=True)


def test_stored_pick_is_applied(mlp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = SessionConfig(
        graph_optimization_level="ORT_ENABLE_BASIC", intra_op_num_threads=1
    ).canonical()
    _store_pick(mlp_path, config)
    best = autotune.best_config(mlp_path)
    assert best is not None and best.config == config and not best.stale
    assert best.source == "verdict" and best.speedup == pytest.approx(1 / 0.9)
    with caplog.at_level(logging.WARNING, logger="autotune"):
        session = autotune.best_session(mlp_path, warmup=True)
    assert not caplog.records
    options = session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert str(options.graph_optimization_level).endswith("ORT_ENABLE_BASIC")


def test_config_for_another_build_falls_back(
    mlp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a valid CUDA configuration (e.g. merged from a GPU machine) cannot build with this wheel
    cuda = SessionConfig(
        providers=(("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"}),)
    ).canonical()
    _store_pick(mlp_path, cuda)
    with caplog.at_level(logging.WARNING, logger="autotune"):
        session = autotune.best_session(mlp_path)
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert any("failed to build here" in r.getMessage() for r in caplog.records)
    with pytest.raises(SessionBuildError, match="failed to build here"):
        autotune.best_session(mlp_path, strict=True)


def test_unsafe_stored_config_is_refused(mlp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    older = SessionConfig(intra_op_num_threads=1).canonical()
    _store_pick(mlp_path, older, finished_at="2026-11-01T00:00:00+00:00")
    newer = SessionConfig(intra_op_num_threads=2).canonical()
    _store_pick(mlp_path, newer, finished_at="2026-11-23T00:00:00+00:00")
    db = Path(Store.open().paths[0])
    conn = sqlite3.connect(db)
    hostile = json.dumps(
        {
            "providers": [["CPUExecutionProvider", {}]],
            "session_entries": {"session.debug_layout_transformation": "1"},
        }
    )
    with conn:
        conn.execute("UPDATE searches SET pick_config = ? WHERE search_id = ?",
                     (hostile, newer.config_id))  # fmt: skip
    conn.close()
    with caplog.at_level(logging.WARNING, logger="autotune"):
        best = autotune.best_config(mlp_path)
    # the hostile (newest) verdict is refused; the older valid verdict is used instead
    assert best is not None and best.config == older and best.source == "verdict"
    (record,) = caplog.records
    assert "refused 1 stored configuration (session entry" in record.getMessage()


def test_stale_result_from_another_ort_version(mlp_path: Path) -> None:
    config = SessionConfig(intra_op_num_threads=1).canonical()
    _store_pick(mlp_path, config, ort_version="0.0.1")
    best = autotune.best_config(mlp_path)
    assert best is not None and best.stale and best.key.ort_version == "0.0.1"


def test_corrupt_database_does_not_break_the_app(
    mlp_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "broken.db"
    bad.write_bytes(b"garbage" * 100)
    with caplog.at_level(logging.WARNING, logger="autotune"):
        session = autotune.best_session(mlp_path, db=str(bad))
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert "is not a SQLite database" in caplog.records[0].getMessage()
