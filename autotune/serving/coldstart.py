"""Cold start: the time from launch to the first result, in three states, and the caches that
shorten it.

States, each measured in a fresh process (``probe``): *first ever* (the cache is empty: the
session is built, optimized, and the cache filled), *cached* (a new process finds the cache
and loads from it), and *warm* (the p50 of later runs in the same process). The figure judged
is the time from the session's creation to its first result; importing onnxruntime, the same
for every choice and noisy on a shared machine, is reported beside it (``import_ms``).

Caches: ORT's own optimized model (``optimized_model_filepath``, saved in ORT format: the
graph after its optimizations, constants folded, loaded without optimizing again), and an
execution provider's own compile cache (``EP_CACHE``: OpenVINO's ``CACHE_DIR``, which the
provider fills with its compiled blob on the first build and reads at later ones). A cache
entry is keyed by the model's digest, the ORT version, the OS build and the configuration (a
plugin's package version is part of it); ``key.json`` records that key (and, for ORT's file,
its digest), written last, and an entry whose key or digest does not match is stale: removed,
never reused.

A launch of a choice that is not ORT's CPU EP also checks its first result against the CPU
EP's (``accuracy``: the accuracy gate's automatic tier, after the timed part), so a cache
that changes the answer is never picked.
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
EP_CACHE = "ep_cache"  # the execution provider's compile cache (OpenVINO's CACHE_DIR)
CACHES = (NONE, ORT_FORMAT, EP_CACHE)
CACHE_FILE = "model.ort"
EP_DIR = "ep"  # the provider's own files, inside the entry
KEY_FILE = "key.json"


@dataclass(frozen=True)
class StartChoice:
    """What a cold-start search picks: a session configuration and the cache it starts from."""

    config: SessionConfig
    cache: str = NONE

    def label(self) -> str:
        via = {
            NONE: "",
            ORT_FORMAT: ", from ORT's optimized model (cached)",
            EP_CACHE: ", from the provider's compile cache",
        }[self.cache]
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


def valid_entry(directory: Path, key: dict[str, str], cache: str = ORT_FORMAT) -> Path | None:
    """The cached model (ORT_FORMAT) or the provider's cache folder (EP_CACHE) in
    ``directory`` when its key matches ``key`` and it is intact (ORT's file: its digest; the
    provider's folder: written to, the provider checks its own blobs); otherwise None, and a
    stale or broken entry is removed."""
    found = directory / (EP_DIR if cache == EP_CACHE else CACHE_FILE)
    try:
        stored = json.loads((directory / KEY_FILE).read_text())
        ok = isinstance(stored, dict) and stored.get("key") == key
        if ok and cache == EP_CACHE:
            ok = any(found.rglob("*"))
        elif ok:
            ok = found.is_file() and stored.get("sha256") == _file_digest(found)
    except (OSError, ValueError):
        ok = False
    if not ok:
        shutil.rmtree(directory, ignore_errors=True)
        return None
    return found


def _fill(directory: Path, key: dict[str, str], written: Path | None) -> None:
    """Record the key last, atomically: an entry without it (a killed build) is never used."""
    tmp = directory / (KEY_FILE + ".tmp")
    record: dict[str, Any] = {"key": key}
    if written is not None:
        record["sha256"] = _file_digest(written)
    tmp.write_text(json.dumps(record))
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
    cached = valid_entry(directory, key, choice.cache)
    if choice.cache == EP_CACHE:
        directory.mkdir(parents=True, exist_ok=True)
        session = build_session(model_path, choice.config, cache_dir=directory / EP_DIR)
        if cached is None:
            _fill(directory, key, None)
        return session, "first" if cached is None else "cached"
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


def on_ort_cpu(config: SessionConfig) -> bool:
    """Whether ``config`` runs on ORT's CPU EP alone (its results are the reference's)."""
    from autotune.config import CPU

    return not config.plugin and all(name == CPU for name, _ in config.canonical().providers)


def accuracy(model: str, config: SessionConfig, feeds: Any, outputs: Any) -> str | None:
    """Why ``outputs`` of a choice that is not ORT's CPU EP fail the accuracy gate against the
    CPU EP's, or None (a CPU EP choice: None without checking)."""
    from autotune.build import build_session
    from autotune.config import DEFAULT_CONFIG
    from autotune.measure.accuracy import gate

    if on_ort_cpu(config):
        return None
    reference = build_session(model, DEFAULT_CONFIG).run(None, feeds)
    judged = gate(config, None, reference, outputs)
    return None if judged.ok else f"{judged.problem} ({judged.tier})"


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
    first = session.run(None, feeds)
    t3 = time.perf_counter()
    warm = []
    for _ in range(job.get("warm_runs", 10)):
        a = time.perf_counter()
        session.run(None, feeds)
        warm.append((time.perf_counter() - a) * 1000)
    return {
        "accuracy": accuracy(job["model"], choice.config, feeds, first),
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
