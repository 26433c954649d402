"""Run time: the best stored configuration for this model on this chip, as a session.

Never imports optuna or onnx. Every stored configuration is validated (known providers, known
and safe options) before it reaches ORT; one that fails validation or fails to build here is
skipped with a warning. With nothing usable, the session gets plain ORT defaults: an app is never
worse off for calling ``best_session`` than for calling ``InferenceSession``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from autotune import ladder, objectives
from autotune.build import build_session, dropped_providers, model_cache_dir
from autotune.chip import current_chip, current_descriptor
from autotune.config import DEFAULT_CONFIG, SessionConfig
from autotune.descriptor import row_descriptor
from autotune.digest import model_digest
from autotune.errors import ConfigError, DatabaseError, SessionBuildError
from autotune.model import shape_signature
from autotune.providers import validate_config
from autotune.store import ResultKey, Store

log = logging.getLogger("autotune")


@dataclass(frozen=True)
class BestConfig:
    """A stored configuration chosen for this model, chip, ORT version and shapes."""

    config: SessionConfig
    ratio: float | None  # latency relative to ORT's default configuration (lower is faster)
    source: str  # "verdict" (head-to-head re-measured) or "trial" (best single trial)
    stale: bool  # measured with another ORT version
    key: ResultKey
    measured_at: str | None = None
    # the fallback ladder's rung: "exact" (measured on this chip) or the rung of the sibling chip
    # it is borrowed from ("cores", "family_tier", "generation"); key.chip names that chip
    rung: str = "exact"
    thread_roles: dict[str, str | int] | None = None

    @property
    def borrowed(self) -> bool:
        """Measured on another chip (``key.chip``), not on this one."""
        return self.rung != "exact"

    @property
    def speedup(self) -> float | None:
        return 1.0 / self.ratio if self.ratio else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "config_id": self.config.config_id,
            "label": self.config.describe(),
            "ratio": self.ratio,
            "speedup": self.speedup,
            "source": self.source,
            "stale": self.stale,
            "model_digest": self.key.model_digest,
            "chip": self.key.chip,
            "ort_version": self.key.ort_version,
            "shapes": self.key.shapes,
            "measured_at": self.measured_at,
            "measured_on": self.key.chip,
            "borrowed": self.borrowed,
            "rung": self.rung,
            "thread_roles": self.thread_roles,
        }


def candidates(
    path: str | os.PathLike[str],
    *,
    shapes: dict[str, tuple[int, ...]] | None = None,
    db: str | None = None,
    prefer: str = "latency",
) -> Iterator[BestConfig]:
    """Every usable stored choice for this model here, best first: the newest head-to-head
    verdicts, then single trials by speed; this ORT version first, others (stale) after.
    With nothing measured on this chip, the choices of sibling chips on the fallback ladder
    (:mod:`autotune.ladder`), their thread counts re-derived here.
    Entries that fail validation are logged and skipped. Lazy: stops reading at the first
    choice the caller takes."""
    digest = model_digest(path)
    chip = current_chip()
    with Store.open(db, write=False) as store:
        found = False
        for choice in _chip_candidates(
            store, digest, chip.chip_id, chip.ort_version, shapes, prefer
        ):
            found = True
            yield choice
        if not found:
            yield from _borrowed(store, digest, shapes, prefer)


def _chip_candidates(
    store: Store,
    digest: str,
    chip_id: str,
    ort_version: str,
    shapes: dict[str, tuple[int, ...]] | None,
    prefer: str,
) -> Iterator[BestConfig]:
    """The stored choices measured on one chip (``chip_id``), best first."""
    signature = shape_signature(shapes) if shapes else None
    if signature is None:
        stored = store.shape_signatures(digest, chip_id)
        defaults = [s for s, d in stored if d]
        signature = defaults[0] if defaults else (stored[0][0] if len(stored) == 1 else None)
    if signature is None:
        return
    yield from key_candidates(store, ResultKey(digest, chip_id, ort_version, signature), prefer)


def key_candidates(store: Store, key: ResultKey, prefer: str = "latency") -> Iterator[BestConfig]:
    """The stored choices for one result key (another ORT version's after this one's)."""
    ort_version = key.ort_version
    seen: set[str] = set()
    for any_ort in (False, True):
        searches = [
            s
            for s in store.searches(key, any_ort=any_ort)
            if s["state"] == "done" and s["pick_config"]
        ]
        searches.sort(key=lambda s: s["finished_at"] or "", reverse=True)
        trials = [
            t for t in store.trials(key, any_ort=any_ort) if t["status"] == "ok" and t["ratio"]
        ]
        rows = []
        if prefer != "latency":
            # the Pareto set of stored trials, best first on what the app prefers
            default = next((t for t in trials if t["config_id"] == DEFAULT_CONFIG.config_id), None)
            front = objectives.choose(trials, prefer, default)
            rows += [(t["config"], t["ratio"], f"pareto:{prefer}", t) for t in front]
        rows += [
            (s["pick_config"], s["pick_ratio"], "verdict", s)
            for s in searches
            if (s.get("objective") or "latency") == prefer or prefer == "latency"
        ]
        trials.sort(key=lambda t: t["ratio"])
        rows += [(t["config"], t["ratio"], "trial", t) for t in trials]
        for config_json, ratio, source, row in rows:
            choice = _choice(config_json, ratio, source, row, ort_version, key)
            if choice is not None and choice.config.config_id not in seen:
                seen.add(choice.config.config_id)
                yield choice
        if seen:
            return


def _borrowed(
    store: Store, digest: str, shapes: dict[str, tuple[int, ...]] | None, prefer: str
) -> Iterator[BestConfig]:
    """The fallback ladder: choices measured on sibling chips (same model with another core
    count, then same family and tier, then same generation; never another vendor, architecture
    or accelerator set), their thread counts re-derived from their roles on this chip."""
    chip = current_chip()
    local = current_descriptor()
    others = [(r["chip"], row_descriptor(r)) for r in store.chips_of_model(digest)]
    for other, rung, desc in ladder.order(chip.chip_id, local, others):
        if rung == "exact":
            continue
        for choice in _chip_candidates(store, digest, other, chip.ort_version, shapes, prefer):
            roles = choice.thread_roles or ladder.roles_of(choice.config, desc)
            config = ladder.rederive(choice.config, roles, local)
            log.info(
                "autotune: no result measured on %s; borrowing %s measured on %s (%s)",
                chip.chip_id,
                config.describe(),
                other,
                rung.replace("_", " and "),
            )
            yield replace(choice, config=config, rung=rung, thread_roles=dict(roles))


def _choice(
    config_json: str,
    ratio: float | None,
    source: str,
    row: dict[str, Any],
    ort_version: str,
    key: ResultKey,
) -> BestConfig | None:
    try:
        config = SessionConfig.from_json(config_json)
        validate_config(config)
    except ConfigError as exc:
        log.warning("autotune: refusing a stored configuration (%s); trying the next one", exc)
        return None
    return BestConfig(
        config=config,
        ratio=ratio,
        source=source,
        stale=row.get("ort_version") != ort_version,
        key=ResultKey(key.model_digest, key.chip, row.get("ort_version") or "", key.shapes),
        measured_at=row.get("finished_at") or row.get("created_at"),
        thread_roles=_stored_roles(row),
    )


def _stored_roles(row: dict[str, Any]) -> dict[str, str | int] | None:
    """The thread roles stored with a row (None for older rows, or unreadable ones)."""
    text = row.get("thread_roles")
    if not isinstance(text, str):
        return None
    try:
        return ladder.check_roles(json.loads(text))
    except ValueError:
        return None


def best_config(
    path: str | os.PathLike[str],
    *,
    shapes: dict[str, tuple[int, ...]] | None = None,
    db: str | None = None,
    prefer: str = "latency",
) -> BestConfig | None:
    """The best known configuration for this model on this chip, or None if none is stored.

    Raises ModelError if ``path`` is missing or a directory, DatabaseError if a database file
    is not an autotune database.
    """
    objectives.check(prefer)
    return next(candidates(path, shapes=shapes, db=db, prefer=prefer), None)


def best_session(
    path: str | os.PathLike[str],
    *,
    shapes: dict[str, tuple[int, ...]] | None = None,
    db: str | None = None,
    strict: bool = False,
    warmup: bool | str = False,
    prefer: str = "latency",
    adapt: str | None = None,
) -> Any:
    """An ``onnxruntime.InferenceSession`` built from the best stored configuration here.

    With no stored entry, no database, or a stored configuration that is refused or fails to
    build here, logs one warning and returns a session with plain ORT defaults. With
    ``strict=True`` those cases raise (AutotuneError subclasses) instead. ``warmup=True`` runs one
    inference on synthetic inputs before returning; ``warmup="background"`` does it in a thread.
    ``prefer="load"`` (or ``"memory"``, ``"balanced"``) picks from the Pareto set of stored
    trials (latency, load time, memory) the one best at that; the default is ``"latency"``.
    ``adapt="background"``: when the choice is borrowed from a sibling chip,
    also start ``autotune adapt`` in a low-priority process of its own, which races the borrowed
    candidates against ORT's defaults here and stores the verdict for the next launch; this call
    returns the best known session at once.
    """
    if adapt not in (None, "background"):
        raise ValueError(f'adapt must be "background" or None, not {adapt!r:.40}')
    session = None
    found = False
    chosen: BestConfig | None = None
    try:
        for choice in candidates(path, shapes=shapes, db=db, prefer=objectives.check(prefer)):
            found = True
            try:
                session = build_session(
                    path,
                    choice.config,
                    cache_dir=model_cache_dir(choice.key.model_digest, choice.config),
                )
            except Exception as exc:  # noqa: BLE001 - ORT raises several types; fall back
                if strict:
                    raise SessionBuildError(
                        f"stored configuration {choice.config.describe()} failed to build here: "
                        f"{exc}"
                    ) from None
                log.warning(
                    "autotune: stored configuration %s failed to build here (%s); trying the next",
                    choice.config.describe(),
                    " ".join(str(exc).split())[:200],
                )
                continue
            chosen = choice
            dropped = dropped_providers(session, choice.config)
            if dropped:
                log.warning("autotune: ORT dropped %s for %s", ", ".join(dropped), path)
            if choice.stale:
                log.info(
                    "autotune: using a configuration measured with ORT %s", choice.key.ort_version
                )
            break
    except DatabaseError as exc:
        if strict:
            raise
        log.warning("autotune: %s; using ORT defaults", exc)
    if session is None:
        if strict:
            raise SessionBuildError(
                f"no tuned configuration for {path} on {current_chip().chip_id}; "
                f"run: autotune search {path}"
            )
        if not found:
            log.warning(
                "autotune: no tuned configuration for %s on this chip; using ORT defaults "
                "(run: autotune search %s)",
                os.fspath(path),
                os.fspath(path),
            )
        session = build_session(path, DEFAULT_CONFIG)
    if adapt is not None:
        _start_adapt(
            path, adapt, db=db, needed=chosen is not None and chosen.borrowed, shapes=shapes
        )
    if warmup:
        _warm(session, background=warmup == "background", shapes=shapes)
    return session


def _start_adapt(
    path: str | os.PathLike[str],
    mode: str,
    *,
    db: str | None,
    needed: bool,
    shapes: dict[str, tuple[int, ...]] | None,
) -> None:
    """``best_session(adapt="background")``: adapt a borrowed result in a separate process."""
    del mode  # only "background" exists (checked by best_session)
    if not needed or shapes:
        return  # measured here already (or explicit shapes, which the background run lacks)
    from autotune.adapt import start_background

    if start_background(path, db=db) is not None:
        log.info("autotune: adapting borrowed results for %s in the background", os.fspath(path))


def _warm(session: Any, *, background: bool, shapes: dict[str, tuple[int, ...]] | None) -> None:
    feeds = {}
    for inp in session.get_inputs():
        dims = (shapes or {}).get(inp.name) or tuple(
            d if isinstance(d, int) and d > 0 else 1 for d in inp.shape
        )
        dtype = _NP_TYPES.get(inp.type, np.float32)
        feeds[inp.name] = np.ones(dims, dtype=dtype)

    def run() -> None:
        try:
            session.run(None, feeds)
        except Exception as exc:  # noqa: BLE001 - warm-up is best effort
            log.info("autotune: warm-up run failed (%s)", exc)

    if background:
        threading.Thread(target=run, name="autotune-warmup", daemon=True).start()
    else:
        run()


_NP_TYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}
