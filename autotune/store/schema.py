"""The tuning database's schema, as named transactional migrations (sqlite-utils).

Imported only when a database is written: sqlite-utils costs ~60 ms to import, which the
run-time lookup (``best_session``) does not pay. Every migration's name must also be listed in
``autotune.store.database.KNOWN_MIGRATIONS`` (a test checks it).
"""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.migrations import Migrations

MIGRATION_SET = "autotune"
migrations = Migrations(MIGRATION_SET)


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    db["trials"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "trial_uid": str,
            "search_id": str,
            "trial_number": int,
            "model_digest": str,
            "model_name": str,
            "chip": str,
            "ort_version": str,
            "shapes": str,
            "default_shapes": int,
            "config_id": str,
            "config": str,
            "provider": str,
            "label": str,
            "status": str,
            "error": str,
            "ratio": float,
            "ratio_iqr": float,
            "ratios": str,
            "rounds_kept": int,
            "rounds_dropped": int,
            "latency_ms_p50": float,
            "latency_ms_p90": float,
            "reference_ms_p50": float,
            "runs": int,
            "session_create_ms": float,
            "first_run_ms": float,
            "session_rss_mb": float,
            "peak_rss_mb": float,
            "max_abs_err": float,
            "err_to_tol": float,
            "floor_ms": float,
            "placement": str,
            "params": str,
            "created_at": str,
            "autotune_version": str,
            "ort_build": str,
            "host": str,
            "host_id": str,
            "user": str,
            "os": str,
        },
        pk="id",
        not_null={"trial_uid", "model_digest", "chip", "ort_version", "shapes", "config_id"},
    )
    db["trials"].create_index(["trial_uid"], unique=True)  # type: ignore[union-attr]
    db["trials"].create_index(  # type: ignore[union-attr]
        ["model_digest", "chip", "ort_version", "shapes", "config_id"]
    )
    db["searches"].create(  # type: ignore[union-attr]
        {
            "search_id": str,
            "model_digest": str,
            "model_name": str,
            "chip": str,
            "ort_version": str,
            "shapes": str,
            "default_shapes": int,
            "state": str,
            "started_at": str,
            "finished_at": str,
            "trials_requested": int,
            "trials_measured": int,
            "objective": str,
            "pick_config_id": str,
            "pick_config": str,
            "pick_label": str,
            "pick_ratio": float,
            "pick_latency_ms_p50": float,
            "default_latency_ms_p50": float,
            "verdict": str,
            "wall_s": float,
            "autotune_version": str,
            "host": str,
            "host_id": str,
            "user": str,
            "os": str,
        },
        pk="search_id",
    )
    db["searches"].create_index(  # type: ignore[union-attr]
        ["model_digest", "chip", "ort_version", "shapes"]
    )


@migrations()
def m002_cached_load_time(db: sqlite_utils.Database) -> None:
    """How long a compiling EP (CoreML, OpenVINO, TensorRT) takes to load once its compiled
    model is cached: the compile time its cache directory saves."""
    db["trials"].add_column("cached_session_create_ms", float)  # type: ignore[union-attr]


@migrations()
def m003_verdict(db: sqlite_utils.Database) -> None:
    """The head-to-head's verdict as a statistic with its uncertainty, the A/A control, the
    machine's load, and why a search ended: ``outcome`` is pick, default or inconclusive;
    ``speedup`` (ORT's default latency / the pick's, higher is better) with its bootstrap
    interval; ``aa_spread`` how far fresh processes of the default disagreed; ``busy`` the CPU
    other programs used (JSON); ``error`` why a failed search failed. Trials record the CPU
    other programs used while they ran (``load_cores``) and a ``warning`` when that was a lot."""
    searches = db["searches"]
    for name, kind in (
        ("outcome", str),
        ("speedup", float),
        ("speedup_low", float),
        ("speedup_high", float),
        ("aa_spread", float),
        ("busy", str),
        ("error", str),
    ):
        searches.add_column(name, kind)  # type: ignore[union-attr]
    db["trials"].add_column("load_cores", float)  # type: ignore[union-attr]
    db["trials"].add_column("warning", str)  # type: ignore[union-attr]


@migrations()
def m005_chip_descriptor(db: sqlite_utils.Database) -> None:
    """A comparable chip descriptor (vendor, family, generation, tier, P/E cores, accelerators,
    OS) and the thread roles of the configuration, with every trial and search, so a sibling
    chip can borrow a result (autotune.ladder). Existing rows get what their chip id and os
    column tell (core splits unknown)."""
    import json

    from autotune.config import SessionConfig
    from autotune.descriptor import from_chip_id
    from autotune.errors import ConfigError
    from autotune.ladder import roles_of

    for table, config_column in (("trials", "config"), ("searches", "pick_config")):
        db[table].add_column("chip_descriptor", str)  # type: ignore[union-attr]
        db[table].add_column("thread_roles", str)  # type: ignore[union-attr]
        pk = "id" if table == "trials" else "search_id"
        rows = db.execute(f"SELECT {pk}, chip, os, {config_column} FROM {table}").fetchall()
        for pk_value, chip, os_text, config_json in rows:
            desc = from_chip_id(chip or "", os_text)
            roles = None
            if config_json:
                try:
                    roles = json.dumps(roles_of(SessionConfig.from_json(config_json), desc))
                except ConfigError:
                    roles = None
            db.execute(
                f"UPDATE {table} SET chip_descriptor = ?, thread_roles = ? WHERE {pk} = ?",
                [desc.to_json(), roles, pk_value],
            )


@migrations()
def m007_inputs_digest(db: sqlite_utils.Database) -> None:
    """SHA-256 of the ``--inputs`` data a trial or search measured on (NULL: synthetic inputs),
    so results on real data are told apart from results on synthetic inputs."""
    for table in ("trials", "searches"):
        db[table].add_column("inputs_digest", str)  # type: ignore[union-attr]
