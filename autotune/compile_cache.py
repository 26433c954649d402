"""The persistent compile cache of compiling EPs (CoreML's ``ModelCacheDirectory``, OpenVINO's
cache directory): where it lives, what it is keyed by, and how it is filled safely.

ORT trusts whatever it finds there. CoreML reuses any existing ``<key>/<partition>_…/model``
path without checking it ("Model is already cached in … and will be reused",
``onnxruntime/core/providers/coreml/builders/model_builder.cc``), and it creates the
``.mlpackage`` folder before writing it. So autotune keys each directory by everything that
changes the compiled model, and fills it under a lock with a completion marker:

``<cache>/compiled/<model digest>/<runtime tag>/<compile key>/`` where the runtime tag names the
ORT version, the OS build and the architecture, and the compile key hashes the configuration
without the options applied only when the compiled model is loaded (CoreML's compute units,
specialization and low-precision accumulation, ``model/model.mm``). Trials and app launches
that differ only in those share one compiled model; the cold compile is recorded once per key.

A directory without its marker was left by a build that stopped part-way (a killed process):
it is wiped before use. A build that fails on a filled cache wipes it and is retried once.
The least recently used directories beyond a count or size bound are pruned.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from autotune.config import SessionConfig
from autotune.errors import AutotuneError

MARKER = ".autotune-complete"
MAX_ENTRIES = 16  # compiled directories kept (least recently used pruned first)
MAX_BYTES = 8 * 2**30
# Options each EP applies when it loads its compiled model, not when it compiles it: CoreML's
# model.mm sets them on the MLModelConfiguration (ProfileComputePlan only logs there).
LOAD_TIME_OPTIONS = {
    "CoreMLExecutionProvider": frozenset(
        {
            "MLComputeUnits",
            "SpecializationStrategy",
            "AllowLowPrecisionAccumulationOnGPU",
            "ProfileComputePlan",
        }
    ),
}
# Session settings that only change how ORT schedules runs, never the graph an EP compiles.
_RUN_TIME_SETTINGS = ("execution_mode", "intra_op_num_threads", "inter_op_num_threads")
_RUN_TIME_ENTRIES = frozenset(
    {
        "session.intra_op.allow_spinning",
        "session.inter_op.allow_spinning",
        "session.force_spinning_stop",
        "session.set_denormal_as_zero",
        "session.dynamic_block_base",
    }
)


def uses_compile_cache(config: SessionConfig) -> bool:
    """Whether building ``config`` compiles into a directory autotune owns (or, for a device
    policy, may: ORT picks the EP, CoreML among them on a Mac)."""
    from autotune.providers import SPACES, plugin_space

    if config.device_policy:
        return bool(policy_cache_options(Path(".")))
    for name, _ in config.canonical().providers:
        space = SPACES.get(name)
        if config.plugin and space is None:
            space = plugin_space(config.plugin["package"], name)
        if space is not None and (space.cache_options or space.runtime_hook is not None):
            return True
    return False


def policy_cache_options(directory: Path) -> dict[str, str]:
    """Session config entries that give the compiling EPs of this onnxruntime a cache when a
    device policy may select them: ORT hands a policy-selected EP the entries named
    ``ep.<lower-case EP name>.<option>`` (``OrtSessionOptions::GetProviderOptionPrefix``)."""
    import onnxruntime as ort

    from autotune.plugins import is_plugin_ep
    from autotune.providers import SPACES

    out = {}
    for name in ort.get_available_providers():
        # a plugin EP of the same name takes its cache elsewhere (OpenVINO: in load_config)
        space = None if is_plugin_ep(name) else SPACES.get(name)
        for key, sub in space.cache_options.items() if space else ():
            out[f"ep.{name.lower()}.{key}"] = str(directory / sub)
    return out


def compile_key(config: SessionConfig) -> str:
    """What changes the compiled model of ``config``, hashed: the configuration without the
    options applied at load and without run-time scheduling settings."""
    c = config.canonical().to_dict()
    for name in _RUN_TIME_SETTINGS:
        c.pop(name, None)
    c["providers"] = [
        [name, {k: v for k, v in opts.items() if k not in LOAD_TIME_OPTIONS.get(name, ())}]
        for name, opts in c.get("providers", [])
    ]
    if "session_entries" in c:
        c["session_entries"] = {
            k: v for k, v in c["session_entries"].items() if k not in _RUN_TIME_ENTRIES
        }
    text = json.dumps(c, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def runtime_tag() -> str:
    """ORT version, OS build and architecture: a compiled model is reused only by the runtime
    that compiled it (a new ORT partitions differently, a new OS has a new Core ML compiler)."""
    import onnxruntime as ort

    text = f"ort{ort.__version__}-{platform.system()}{os_build()}-{platform.machine()}"
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in text)


def os_build() -> str:
    """The OS build: macOS's ``kern.osversion`` (e.g. 23E224, read by sysctlbyname, no
    subprocess), else the kernel or Windows release."""
    if sys.platform == "darwin":
        build = _sysctl_string(b"kern.osversion")
        if build:
            return build
        return platform.mac_ver()[0]
    return platform.release()


def _sysctl_string(name: bytes) -> str | None:
    from autotune.descriptor import read_sysctl

    return read_sysctl(name.decode())


def compiled_root() -> Path:
    from autotune.paths import cache_dir

    return cache_dir() / "compiled"


def entry_dir(digest: str, config: SessionConfig, root: Path | None = None) -> Path:
    """The run-time compile cache of one model version, runtime and compile key."""
    base = compiled_root() if root is None else root
    return base / digest[:16] / runtime_tag() / compile_key(config)


def trial_dir(root: str | None, config: SessionConfig) -> str | None:
    """A search's compile cache for ``config``: shared by the trials with its compile key,
    kept until the search ends (the final head-to-head loads from it)."""
    if root is None:
        return None
    path = Path(root) / compile_key(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


class CacheUnavailable(OSError):
    """The compile cache cannot be written here (a read-only or missing cache directory): the
    session is then built without one."""


@dataclass(frozen=True)
class CachedBuild:
    """A session built through a compile cache, and what the cache held."""

    session: Any
    build_ms: float  # this build
    cold: bool  # this build compiled (the cache was empty, half-written or wiped)
    cold_ms: float | None  # the key's cold compile, recorded once when it was compiled
    wiped: str | None = None  # why a directory was wiped first, if it was


def build_cached(directory: Path, build: Callable[[Path], Any]) -> CachedBuild:
    """Call ``build(directory)`` holding the directory's lock; mark it complete afterwards.

    A directory with no marker (a build killed part-way) is wiped first. When the build fails
    on a filled cache, the cache is wiped and the build retried once; a second failure wipes it
    again and raises what the build raised. AutotuneErrors (a missing plugin, a refused
    option) are raised at once: the cache is not what failed. Raises CacheUnavailable, before
    building, when the directory or its lock cannot be created."""
    lock = contextlib.ExitStack()
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        lock.enter_context(_locked(_lock_path(directory)))
    except OSError as exc:
        raise CacheUnavailable(f"compile cache {directory} unusable: {exc}") from None
    with lock:
        marker = _read_marker(directory)
        wiped = None
        if marker is None and directory.exists() and any(directory.iterdir()):
            _wipe(directory)
            wiped = "a build that stopped part-way left it incomplete"
        for attempt in range(2):
            t0 = time.perf_counter()
            try:
                session = build(directory)
            except AutotuneError:
                raise
            except Exception:
                filled = marker is not None
                _wipe(directory)
                if attempt or not filled:
                    raise
                marker, wiped = None, "it failed to build"
                continue
            build_ms = (time.perf_counter() - t0) * 1000.0
            if marker is None:
                _write_marker(directory, {"cold_ms": build_ms, "created": time.time()})
                return CachedBuild(session, build_ms, True, build_ms, wiped)
            with contextlib.suppress(OSError):
                os.utime(directory / MARKER)  # least recently used: the marker's mtime
            cold_ms = marker.get("cold_ms")
            cold = float(cold_ms) if isinstance(cold_ms, (int, float)) else None
            return CachedBuild(session, build_ms, False, cold, wiped)
    raise AssertionError("unreachable")  # pragma: no cover


def prune(
    root: Path | None = None, *, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES
) -> list[Path]:
    """Delete the least recently used compiled directories beyond ``max_entries`` or
    ``max_bytes``, and abandoned half-written ones. A directory whose lock another process
    holds (being built) is left alone. Returns what was deleted."""
    base = compiled_root() if root is None else root
    complete: list[tuple[float, int, Path]] = []
    deleted = []
    for lock in sorted(base.glob("*/*/*.lock")):
        directory = lock.with_suffix("")
        marker = directory / MARKER
        if marker.exists():
            complete.append((marker.stat().st_mtime, _size(directory), directory))
        elif _remove_if_free(directory):
            deleted.append(directory)
    complete.sort(reverse=True)  # most recently used first
    total = 0
    for kept, (_, size, directory) in enumerate(complete):
        total += size
        if (kept >= max_entries or total > max_bytes) and _remove_if_free(directory):
            deleted.append(directory)
    for parent in sorted({p.parent for p in deleted}, reverse=True):
        for empty in (parent, parent.parent):
            with contextlib.suppress(OSError):
                empty.rmdir()  # only when nothing else is left in it
    return deleted


def _remove_if_free(directory: Path) -> bool:
    lock = _lock_path(directory)
    try:
        with _locked(lock, wait=False):
            _wipe(directory)
            with contextlib.suppress(OSError):  # Windows: not while it is open
                lock.unlink()  # inside the lock: a waiter sees the file gone and locks anew
    except BlockingIOError:
        return False
    return True


def _size(directory: Path) -> int:
    total = 0
    for path in directory.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
    return total


def _lock_path(directory: Path) -> Path:
    return directory.with_name(directory.name + ".lock")


@contextlib.contextmanager
def _locked(path: Path, *, wait: bool = True) -> Iterator[None]:
    """An exclusive lock on ``path`` (created if absent), released when the process dies.
    Raises BlockingIOError when ``wait`` is false and another process holds it."""
    while True:
        handle = open(path, "a+b")  # noqa: SIM115 - closed below or on return
        try:
            _lock(handle, wait)
        except BaseException:
            handle.close()
            raise
        try:
            same = os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()  # pruned while we waited: lock the new file
    try:
        yield
    finally:
        _unlock(handle)
        handle.close()


def _lock(handle: IO[bytes], wait: bool) -> None:
    if sys.platform == "win32":
        import msvcrt

        mode = msvcrt.LK_LOCK if wait else msvcrt.LK_NBLCK
        handle.seek(0)  # msvcrt locks bytes from the current position
        try:
            msvcrt.locking(handle.fileno(), mode, 1)
        except OSError as exc:
            if wait:
                raise
            raise BlockingIOError(str(exc)) from None
        return
    import fcntl

    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))


def _unlock(handle: IO[bytes]) -> None:
    if sys.platform == "win32":
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _read_marker(directory: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((directory / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_marker(directory: Path, data: dict[str, Any]) -> None:
    """Mark ``directory`` complete; if that fails (a full disk), the next build compiles again."""
    tmp = directory / f"{MARKER}.{os.getpid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data))
        os.replace(tmp, directory / MARKER)  # complete or absent, never half-written
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _wipe(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
