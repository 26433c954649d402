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


@migrations()
def m008_serving(db: sqlite_utils.Database) -> None:
    """Verdicts of the serving objectives (``autotune.serving``): throughput at a concurrency
    (and arrival), cold start, and long runs, keyed like a search plus ``objective``,
    ``concurrency``, ``arrival`` and ``qps``; ``pick`` the arrangement (or cold-start choice)
    as JSON, ``flags`` the drift and memory-growth flags of long runs, ``details`` every
    contender's figures."""
    db["serving"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "search_id": str,
            "model_digest": str,
            "model_name": str,
            "chip": str,
            "ort_version": str,
            "os_build": str,
            "shapes": str,
            "objective": str,
            "concurrency": int,
            "arrival": str,
            "qps": float,
            "budget_ms": float,
            "outcome": str,
            "pick": str,
            "pick_label": str,
            "speedup": float,
            "speedup_low": float,
            "speedup_high": float,
            "aa_spread": float,
            "value": float,
            "baseline_value": float,
            "flags": str,
            "details": str,
            "created_at": str,
            "autotune_version": str,
        },
        pk="id",
        not_null={"model_digest", "chip", "ort_version", "shapes", "objective"},
    )
    db["serving"].create_index(  # type: ignore[union-attr]
        ["model_digest", "chip", "ort_version", "shapes", "objective", "concurrency"]
    )


@migrations()
def m009_pipelines(db: sqlite_utils.Database) -> None:
    """Verdicts of pipeline searches (``autotune.pipeline``): the models of one app tuned
    together, keyed by ``pipeline_key`` (the stages' model digests and the call pattern), chip
    and ORT version; ``arrangement`` the configurations and thread pool apps get (JSON),
    ``details`` every contender's figures against both baselines, and its memory."""
    db["pipelines"].create(  # type: ignore[union-attr]
        {
            "pipeline_id": str,
            "pipeline_key": str,
            "name": str,
            "chip": str,
            "ort_version": str,
            "pattern": str,
            "outcome": str,
            "arrangement": str,
            "label": str,
            "speedup_vs_defaults": float,
            "speedup_vs_picks": float,
            "details": str,
            "created_at": str,
            "autotune_version": str,
            "host_id": str,
        },
        pk="pipeline_id",
        not_null={"pipeline_key", "chip", "ort_version"},
    )
    db["pipelines"].create_index(  # type: ignore[union-attr]
        ["pipeline_key", "chip", "ort_version"]
    )


@migrations()
def m010_apple_chip_ids(db: sqlite_utils.Database) -> None:
    """Apple Silicon chip ids as autotune.chip now writes them: the GPU and Neural Engine from
    the hardware (an older ORT reported neither, ORT 1.32 both, so an upgrade hid every result),
    and ``x86_64 under Rosetta`` on rows an x86_64 Python wrote on an Apple chip (their ``os``
    column says so), which shared the native id until now. The descriptors follow."""
    from autotune.descriptor import canonical_row

    for table, pk in (("trials", "id"), ("searches", "search_id")):
        rows = db.execute(
            f"SELECT {pk}, chip, os, chip_descriptor FROM {table} WHERE chip LIKE 'Apple %'"
        ).fetchall()
        for pk_value, chip, os_text, descriptor in rows:
            changed = canonical_row(chip, os_text, descriptor)
            if changed is not None:
                db.execute(
                    f"UPDATE {table} SET chip = ?, chip_descriptor = ? WHERE {pk} = ?",
                    [*changed, pk_value],
                )


@migrations()
def m011_accuracy_tiers(db: sqlite_utils.Database) -> None:
    """The accuracy tier (autotune.measure.accuracy): the one each trial's outputs were judged at
    (``fp32``, ``fp16``, ``cosine:T``, ``topk:K``; NULL: before tiers, the fp32 tolerances or
    ``--rtol``/``--atol``), and the ``--accuracy`` each search ran with (``auto`` or a tier)."""
    db["trials"].add_column("accuracy", str)  # type: ignore[union-attr]
    db["searches"].add_column("accuracy", str)  # type: ignore[union-attr]
