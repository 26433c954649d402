"""Cold start: the time from launch to the first result, in three states, and the caches that
shorten it.

States, each measured in a fresh process (``probe``): *first ever* (the cache is empty: the
session is built, optimized, and the cache filled), *cached* (a new process finds the cache
and loads from it), and *warm* (the p50 of later runs in the same process). The figure judged
is the time from the session's creation to its first result; importing onnxruntime, the same
for every choice and noisy on a shared machine, is reported beside it (``import_ms``).

Caches: ORT's own optimized model (``optimized_model_filepath``, saved in ORT format: the
graph after its optimizations, constants folded, loaded without optimizing again). A cache
entry is keyed by the model's digest, the ORT version, the OS build and the configuration;
``key.json`` beside the file records that key and the file's digest, and an entry whose key or
digest does not match is stale: removed, never reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotune.config import SessionConfig

NONE = "none"  # no cache: every launch builds and optimizes the session
ORT_FORMAT = "ort_format"  # ORT's optimized model, saved once, loaded at every later launch
CACHES = (NONE, ORT_FORMAT)
CACHE_FILE = "model.ort"
KEY_FILE = "key.json"


@dataclass(frozen=True)
class StartChoice:
    """What a cold-start search picks: a session configuration and the cache it starts from."""

    config: SessionConfig
    cache: str = NONE

    def label(self) -> str:
        via = "" if self.cache == NONE else ", from ORT's optimized model (cached)"
        return f"{self.config.describe()}{via}"

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "cache": self.cache}

    @classmethod
    def from_dict(cls, data: Any) -> StartChoice:
        from autotune.errors import ConfigError

        if not isinstance(data, dict) or data.get("cache") not in CACHES:
            raise ConfigError(f"a cold-start choice is a config and one of the caches {CACHES}")
        return cls(SessionConfig.from_dict(data.get("config", {})), data["cache"])


def os_build() -> str:
    """The OS and its build: a cache written under another kernel or OS release is stale."""
    return f"{platform.system()} {platform.release()} {platform.version()} {platform.machine()}"


def cache_key(model_digest: str, config: SessionConfig) -> dict[str, str]:
    """Everything a cached optimized model depends on."""
    import onnxruntime as ort

    return {
        "model_digest": model_digest,
        "ort_version": ort.__version__,
        "os_build": os_build(),
        "config_id": config.config_id,
    }


def entry_dir(root: Path, key: dict[str, str]) -> Path:
    text = json.dumps(key, sort_keys=True)
    return root / key["model_digest"][:16] / hashlib.sha256(text.encode()).hexdigest()[:16]


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def valid_entry(directory: Path, key: dict[str, str]) -> Path | None:
    """The cached model in ``directory`` when its key matches ``key`` and its file is intact;
    otherwise None, and a stale or broken entry is removed."""
    cached, marker = directory / CACHE_FILE, directory / KEY_FILE
    if not marker.is_file():
        if directory.exists():
            shutil.rmtree(directory, ignore_errors=True)
        return None
    try:
        stored = json.loads(marker.read_text())
        ok = (
            isinstance(stored, dict)
            and stored.get("key") == key
            and cached.is_file()
            and stored.get("sha256") == _file_digest(cached)
        )
    except (OSError, ValueError):
        ok = False
    if not ok:
        shutil.rmtree(directory, ignore_errors=True)
        return None
    return cached


def _fill(directory: Path, key: dict[str, str], written: Path) -> None:
    """Record the key last, atomically: an entry without it (a killed build) is never used."""
    tmp = directory / (KEY_FILE + ".tmp")
    tmp.write_text(json.dumps({"key": key, "sha256": _file_digest(written)}))
    os.replace(tmp, directory / KEY_FILE)


def start_session(
    model_path: str, choice: StartChoice, model_digest: str, root: Path
) -> tuple[Any, str]:
    """A session for ``choice``: from the cache when it holds a valid entry ("cached"),
    else built and, with a cache, saved to it ("first"); ``"none"`` without a cache."""
    import onnxruntime as ort

    from autotune.build import build_session, provider_list, session_options

    if choice.cache == NONE:
        return build_session(model_path, choice.config), "none"
    key = cache_key(model_digest, choice.config)
    directory = entry_dir(root, key)
    cached = valid_entry(directory, key)
    providers = provider_list(choice.config, None)
    if cached is not None:
        so = session_options(choice.config)
        # the saved graph is already optimized: loading skips the optimizers
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return ort.InferenceSession(str(cached), sess_options=so, providers=providers), "cached"
    directory.mkdir(parents=True, exist_ok=True)
    so = session_options(choice.config)
    written = directory / CACHE_FILE
    so.optimized_model_filepath = str(written)
    session = ort.InferenceSession(model_path, sess_options=so, providers=providers)
    _fill(directory, key, written)
    return session, "first"


def probe(job: dict[str, Any], launched: float) -> dict[str, Any]:
    """One launch: the session, its first result, then ``warm_runs`` more (the warm p50)."""
    import numpy as np

    from autotune.model import load_model_info, synthetic_feeds

    choice = StartChoice.from_dict(job["choice"])
    t0 = time.perf_counter()
    session, state = start_session(job["model"], choice, job["digest"], Path(job["root"]))
    t1 = time.perf_counter()
    info = load_model_info(job["model"])
    feeds = synthetic_feeds(info, {k: tuple(v) for k, v in job["shapes"].items()})
    t2 = time.perf_counter()
    session.run(None, feeds)
    t3 = time.perf_counter()
    warm = []
    for _ in range(job.get("warm_runs", 10)):
        a = time.perf_counter()
        session.run(None, feeds)
        warm.append((time.perf_counter() - a) * 1000)
    return {
        "state": state,
        "create_ms": (t1 - t0) * 1000,
        "first_run_ms": (t3 - t2) * 1000,
        # creation to first result, less the time spent making the inputs (the app has its own)
        "first_result_ms": ((t1 - t0) + (t3 - t2)) * 1000,
        "import_ms": (t0 - launched) * 1000,
        "warm_ms_p50": float(np.median(warm)) if warm else None,
    }


def main() -> None:
    launched = time.perf_counter()
    import onnxruntime  # noqa: F401 - timed apart: import_ms

    job = json.loads(sys.stdin.read())
    print(json.dumps(probe(job, launched)))


if __name__ == "__main__":
    main()
