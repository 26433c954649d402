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
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from autotune import ladder
from autotune.build import build_cached_session, build_session, dropped_providers
from autotune.chip import current_chip, current_descriptor
from autotune.config import DEFAULT_CONFIG, SessionConfig, fit
from autotune.descriptor import stored_descriptor
from autotune.digest import model_digest
from autotune.errors import ConfigError, DatabaseError, SessionBuildError, printable
from autotune.graph_inputs import graph_inputs
from autotune.model import match_signature, search_command, shape_signature
from autotune.plugins import PluginUnavailable, find_devices, warn_once
from autotune.providers import validate_config
from autotune.store.database import MAX_ROWS_PER_KEY, ResultKey, Store
from autotune.store.records import (
    SearchRecord,
    Status,
    StoredVerdict,
    TrialRecord,
    served_verdicts,
)
from autotune.tuning import objectives

log = logging.getLogger("autotune")


@dataclass(frozen=True)
class BestConfig:
    """A stored configuration chosen for this model, chip, ORT version and shapes."""

    config: SessionConfig
    ratio: float | None  # latency relative to ORT's default configuration (lower is faster)
    source: str  # "verdict" (a search's head-to-head pick) or "pareto:<prefer>"
    stale: bool  # measured with another ORT version
    key: ResultKey
    measured_at: str | None = None
    layer: int = 0  # which database of the stack it came from (0: the personal one)
    # the fallback ladder's rung: "exact" (measured on this chip) or the rung of the sibling chip
    # it is borrowed from ("cores", "family_tier", "generation"); key.chip names that chip
    rung: str = "exact"
    thread_roles: dict[str, str | int] | None = None
    accuracy: str | None = None  # the tier its outputs were judged at, and why (None: fp32)

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
            "layer": self.layer,
            "measured_on": self.key.chip,
            "borrowed": self.borrowed,
            "rung": self.rung,
            "thread_roles": self.thread_roles,
            "accuracy": self.accuracy,
        }


MAX_SEARCHES_PER_KEY = 200  # searches of one key read per layer, newest first


@dataclass
class Notes:
    """What a lookup skipped or changed, told in one warning (``text``)."""

    skipped: list[str] = field(default_factory=list)  # database layers that could not be used
    refused: list[str] = field(default_factory=list)  # stored configurations failing validation
    changed: list[str] = field(default_factory=list)  # re-derived for this machine
    failed: list[str] = field(default_factory=list)  # stored configurations that did not build
    read: int = 0  # database layers that were read (not skipped)

    def text(self) -> str:
        parts = [f"skipped {p}" for p in self.skipped]
        if self.refused:
            n = len(self.refused)
            parts.append(
                f"refused {n} stored configuration{'s' if n > 1 else ''} ({self.refused[0]}"
                + (f"; and {n - 1} more" if n > 1 else "")
                + ")"
            )
        parts += self.changed + self.failed
        return printable("; ".join(parts))


def concluded(search: SearchRecord) -> bool:
    """A search whose verdict may be served: state 'done', not inconclusive, not from the
    future (``StoredVerdict.served``)."""
    stored = search.stored_verdict
    return stored is not None and stored.served


def _verdict(search: SearchRecord) -> StoredVerdict:
    """The verdict of a search :func:`served_verdicts` returned (a finished one)."""
    stored = search.stored_verdict
    assert stored is not None
    return stored


def _verdict_ratio(search: SearchRecord) -> float | None:
    """The verdict's latency relative to ORT's defaults (lower is faster)."""
    stored = search.stored_verdict
    return 1.0 / stored.speedup if stored and stored.speedup else None


def candidates(
    path: str | os.PathLike[str],
    *,
    shapes: dict[str, tuple[int, ...]] | None = None,
    db: str | None = None,
    prefer: str = "latency",
    notes: Notes | None = None,
) -> Generator[BestConfig, None, None]:
    """Every usable stored choice for this model here, best first.

    Only a search's verdict is served, never a single trial: a search that ended 'done', was
    not inconclusive and holds a pick, of the objective ``prefer`` names. Order: this ORT
    version first (others, stale, only if it has none); within that, database layers in order
    (the personal one first: team layers fill gaps); within a layer, the newest verdict first.
    For ``prefer`` other than latency, each layer's verdicts of that objective are followed by
    the Pareto set of that layer's trials from concluded searches (any objective), best first
    for ``prefer``. With nothing measured on this chip, the choices of sibling chips on the
    fallback ladder (:mod:`autotune.ladder`), their thread counts re-derived here. Entries that
    fail validation are skipped and noted in ``notes``. Lazy: stops reading at the first choice
    the caller takes."""
    notes = Notes() if notes is None else notes
    digest = model_digest(path)
    chip = current_chip()
    with Store.open(db, write=False) as store:
        try:
            found = False
            for choice in _candidates(store, path, digest, chip, shapes, prefer, notes):
                found = True
                yield choice
            if not found:
                yield from _borrowed(store, path, digest, chip, shapes, prefer, notes)
        finally:
            notes.skipped += store.problems
            notes.read = len(store.layers)


def _borrowed(
    store: Store,
    path: str | os.PathLike[str],
    digest: str,
    chip: Any,
    shapes: dict[str, tuple[int, ...]] | None,
    prefer: str,
    notes: Notes,
) -> Iterator[BestConfig]:
    """The fallback ladder: choices measured on sibling chips (same model with another core
    count, then same family and tier, then same generation; never another vendor, architecture
    or accelerator set), their thread counts re-derived from their roles on this chip."""
    local = current_descriptor()
    others = [
        (r.chip, stored_descriptor(r.chip, r.os, r.chip_descriptor))
        for r in store.chips_of_model(digest)
    ]
    for other, rung, desc in ladder.order(chip.chip_id, local, others):
        if rung == "exact":
            continue
        for choice in _candidates(store, path, digest, chip, shapes, prefer, notes, other):
            roles = choice.thread_roles or ladder.roles_of(choice.config, desc)
            config = ladder.rederive(choice.config, roles, local)
            log.info(
                "autotune: no result measured on %s; borrowing %s measured on %s (%s)",
                chip.chip_id,
                printable(config.describe()),
                printable(other),
                rung.replace("_", " and "),
            )
            yield replace(choice, config=config, rung=rung, thread_roles=dict(roles))


def _candidates(
    store: Store,
    path: str | os.PathLike[str],
    digest: str,
    chip: Any,
    shapes: dict[str, tuple[int, ...]] | None,
    prefer: str,
    notes: Notes,
    chip_id: str | None = None,
) -> Iterator[BestConfig]:
    """The stored choices measured on one chip (``chip_id``; this one by default)."""
    chip_id = chip_id or chip.chip_id
    stored = store.shape_signatures(digest, chip_id)
    if shapes:
        # scalars and fixed-shape inputs need no shape: the shapes searched with select
        signature = match_signature(shapes, [s for s, _ in stored])
        signature = signature or shape_signature(shapes)
    else:
        defaults = [s for s, d in stored if d]
        signature = defaults[0] if defaults else (stored[0][0] if len(stored) == 1 else None)
    if signature is None:
        return
    key = ResultKey(digest, chip_id, chip.ort_version, signature)
    # a sibling chip's thread counts are re-derived from their roles by the ladder instead
    cores = chip.cores if chip_id == chip.chip_id else None
    yield from key_candidates(store, path, key, prefer=prefer, notes=notes, cores=cores)


def key_candidates(
    store: Store,
    path: str | os.PathLike[str],
    key: ResultKey,
    *,
    prefer: str = "latency",
    notes: Notes | None = None,
    cores: int | None = None,
) -> Iterator[BestConfig]:
    """The stored choices for one result key, best first (``candidates``' rules; another ORT
    version's only when this one has none). ``cores``: this machine's, to bound thread counts
    (None: left as stored, for the ladder to re-derive from their roles)."""
    notes = Notes() if notes is None else notes
    fitter = _Fit(path, key, cores)
    seen: set[str] = set()
    for any_ort in (False, True):
        # every layer's searches first, so a layer that fails to read is always noted
        by_layer = [
            (
                layer,
                [
                    s
                    for s in store.searches(
                        key, any_ort=any_ort, layer=layer, limit=MAX_SEARCHES_PER_KEY
                    )
                    if (s.ort_version != key.ort_version) == any_ort
                ],
            )
            for layer in [one.index for one in store.layers]
        ]
        for layer, searches in by_layer:
            notes.refused += [v.refusal for s in searches if (v := s.stored_verdict) and v.refusal]
            # a legacy row without an objective was a latency search
            rows: list[tuple[str | None, float | None, str, SearchRecord | TrialRecord]] = [
                (_verdict(s).pick_config, _verdict_ratio(s), "verdict", s)
                for s in served_verdicts(searches)
                if (s.objective or "latency") == prefer
            ]
            if prefer != "latency":
                ids = sorted(
                    {s.search_id.split("~")[0] for s in searches if s.search_id and concluded(s)}
                )
                trials = [
                    t
                    for t in store.trials(
                        key, any_ort=any_ort, layer=layer, search_ids=ids, limit=MAX_ROWS_PER_KEY
                    )
                    if t.status == Status.OK
                    and t.ratio is not None
                    and (t.ort_version != key.ort_version) == any_ort
                ]
                default = next((t for t in trials if t.config_id == DEFAULT_CONFIG.config_id), None)
                front = objectives.choose(trials, prefer, default)
                rows += [(t.config, t.ratio, f"pareto:{prefer}", t) for t in front]
            for config_json, ratio, source, row in rows:
                choice = fitter.choice(config_json, ratio, source, row, layer, seen, notes)
                if choice is not None:
                    yield choice
        if seen:
            return


class _Fit:
    """Turns a stored row into a choice for this machine, or refuses it (noted): validation,
    then ``autotune.config.fit`` (thread counts bounded by this machine's cores, free-dimension
    overrides checked against this model's named dimensions and the shapes asked for)."""

    def __init__(self, path: str | os.PathLike[str], key: ResultKey, cores: int | None) -> None:
        self.path = path
        self.key = key
        self.cores = None if cores is None else max(1, cores)
        self.refused: set[str] = set()
        self._model_inputs: dict[str, tuple[int | str | None, ...]] | None = None

    def choice(
        self,
        config_json: Any,
        ratio: float | None,
        source: str,
        row: SearchRecord | TrialRecord,
        layer: int,
        seen: set[str],
        notes: Notes,
    ) -> BestConfig | None:
        if not isinstance(config_json, str):
            return None
        try:
            config = SessionConfig.from_json(config_json)
        except ConfigError as exc:
            if config_json not in self.refused:
                self.refused.add(config_json)
                notes.refused.append(str(exc))
            return None
        if config.config_id in seen or config.config_id in self.refused:
            return None
        try:
            validate_config(config)
            inputs = self._inputs(config)
            fitted = fit(config, cores=self.cores, model_inputs=inputs, shapes=self.key.shapes)
        except ConfigError as exc:
            self.refused.add(config.config_id)
            notes.refused.append(str(exc))
            return None
        seen.add(config.config_id)
        if fitted != config:
            notes.changed.append(
                f"thread counts of {config.describe()} re-derived for this machine's "
                f"{self.cores} cores: {fitted.describe()}"
            )
        stale = row.ort_version != self.key.ort_version or _plugin_changed(fitted)
        return BestConfig(
            config=fitted,
            ratio=ratio if ratio is None or 0 < ratio < float("inf") else None,
            source=source,
            stale=stale,
            key=ResultKey(
                self.key.model_digest, self.key.chip, row.ort_version or "", self.key.shapes
            ),
            measured_at=row.finished_at if isinstance(row, SearchRecord) else row.created_at,
            layer=layer,
            thread_roles=_stored_roles(row),
            accuracy=_stored_accuracy(row),
        )

    def _inputs(self, config: SessionConfig) -> dict[str, tuple[int | str | None, ...]]:
        """This model's graph inputs, read once and only for a configuration that needs them."""
        if config.free_dimension_overrides and self._model_inputs is None:
            self._model_inputs = graph_inputs(self.path) or {}
        return self._model_inputs or {}


def _stored_accuracy(row: SearchRecord | TrialRecord) -> str | None:
    """The accuracy tier a stored choice was judged at: the verdict's record of it, or the
    trial's own."""
    if isinstance(row, SearchRecord):
        verdict = row.stored_verdict
        return verdict.accuracy if verdict else None
    return row.accuracy


def _stored_roles(row: SearchRecord | TrialRecord) -> dict[str, str | int] | None:
    """The thread roles stored with a row (None for older rows, or unreadable ones)."""
    text = row.thread_roles
    if not isinstance(text, str):
        return None
    try:
        return ladder.check_roles(json.loads(text))
    except (ValueError, TypeError):
        return None


def _plugin_changed(config: SessionConfig) -> bool:
    """A plugin configuration measured with another version of its package than the one here
    (or with one that is not installed): stale, and refused when built."""
    from autotune.plugins import installed_version

    plugin = config.plugin
    return plugin is not None and installed_version(plugin["package"]) != plugin["version"]


def selection_delegate(
    path: str | os.PathLike[str],
    *,
    shapes: dict[str, tuple[int, ...]] | None = None,
    db: str | None = None,
) -> Any:
    """A function for ``SessionOptions.set_provider_selection_policy_delegate`` that picks the
    device autotune measured best for this model here, for apps that let ORT select devices.

    It registers the plugin package the stored choice needs (now, before the session is made),
    and at selection picks that EP's device, else the EP of a built-in choice, else the CPU EP.
    It chooses devices only: provider options and session settings of the tuned configuration
    come with ``best_session``. With no stored choice it picks the CPU EP."""
    choice = None
    for candidate in candidates(path, shapes=shapes, db=db):
        config = candidate.config
        if config.device_policy:
            continue  # a policy is ORT's own choice, not a device
        if config.plugin:
            try:
                find_devices(config.plugin, config.providers[0][0])
            except PluginUnavailable as exc:
                warn_once(exc)
                continue
        choice = config
        break
    wanted = choice.providers[0][0] if choice else "CPUExecutionProvider"
    selector = choice.plugin["device"] if choice is not None and choice.plugin else None

    def delegate(
        ep_devices: list[Any], model_metadata: Any, runtime_metadata: Any, max_selections: int
    ) -> list[Any]:
        from autotune.plugins import device_selector

        picked = [
            d
            for d in ep_devices
            if d.ep_name == wanted and (selector is None or device_selector(d) == selector)
        ]
        if not picked:
            picked = [d for d in ep_devices if d.ep_name == "CPUExecutionProvider"]
        return picked[: max(1, max_selections)]

    return delegate


def best_config(
    path: str | os.PathLike[str],
    *,
    shapes: dict[str, tuple[int, ...]] | None = None,
    db: str | None = None,
    prefer: str = "latency",
) -> BestConfig | None:
    """The best known configuration for this model on this chip, or None if none is stored.
    What the lookup skipped or refused is logged as one warning.

    Raises ModelError if ``path`` is missing or a directory.
    """
    choice, notes = lookup(path, shapes=shapes, db=db, prefer=prefer)
    if notes.text():
        log.warning("autotune: %s", notes.text())
    return choice


def lookup(
    path: str | os.PathLike[str],
    *,
    shapes: dict[str, tuple[int, ...]] | None = None,
    db: str | None = None,
    prefer: str = "latency",
) -> tuple[BestConfig | None, Notes]:
    """``best_config`` without logging: the choice and what the lookup skipped or refused."""
    objectives.check(prefer)
    notes = Notes()
    found = candidates(path, shapes=shapes, db=db, prefer=prefer, notes=notes)
    try:
        choice = next(found, None)
    finally:
        found.close()
    return choice, notes


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

    With no stored entry, no database, an unusable database layer (skipped: the others are
    still used), or a stored configuration that is refused or fails to build here, logs one
    warning and returns a session with the next usable choice, else plain ORT defaults. With
    ``strict=True`` those cases raise (AutotuneError subclasses) instead. ``warmup=True`` runs
    one inference on synthetic inputs before returning; ``warmup="background"`` does it in a
    thread. ``prefer="load"`` (or ``"memory"``, ``"balanced"``) serves verdicts of searches of
    that objective, then the Pareto set (latency, load time, memory) of concluded searches'
    trials, best at that; the default ``"latency"`` serves only latency searches' verdicts.
    ``adapt="background"``: when the choice is borrowed from a sibling chip, also start
    ``autotune adapt`` in a low-priority process of its own, which races the borrowed candidates
    against ORT's defaults here and stores the verdict for the next launch; this call returns
    the best known session at once.
    """
    if warmup not in (True, False, "background"):
        raise ValueError(f'warmup must be True, False or "background", not {warmup!r}')
    if adapt not in (None, "background"):
        raise ValueError(f'adapt must be "background" or None, not {adapt!r:.40}')
    notes = Notes()
    found = candidates(path, shapes=shapes, db=db, prefer=objectives.check(prefer), notes=notes)
    try:
        session, chosen = _first_that_builds(path, found, notes, strict)
    finally:
        found.close()
    if strict and notes.skipped:
        raise DatabaseError(notes.skipped[0])
    if session is None:
        session = _defaults(path, shapes, notes, strict)
    elif notes.text() and chosen is not None:
        log.warning("autotune: %s; using %s", notes.text(), printable(chosen.config.describe()))
    if adapt is not None:
        _start_adapt(path, db=db, needed=chosen is not None and chosen.borrowed, shapes=shapes)
    if warmup:
        _warm(session, background=warmup == "background", shapes=shapes)
    return session


def _first_that_builds(
    path: str | os.PathLike[str], found: Iterator[BestConfig], notes: Notes, strict: bool
) -> tuple[Any, BestConfig | None]:
    """The session of the first choice that builds here, and that choice; (None, None) when none
    does (each failure noted, or raised when ``strict``)."""
    for choice in found:
        try:
            session = build_cached_session(path, choice.config, choice.key.model_digest)
        except PluginUnavailable as exc:  # a plugin package missing here: warn once
            if strict:
                raise SessionBuildError(str(exc)) from None
            warn_once(exc)
            continue
        except Exception as exc:  # noqa: BLE001 - ORT raises several types; fall back
            if strict:
                raise SessionBuildError(
                    f"stored configuration {choice.config.describe()} failed to build here: {exc}"
                ) from None
            notes.failed.append(
                f"stored configuration {choice.config.describe()} failed to build here "
                f"({' '.join(str(exc).split())[:200]})"
            )
            continue
        dropped = dropped_providers(session, choice.config)
        if dropped:
            notes.changed.append(f"ORT dropped {', '.join(dropped)} for {os.fspath(path)}")
        if choice.stale:
            log.info("autotune: using a configuration measured with ORT %s", choice.key.ort_version)
        return session, choice
    return None, None


def _defaults(
    path: str | os.PathLike[str],
    shapes: dict[str, tuple[int, ...]] | None,
    notes: Notes,
    strict: bool,
) -> Any:
    """ORT's defaults when nothing stored builds here, with the one warning that says why (and
    the search to run, unless a broken layer is the reason); raises when ``strict``."""
    text = notes.text()
    if strict:
        raise SessionBuildError(
            f"no tuned configuration for {path} on {current_chip().chip_id}"
            + (f" ({text})" if text else "")
            + f"; run: {_search_hint(path, shapes, None)}"
        )
    session = build_session(path, DEFAULT_CONFIG)
    if not text:
        log.warning(
            "autotune: no tuned configuration for %s on this chip; using ORT defaults (run: %s)",
            os.fspath(path),
            _search_hint(path, shapes, session),
        )
    elif notes.skipped:  # a search would not fix a broken layer: no hint
        log.warning("autotune: %s; using ORT defaults", text)
    else:
        log.warning(
            "autotune: %s; using ORT defaults (run: %s)", text, _search_hint(path, shapes, session)
        )
    return session


def _start_adapt(
    path: str | os.PathLike[str],
    *,
    db: str | None,
    needed: bool,
    shapes: dict[str, tuple[int, ...]] | None,
) -> None:
    """``best_session(adapt="background")``: adapt a borrowed result in a separate process."""
    if not needed or shapes:
        return  # measured here already (or explicit shapes, which the background run lacks)
    from autotune.background import start_background

    if start_background(path, db=db) is not None:
        log.info("autotune: adapting borrowed results for %s in the background", os.fspath(path))


def _search_hint(
    path: str | os.PathLike[str], shapes: dict[str, tuple[int, ...]] | None, session: Any
) -> str:
    """The ``autotune search`` command to run, with the ``--shape`` flags the model needs (read
    from an ORT session of it; onnx is not imported here)."""
    try:
        if session is None:
            session = build_session(path, DEFAULT_CONFIG)
        inputs = [(i.name, tuple(i.shape)) for i in session.get_inputs()]
    except Exception:  # noqa: BLE001 - a model ORT cannot load: the plain command
        inputs = []
    return search_command(path, inputs, shapes)


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
