"""The run-time side of pipelines: ``best_pipeline("pipeline.toml")`` builds every stage's
session with the arrangement stored for this pipeline on this chip and ORT version (ORT's
defaults for every stage when none is), in one ONNX Runtime environment. Never imports optuna
or onnx (``tests/test_imports.py``).

    pipeline = autotune.best_pipeline("pipeline.toml")
    pipeline.prewarm()                      # one real inference per stage, one at a time
    tokens = pipeline["decoder"].run(None, feeds)
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autotune.errors import ConfigError, SessionBuildError
from autotune.pipeline.arrangement import Arrangement
from autotune.pipeline.replay import build_sessions, shared_pool
from autotune.pipeline.spec import PipelineSpec, load_pipeline
from autotune.store.records import PipelineRecord

log = logging.getLogger("autotune")


@dataclass
class PipelineSessions:
    """The stages' sessions (by stage name, in stage order) and what they were built with."""

    spec: PipelineSpec
    sessions: dict[str, Any]
    arrangement: Arrangement
    record: PipelineRecord | None  # the stored verdict served; None: ORT's defaults
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, stage: str) -> Any:
        return self.sessions[stage]

    @property
    def source(self) -> str:
        """What was served: the stored verdict's outcome, or ``none stored``."""
        return (self.record.outcome or "pick") if self.record else "none stored"

    def prewarm(self) -> dict[str, float]:
        """One real inference per stage, one stage at a time (so compiling providers' memory
        stays bounded), on inputs of the stage's shapes; milliseconds per stage. Raises
        SessionBuildError naming the stage that fails."""
        took = {}
        for stage in self.spec.stages:
            session = self.sessions[stage.name]
            feeds = {i.name: _ones(i, stage.shapes.get(i.name)) for i in session.get_inputs()}
            t0 = time.perf_counter()
            try:
                session.run(None, feeds)
            except Exception as exc:  # noqa: BLE001 - ORT's errors, as one line
                text = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
                raise SessionBuildError(
                    f"stage {stage.name!r} failed its warm-up run ({text}); give its input "
                    "shapes in the pipeline file's shapes"
                ) from None
            took[stage.name] = (time.perf_counter() - t0) * 1000.0
        return took

    def describe(self) -> str:
        return self.arrangement.describe([s.name for s in self.spec.stages])


def _ones(node: Any, shape: tuple[int, ...] | None) -> Any:
    from autotune.resolver import _NP_TYPES

    dims = shape or tuple(d if isinstance(d, int) and d > 0 else 1 for d in node.shape)
    return np.ones(dims, dtype=_NP_TYPES.get(node.type, np.float32))


def stored_pipeline(spec: PipelineSpec, db: str | None = None) -> PipelineRecord | None:
    """The newest stored verdict that serves an arrangement for this pipeline on this chip and
    ORT version (the personal database first), or None."""
    from autotune.chip import current_chip
    from autotune.store.database import Store

    chip = current_chip()
    with Store.open(db, write=False) as store:
        records = store.pipeline_verdicts(spec.key(), chip.chip_id, chip.ort_version)
        problems = list(store.problems)
    for problem in problems:
        log.warning("autotune: skipped %s", problem)
    return next((r for r in records if r.arrangement), None)


def best_pipeline(path: str | os.PathLike[str], *, db: str | None = None) -> PipelineSessions:
    """Every stage's ``InferenceSession``, built with the arrangement stored for this pipeline
    here (ORT's defaults for every stage when none is). ORT creates a process's shared thread
    pool once, and then every session must use it: where it already exists (at another size,
    or for an arrangement of one pool per session), the sessions join it (noted, and logged).
    Raises ConfigError for a bad pipeline file."""
    spec = load_pipeline(Path(path))
    record = stored_pipeline(spec, db)
    notes = []
    arrangement = Arrangement.defaults(len(spec.stages))
    if record is not None and record.arrangement:
        try:
            arrangement = Arrangement.from_json(record.arrangement, len(spec.stages))
        except ConfigError as exc:
            notes.append(f"the stored arrangement was not used ({exc})")
            record = None
    try:
        if arrangement.shared_threads is None and shared_pool() is not None:
            raise RuntimeError("this process has a global thread pool (best_pipeline set it)")
        sessions = build_sessions(spec, arrangement)
    except ConfigError as exc:  # the process's shared pool exists, at another size
        if arrangement.shared_threads is None:
            raise
        notes.append(f"the sessions share the pool this process already has: {exc}")
        sessions = build_sessions(spec, arrangement, join_pool=True)
    except RuntimeError as exc:  # ORT: this process has a shared pool, every session uses it
        if "global thread pool" not in str(exc):
            raise
        notes.append("this process has a shared thread pool: the sessions use it")
        sessions = build_sessions(spec, arrangement, join_pool=True)
    for note in notes:
        log.warning("autotune: pipeline %s: %s", spec.name, note)
    named = {s.name: session for s, session in zip(spec.stages, sessions, strict=True)}
    return PipelineSessions(spec, named, arrangement, record, notes)
