"""Apps without the database: a small, versioned JSON manifest of one model's verdicts.

``autotune manifest MODEL.onnx -o MODEL.autotune.json`` writes, for one model digest, the best
stored choice per chip and input shapes, with each chip's descriptor, the thread roles of the
choice, and the fallback ladder's order (:mod:`autotune.ladder`). An app reads it instead of
SQLite: :func:`load` validates it with the same allow-list as the database resolver (every
configuration through ``SessionConfig.from_dict`` and ``validate_config``; an entry that fails
is dropped with a warning, a file that is not a manifest is refused), and
:meth:`Manifest.resolve` walks the same ladder as ``best_config``: exact chip, same model with
another core count, same family and tier, same generation; thread counts re-derived here. Each
entry it would return passes the database lookup's last check too (``autotune.config.fit``:
thread counts bounded by this machine's cores, free-dimension overrides only for the model's
named dimensions at the shapes asked); one that fails is skipped, with a warning, for the next.
Every message quoting the file's text goes through ``autotune.errors.printable``.

Reading never imports sqlite3, optuna or onnx; only :func:`build` (the export) opens the store.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune import ladder
from autotune.compile_cache import compile_key
from autotune.config import SessionConfig, fit
from autotune.descriptor import ChipDescriptor
from autotune.errors import ConfigError, printable
from autotune.paths import open_regular

log = logging.getLogger("autotune")

FORMAT = "autotune-manifest"
VERSION = 1
MAX_BYTES = 16 << 20
MAX_ENTRIES = 10000
MAX_INPUTS = 64  # graph inputs listed in "inputs", each with at most MAX_RANK dimensions
MAX_RANK = 16
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
_ENTRY_FIELDS = frozenset(
    {
        "chip",
        "descriptor",
        "shapes",
        "default_shapes",
        "ort_version",
        "config",
        "thread_roles",
        "ratio",
        "source",
        "measured_at",
        "compile_key",  # written for the Swift resolver's compile cache; derived from config
    }
)
_TOP_FIELDS = frozenset(
    {
        "format",
        "version",
        "model_digest",
        "model_name",
        "created_at",
        "autotune_version",
        "ladder",
        "families",
        "inputs",
        "entries",
    }
)
Inputs = dict[str, tuple[int | str | None, ...]]


@dataclass(frozen=True)
class Entry:
    """One chip's best choice for one input-shape signature."""

    chip: str
    descriptor: ChipDescriptor
    shapes: str
    default_shapes: bool
    ort_version: str
    config: SessionConfig
    thread_roles: dict[str, str | int]
    ratio: float | None
    source: str
    measured_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "chip": self.chip,
            "descriptor": self.descriptor.to_dict(),
            "shapes": self.shapes,
            "default_shapes": self.default_shapes,
            "ort_version": self.ort_version,
            "config": self.config.to_dict(),
            "thread_roles": dict(self.thread_roles),
            "ratio": self.ratio,
            "source": self.source,
            "measured_at": self.measured_at,
            "compile_key": compile_key(self.config),
        }


@dataclass(frozen=True)
class ManifestChoice:
    """What :meth:`Manifest.resolve` picked: the configuration to use here, and where from."""

    config: SessionConfig  # thread counts already re-derived for this chip when borrowed
    chip: str  # the chip it was measured on
    rung: str  # "exact", "cores", "family_tier" or "generation"
    shapes: str
    ort_version: str
    ratio: float | None
    source: str
    thread_roles: dict[str, str | int] = field(default_factory=dict)

    @property
    def borrowed(self) -> bool:
        return self.rung != "exact"


@dataclass(frozen=True)
class Manifest:
    model_digest: str
    entries: tuple[Entry, ...]
    model_name: str | None = None
    dropped: int = 0  # entries refused on load
    inputs: Inputs | None = None  # the model's graph inputs, as the export read them

    def resolve(
        self,
        chip_id: str | None = None,
        descriptor: ChipDescriptor | None = None,
        *,
        shapes: str | None = None,
        model: str | os.PathLike[str] | None = None,
    ) -> ManifestChoice | None:
        """The choice for this chip (default: the machine this runs on), or None.

        ``shapes`` is a shape signature (``autotune.model.shape_signature``); without it, the
        chip's default-shape entry (or its only one) is used, as ``best_config`` does. An entry
        whose configuration does not fit here (``autotune.config.fit``, with ``descriptor``'s
        cores) is skipped with a warning, and the ladder goes on. Free-dimension overrides are
        checked against ``model``'s graph inputs when given, else the manifest's ``inputs``."""
        if chip_id is None or descriptor is None:
            from autotune.chip import current_chip, current_descriptor

            chip_id = chip_id or current_chip().chip_id
            descriptor = descriptor or current_descriptor()
        inputs = self.inputs
        if model is not None:
            from autotune.graph_inputs import graph_inputs

            inputs = graph_inputs(model) or {}
        by_chip: dict[str, list[Entry]] = {}
        for e in self.entries:
            by_chip.setdefault(e.chip, []).append(e)
        others = [(chip, entries[0].descriptor) for chip, entries in by_chip.items()]
        for chip, rung, _ in ladder.order(chip_id, descriptor, others):
            entry = _pick_shapes(by_chip[chip], shapes)
            if entry is None:
                continue
            measured = entry.config
            if rung != "exact":
                measured = ladder.rederive(measured, entry.thread_roles, descriptor)
            try:
                config = fit(
                    measured, cores=descriptor.cores, model_inputs=inputs, shapes=entry.shapes
                )
            except ConfigError as exc:
                log.warning(
                    "autotune: skipping the manifest's entry for %s at %s (%s); trying the next",
                    printable(chip, 200),
                    printable(entry.shapes, 200),
                    printable(exc),
                )
                continue
            if config != measured:
                log.warning(
                    "autotune: thread counts of %s re-derived for this machine's %s cores: %s",
                    printable(measured.describe()),
                    descriptor.cores,
                    printable(config.describe()),
                )
            if rung != "exact":
                log.info(
                    "autotune: no result measured on %s in the manifest; borrowing %s measured "
                    "on %s (%s)",
                    printable(chip_id, 200),
                    printable(config.describe()),
                    printable(chip, 200),
                    rung.replace("_", " and "),
                )
            return ManifestChoice(
                config=config,
                chip=chip,
                rung=rung,
                shapes=entry.shapes,
                ort_version=entry.ort_version,
                ratio=entry.ratio,
                source=entry.source,
                thread_roles=dict(entry.thread_roles),
            )
        return None


def _pick_shapes(entries: list[Entry], shapes: str | None) -> Entry | None:
    if shapes is not None:
        return next((e for e in entries if e.shapes == shapes), None)
    defaults = sorted((e for e in entries if e.default_shapes), key=lambda e: e.shapes)
    if defaults:
        return defaults[0]
    return entries[0] if len({e.shapes for e in entries}) == 1 else None


# -- reading ---------------------------------------------------------------------------------


def load(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate a manifest file. Raises ConfigError if it is not one (or is not a
    regular file: a FIFO would block the read forever)."""
    p = Path(path)
    try:
        f = open_regular(p)
        if f is None:
            raise ConfigError(
                f"manifest {p} is not a regular file; give the file autotune manifest wrote"
            )
        with f:
            raw = f.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise ConfigError(f"{p} is larger than a manifest may be ({MAX_BYTES} bytes)")
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"manifest {p} cannot be read ({exc})") from None
    return parse(text)


def parse(text: str) -> Manifest:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"the manifest is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f'not an autotune manifest (no "format": "{FORMAT}")')
    if data.get("version") != VERSION:
        raise ConfigError(
            f"manifest version {data.get('version')!r:.20} is not {VERSION}; "
            "export it again with this autotune, or upgrade autotune"
        )
    unknown = set(data) - _TOP_FIELDS
    if unknown:
        names = ", ".join(sorted(printable(name, 40) for name in unknown)[:10])
        raise ConfigError(f"unknown manifest field(s): {names}")
    digest = data.get("model_digest")
    if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
        raise ConfigError("the manifest's model_digest is not a SHA-256 hex digest")
    raw = data.get("entries")
    if not isinstance(raw, list) or len(raw) > MAX_ENTRIES:
        raise ConfigError(f"the manifest's entries must be a list of at most {MAX_ENTRIES}")
    entries, dropped = [], 0
    for i, item in enumerate(raw):
        try:
            entries.append(_entry(item))
        except (ConfigError, ValueError) as exc:
            dropped += 1
            log.warning("autotune: refusing manifest entry %d (%s)", i, printable(exc, 400))
    name = data.get("model_name")
    return Manifest(
        model_digest=digest,
        entries=tuple(entries),
        model_name=name if isinstance(name, str) else None,
        dropped=dropped,
        inputs=_inputs(data.get("inputs")),
    )


def _inputs(value: Any) -> Inputs | None:
    """The manifest's ``inputs`` (graph input -> dimensions: a size, a symbolic name or null);
    None when absent. Raises ConfigError if malformed."""
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > MAX_INPUTS:
        raise ConfigError(f"the manifest's inputs must be an object of at most {MAX_INPUTS}")
    out: Inputs = {}
    for name, dims in value.items():
        if not isinstance(dims, list) or len(dims) > MAX_RANK:
            raise ConfigError(f"the manifest's input {printable(name, 40)} is not a list of dims")
        for d in dims:
            ok = d is None or (isinstance(d, str) and 0 < len(d) <= 128)
            if not ok and (isinstance(d, bool) or not isinstance(d, int) or d < 0):
                raise ConfigError(f"the manifest's input {printable(name, 40)} has a bad dim")
        out[name] = tuple(dims)
    return out


def _entry(item: Any) -> Entry:
    from autotune.providers import validate_config

    if not isinstance(item, dict):
        raise ValueError("an entry must be an object")
    unknown = set(item) - _ENTRY_FIELDS
    if unknown:
        names = ", ".join(sorted(printable(name, 40) for name in unknown)[:10])
        raise ValueError(f"unknown entry field(s): {names}")
    for name in ("chip", "shapes", "ort_version", "source"):
        value = item.get(name)
        if not isinstance(value, str) or not 0 < len(value) <= 2000:
            raise ValueError(f"{name} must be a non-empty string")
    ratio = item.get("ratio")
    if ratio is not None and (
        isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio < 1e6
    ):
        raise ValueError(f"ratio {ratio!r:.20} is not a positive number")
    measured = item.get("measured_at")
    if measured is not None and not (isinstance(measured, str) and len(measured) <= 64):
        raise ValueError("measured_at must be a short string")
    if not isinstance(item.get("default_shapes", False), bool):
        raise ValueError("default_shapes must be true or false")
    config = SessionConfig.from_dict(item.get("config"))
    validate_config(config)
    return Entry(
        chip=item["chip"],
        descriptor=ChipDescriptor.from_dict(item.get("descriptor")),
        shapes=item["shapes"],
        default_shapes=bool(item.get("default_shapes", False)),
        ort_version=item["ort_version"],
        config=config,
        thread_roles=ladder.check_roles(item.get("thread_roles")),
        ratio=float(ratio) if ratio is not None else None,
        source=item["source"],
        measured_at=measured,
    )


# -- writing ---------------------------------------------------------------------------------


def build(model_path: str | os.PathLike[str], *, db: str | None = None) -> dict[str, Any]:
    """The manifest of ``model_path`` from the database (every layer): per chip and input-shape
    signature, the choice ``best_config`` would make on that chip. Raises ConfigError if the
    database holds nothing for this model."""
    from autotune.chip import current_chip
    from autotune.descriptor import stored_descriptor
    from autotune.digest import model_digest
    from autotune.graph_inputs import graph_inputs
    from autotune.resolver import key_candidates
    from autotune.store.database import ResultKey, Store, now
    from autotune.version import __version__

    digest = model_digest(model_path)
    ort_version = current_chip().ort_version
    entries: list[Entry] = []
    with Store.open(db, write=False) as store:
        for row in store.chips_of_model(digest):
            desc = stored_descriptor(row.chip, row.os, row.chip_descriptor)
            for signature, default in store.shape_signatures(digest, row.chip):
                key = ResultKey(digest, row.chip, ort_version, signature)
                # thread counts bounded by the cores of the chip they were measured on
                choice = next(key_candidates(store, model_path, key, cores=desc.cores), None)
                if choice is None:
                    continue
                entries.append(
                    Entry(
                        chip=row.chip,
                        descriptor=desc,
                        shapes=signature,
                        default_shapes=bool(default),
                        ort_version=choice.key.ort_version,
                        config=choice.config,
                        thread_roles=choice.thread_roles or ladder.roles_of(choice.config, desc),
                        ratio=choice.ratio,
                        source=choice.source,
                        measured_at=choice.measured_at,
                    )
                )
    if not entries:
        raise ConfigError(
            f"the database holds no result for {os.fspath(model_path)}; "
            f"run: autotune search {os.fspath(model_path)}"
        )
    return {
        "format": FORMAT,
        "version": VERSION,
        "model_digest": digest,
        "model_name": Path(model_path).name,
        "created_at": now(),
        "autotune_version": __version__,
        "ladder": list(ladder.RUNGS),
        "families": _families(entries),
        "inputs": {k: list(v) for k, v in (graph_inputs(model_path) or {}).items()},
        "entries": [e.to_dict() for e in entries],
    }


def _families(entries: list[Entry]) -> list[dict[str, Any]]:
    """Per family and tier, its chips in the order the ladder tries them for one of its own."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for e in entries:
        d = e.descriptor
        if d.vendor and d.family:
            k = (d.vendor, d.family, d.tier or "")
            if e.chip not in groups.setdefault(k, []):
                groups[k].append(e.chip)
    return [
        {"vendor": v, "family": f, "tier": t or None, "chips": sorted(chips)}
        for (v, f, t), chips in sorted(groups.items())
    ]


def write(
    model_path: str | os.PathLike[str], output: str | os.PathLike[str], *, db: str | None = None
) -> Mapping[str, Any]:
    """Build the manifest and write it to ``output`` (checked by reading it back)."""
    data = build(model_path, db=db)
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    parsed = parse(text)
    if parsed.dropped:
        raise ConfigError(f"{parsed.dropped} entries would be refused on load; not written")
    Path(output).write_text(text, encoding="utf-8")
    return data


# -- pipelines (autotune.pipeline) -----------------------------------------------------------

PIPELINE_FORMAT = "autotune-pipeline-manifest"


def build_pipeline(path: str | os.PathLike[str], *, db: str | None = None) -> dict[str, Any]:
    """A pipeline file's manifest, for apps without Python: per chip and ORT version, the
    newest stored arrangement (each stage's configuration, one shared thread pool or one per
    session) with its speed-ups over both baselines. Raises ConfigError if none is stored."""
    from autotune.pipeline.spec import load_pipeline
    from autotune.store.database import Store, now
    from autotune.version import __version__

    spec = load_pipeline(Path(path))
    names = [s.name for s in spec.stages]
    entries: dict[tuple[str | None, str | None], dict[str, Any]] = {}
    with Store.open(db, write=False) as store:
        for r in store.pipeline_verdicts(spec.key()):
            if r.arrangement and (r.chip, r.ort_version) not in entries:
                arrangement = json.loads(r.arrangement)
                entries[r.chip, r.ort_version] = {
                    "chip": r.chip,
                    "ort_version": r.ort_version,
                    "outcome": r.outcome,
                    "stages": dict(zip(names, arrangement["stages"], strict=True)),
                    "shared_threads": arrangement["shared_threads"],
                    "speedup_vs_defaults": r.speedup_vs_defaults,
                    "speedup_vs_picks": r.speedup_vs_picks,
                    "measured_at": r.created_at,
                }
    if not entries:
        raise ConfigError(
            f"the database holds no result for pipeline {spec.name}; run: autotune search "
            f"{os.fspath(path)}"
        )
    return {
        "format": PIPELINE_FORMAT,
        "version": VERSION,
        "pipeline": spec.name,
        "pipeline_key": spec.key(),
        "pattern": spec.pattern(),
        "created_at": now(),
        "autotune_version": __version__,
        "entries": list(entries.values()),
    }
