"""Measuring configurations honestly, in a worker process.

One worker per search holds the reference session (ORT defaults) and measures each candidate
against it **interleaved and paired**: short rounds, each running a block of the candidate and a
block of the reference in random order; a round's score is the ratio of the two block medians.
On the shared VMs this runs on, slow phases lasting seconds to minutes double latencies, so
absolute times from different moments cannot be compared, but a ratio taken within one round can.
Rounds whose reference block is more than ``guard`` times slower than the fastest reference block
known for this model are dropped (a slow phase). See ../shared/reference/measurement-on-this-machine.md.

The worker also checks every candidate: that the providers asked for were kept and where nodes
were placed, and that outputs match a CPU-EP reference run (ORT_DISABLE_ALL, fp32).

A crash (segfault, abort) or a hang in a candidate kills only the worker; the parent records the
trial as crashed or timed out and starts a fresh worker.
"""

from __future__ import annotations

import gc
import math
import multiprocessing
import os
import random
import resource
import statistics
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autotune.build import build_session, dropped_providers, placement_supported
from autotune.config import CPU, DEFAULT_CONFIG, SessionConfig

# statuses a trial can end with
OK = "ok"
PRUNED = "pruned"
FAILED = "failed"
CRASHED = "crashed"
TIMEOUT = "timeout"
INACCURATE = "inaccurate"
EP_DROPPED = "ep_dropped"

COMPILING_EPS = {
    "CoreMLExecutionProvider",
    "OpenVINOExecutionProvider",
    "TensorrtExecutionProvider",
    "QNNExecutionProvider",
    "DmlExecutionProvider",
}


@dataclass(frozen=True)
class Protocol:
    """How candidates are timed. Defaults follow the measurements on a 2-core VM."""

    block_seconds: float = 0.08  # target length of one block of timed runs
    min_runs_per_block: int = 3
    max_runs_per_block: int = 2000
    rounds: int = 8  # kept rounds wanted per candidate
    max_rounds: int = 20  # give up waiting for a fast phase after this many
    final_rounds: int = 15  # rounds of the final head-to-head
    guard: float = 1.25  # drop a round whose reference block is this much slower than the floor
    rtol: float | None = None  # None: per output dtype (fp32 1e-3, fp16 1e-2)
    atol: float | None = None


@dataclass(frozen=True)
class WorkerSetup:
    model_path: str
    feeds: dict[str, Any]
    protocol: Protocol = Protocol()
    floor_ms: float | None = None  # fastest reference block known for this model (stored)
    cache_root: str | None = None  # per-trial compile caches go below it
    reference_config: str = DEFAULT_CONFIG.to_json()


@dataclass
class TrialResult:
    """Everything one trial measured; stored as one row."""

    status: str
    error: str | None = None
    ratio: float | None = None  # median over kept rounds of candidate/reference block latency
    ratio_iqr: float | None = None
    ratios: list[float] = field(default_factory=list)
    rounds_kept: int = 0
    rounds_dropped: int = 0
    latency_ms_p50: float | None = None
    latency_ms_p90: float | None = None
    reference_ms_p50: float | None = None
    runs: int = 0
    session_create_ms: float | None = None
    first_run_ms: float | None = None
    session_rss_mb: float | None = None
    peak_rss_mb: float | None = None
    max_abs_err: float | None = None
    err_to_tol: float | None = None
    placement: dict[str, Any] = field(default_factory=dict)
    floor_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# worker side (runs in the child process; imports onnxruntime, never optuna)
# ---------------------------------------------------------------------------------------------


def _rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def placement_of(session: Any, config: SessionConfig) -> dict[str, Any]:
    """Nodes per provider, partitions per compiling provider, and op types that fell to CPU."""
    if not placement_supported():
        return {"available": False}
    try:
        subgraphs = session.get_provider_graph_assignment_info()
    except Exception as exc:  # noqa: BLE001 - placement is diagnostic; never fail a trial on it
        return {"available": False, "error": str(exc)[:200]}
    nodes: Counter[str] = Counter()
    partitions: Counter[str] = Counter()
    cpu_ops: Counter[str] = Counter()
    for sg in subgraphs:
        sg_nodes = sg.get_nodes()
        nodes[sg.ep_name] += len(sg_nodes)
        if sg.ep_name in COMPILING_EPS:
            partitions[sg.ep_name] += 1
        if sg.ep_name == CPU:
            for n in sg_nodes:
                cpu_ops[n.op_type] += 1
    requested = [n for n, _ in config.canonical().providers if n != CPU]
    return {
        "available": True,
        "nodes": dict(nodes),
        "partitions": dict(partitions),
        "cpu_fallback_ops": dict(cpu_ops.most_common()) if requested else {},
        "requested": requested,
    }


def compare_outputs(
    reference: list[Any], outputs: list[Any], rtol: float | None, atol: float | None
) -> tuple[bool, float, float, str | None]:
    """(within tolerance, max |error|, worst error/tolerance, first problem) over all outputs."""
    max_abs = 0.0
    worst = 0.0
    for i, (ref, out) in enumerate(zip(reference, outputs, strict=True)):
        ref_a = np.asarray(ref)
        out_a = np.asarray(out)
        if ref_a.shape != out_a.shape:
            return False, math.inf, math.inf, f"output {i} has shape {out_a.shape}, not {ref_a.shape}"
        if ref_a.dtype.kind in "fc":
            r = rtol if rtol is not None else (1e-2 if ref_a.dtype.itemsize <= 2 else 1e-3)
            a = atol if atol is not None else (1e-3 if ref_a.dtype.itemsize <= 2 else 1e-4)
            ref64 = ref_a.astype(np.float64)
            out64 = out_a.astype(np.float64)
            if not np.array_equal(np.isnan(ref64), np.isnan(out64)):
                return False, math.inf, math.inf, f"output {i} has NaNs where the reference has none"
            finite = ~np.isnan(ref64)
            diff = np.abs(ref64 - out64)[finite]
            tol = (a + r * np.abs(ref64))[finite]
            if diff.size:
                max_abs = max(max_abs, float(diff.max()))
                worst = max(worst, float((diff / tol).max()))
        elif not np.array_equal(ref_a, out_a):
            return False, math.inf, math.inf, f"output {i} ({ref_a.dtype}) differs from the reference"
    if worst > 1.0:
        return False, max_abs, worst, f"outputs differ from the CPU reference by up to {max_abs:.3g}"
    return True, max_abs, worst, None


class _Timer:
    """Times blocks of runs of one session."""

    def __init__(self, session: Any, feeds: dict[str, Any]) -> None:
        self.session = session
        self.feeds = feeds

    def block(self, runs: int) -> list[float]:
        run = self.session.run
        feeds = self.feeds
        run(None, feeds)  # one discarded run: caches, spinning threads waking up
        out = []
        clock = time.perf_counter
        for _ in range(runs):
            t0 = clock()
            run(None, feeds)
            out.append((clock() - t0) * 1000.0)
        return out


class _Worker:
    def __init__(self, conn: Any, setup: WorkerSetup) -> None:
        import onnxruntime as ort

        ort.set_default_logger_severity(3)
        self.conn = conn
        self.setup = setup
        self.protocol = setup.protocol
        self.feeds = setup.feeds
        path = setup.model_path
        # the accuracy reference: CPU EP, no graph optimizations, fp32
        ref_cfg = SessionConfig(graph_optimization_level="ORT_DISABLE_ALL")
        ref = build_session(path, ref_cfg)
        self.reference_outputs = ref.run(None, self.feeds)
        del ref
        self.baseline_config = SessionConfig.from_json(setup.reference_config)
        self.baseline = _Timer(build_session(path, self.baseline_config), self.feeds)
        for _ in range(3):
            self.baseline.block(1)
        probe = self.baseline.block(5)
        self.latency_estimate_ms = statistics.median(probe)
        self.runs_per_block = self._runs_for(self.latency_estimate_ms)
        floor = min(statistics.median(self.baseline.block(self.runs_per_block)) for _ in range(3))
        self.floor_ms = min(floor, setup.floor_ms) if setup.floor_ms else floor

    def _runs_for(self, latency_ms: float) -> int:
        p = self.protocol
        wanted = math.ceil(p.block_seconds * 1000.0 / max(latency_ms, 1e-4))
        return max(p.min_runs_per_block, min(p.max_runs_per_block, wanted))

    def _kept(self, reference_block_ms: float) -> bool:
        self.floor_ms = min(self.floor_ms, reference_block_ms)
        return reference_block_ms <= self.protocol.guard * self.floor_ms

    def _stop_requested(self) -> bool:
        if self.conn.poll(0):
            msg = self.conn.recv()
            return bool(msg and msg[0] == "stop")
        return False

    def ready_info(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_estimate_ms,
            "runs_per_block": self.runs_per_block,
            "floor_ms": self.floor_ms,
            "pid": os.getpid(),
        }

    # one candidate against the reference -----------------------------------------------
    def measure(self, config_json: str, trial_dir: str | None) -> TrialResult:
        config = SessionConfig.from_json(config_json)
        p = self.protocol
        rss_before = _rss_mb()
        t0 = time.perf_counter()
        try:
            session = build_session(
                self.setup.model_path,
                config,
                cache_dir=Path(trial_dir) if trial_dir else None,
                record_placement=True,
            )
        except Exception as exc:  # noqa: BLE001 - any build failure is a recorded result
            return TrialResult(status=FAILED, error=_one_line(exc))
        create_ms = (time.perf_counter() - t0) * 1000.0
        result = TrialResult(status=OK, session_create_ms=create_ms)
        dropped = dropped_providers(session, config)
        result.placement = placement_of(session, config)
        if dropped:
            result.status = EP_DROPPED
            result.error = f"ORT dropped {', '.join(dropped)} and ran on CPU"
            return result
        placed = result.placement.get("nodes", {})
        silent = [n for n in result.placement.get("requested", []) if not placed.get(n)]
        if result.placement.get("available") and silent:
            result.status = EP_DROPPED
            result.error = f"{', '.join(silent)} took no nodes; the session ran on CPU"
            return result
        try:
            t0 = time.perf_counter()
            outputs = session.run(None, self.feeds)
            result.first_run_ms = (time.perf_counter() - t0) * 1000.0
        except Exception as exc:  # noqa: BLE001
            return TrialResult(status=FAILED, error=_one_line(exc), session_create_ms=create_ms)
        rss_after = _rss_mb()
        if rss_before is not None and rss_after is not None:
            result.session_rss_mb = max(0.0, rss_after - rss_before)
        ok, max_abs, worst, problem = compare_outputs(self.reference_outputs, outputs, p.rtol, p.atol)
        result.max_abs_err, result.err_to_tol = max_abs, worst
        if not ok:
            result.status = INACCURATE
            result.error = problem
            return result
        candidate = _Timer(session, self.feeds)
        candidate.block(2)
        self._interleave(candidate, result)
        result.peak_rss_mb = _peak_rss_mb()
        result.floor_ms = self.floor_ms
        del session, candidate
        gc.collect()
        return result

    def _interleave(self, candidate: _Timer, result: TrialResult) -> None:
        p = self.protocol
        samples: list[float] = []
        ref_samples: list[float] = []
        kept_ratios: list[float] = []
        dropped = 0
        stopped = False
        rng = random.Random(len(result.ratios) + os.getpid())
        for index in range(p.max_rounds):
            order = [("c", candidate), ("r", self.baseline)]
            rng.shuffle(order)
            blocks: dict[str, list[float]] = {}
            for tag, timer in order:
                time.sleep(0.002)
                blocks[tag] = timer.block(self.runs_per_block)
            cand_ms = statistics.median(blocks["c"])
            ref_ms = statistics.median(blocks["r"])
            ratio = cand_ms / ref_ms
            kept = self._kept(ref_ms)
            if kept:
                kept_ratios.append(ratio)
                samples += blocks["c"]
                ref_samples += blocks["r"]
            else:
                dropped += 1
                time.sleep(0.2)  # a slow phase: give it a moment to pass
            self.conn.send(("round", index, ratio, kept))
            if self._stop_requested():
                stopped = True
                break
            if len(kept_ratios) >= p.rounds:
                break
        if not kept_ratios:
            # never a fast phase: report the unguarded figure, marked as contended
            result.error = "every round ran in a slow phase; figure is unguarded"
            kept_ratios = [statistics.median(blocks["c"]) / statistics.median(blocks["r"])]
            samples, ref_samples = blocks["c"], blocks["r"]
        result.ratios = kept_ratios
        result.ratio = statistics.median(kept_ratios)
        result.ratio_iqr = _iqr(kept_ratios)
        result.rounds_kept = len(kept_ratios)
        result.rounds_dropped = dropped
        result.latency_ms_p50 = _percentile(samples, 50)
        result.latency_ms_p90 = _percentile(samples, 90)
        result.reference_ms_p50 = _percentile(ref_samples, 50)
        result.runs = len(samples)
        if stopped:
            result.status = PRUNED

    # final head-to-head of several configurations --------------------------------------
    def compare(self, configs: list[str], rounds: int) -> dict[str, Any]:
        sessions = []
        for text in configs:
            cfg = SessionConfig.from_json(text)
            sessions.append(_Timer(build_session(self.setup.model_path, cfg), self.feeds))
        ratios: list[list[float]] = [[] for _ in configs]
        latencies: list[list[float]] = [[] for _ in configs]
        dropped = 0
        rng = random.Random(os.getpid())
        total = 0
        while total < rounds * 2 and min(len(r) for r in ratios) < rounds:
            total += 1
            order = [*list(range(len(sessions))), -1]
            rng.shuffle(order)
            blocks: dict[int, float] = {}
            for i in order:
                time.sleep(0.002)
                timer = self.baseline if i < 0 else sessions[i]
                block = timer.block(self.runs_per_block)
                blocks[i] = statistics.median(block)
                if i >= 0:
                    latencies[i] += block
            if not self._kept(blocks[-1]):
                dropped += 1
                time.sleep(0.2)
                continue
            for i in range(len(sessions)):
                ratios[i].append(blocks[i] / blocks[-1])
        del sessions
        gc.collect()
        return {
            "ratios": [statistics.median(r) if r else None for r in ratios],
            "iqr": [_iqr(r) if r else None for r in ratios],
            "rounds_kept": min(len(r) for r in ratios),
            "rounds_dropped": dropped,
            "latency_ms_p50": [_percentile(x, 50) for x in latencies],
            "latency_ms_p90": [_percentile(x, 90) for x in latencies],
        }


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _iqr(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    q75, q25 = np.percentile(values, [75, 25])
    return float(q75 - q25)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:500]


def worker_main(conn: Any, setup: WorkerSetup) -> None:
    """Entry point of a measuring worker process."""
    import signal

    # Ctrl-C is the parent's to handle: it must not kill a trial and be recorded as a crash
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        worker = _Worker(conn, setup)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises SearchError
        conn.send(("setup_failed", _one_line(exc), traceback.format_exc(limit=3)))
        return
    conn.send(("ready", worker.ready_info()))
    while True:
        try:
            msg = conn.recv()
            kind = msg[0]
            if kind == "measure":
                result = worker.measure(msg[1], msg[2])
                conn.send(("result", result.to_dict()))
            elif kind == "compare":
                conn.send(("compared", worker.compare(msg[1], msg[2])))
            elif kind == "stop":
                continue  # a stop that arrived after its trial ended
            else:
                return
        except (EOFError, BrokenPipeError, ConnectionResetError):
            return  # the parent is gone (killed): nothing left to measure for


# ---------------------------------------------------------------------------------------------
# parent side
# ---------------------------------------------------------------------------------------------


class WorkerLost(Exception):
    """The worker died (crashed) or stopped answering (timeout)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


WorkerTarget = Callable[[Any, WorkerSetup], None]


class MeasuringWorker:
    """A spawned worker process and the conversation with it."""

    def __init__(
        self,
        setup: WorkerSetup,
        *,
        startup_timeout: float = 600.0,
        target: WorkerTarget = worker_main,
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=target, args=(child, setup), daemon=True)
        self.process.start()
        child.close()
        msg = self._receive(startup_timeout)
        if msg[0] != "ready":
            self.close()
            raise WorkerLost(FAILED, str(msg[1]))
        self.info: dict[str, Any] = msg[1]

    def _receive(self, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise WorkerLost(TIMEOUT, f"no answer within {timeout:.0f} s; the worker was killed")
            try:
                if self.conn.poll(min(remaining, 0.5)):
                    return self.conn.recv()
            except (EOFError, OSError):
                pass
            if not self.process.is_alive():
                # drain anything sent just before it ended
                try:
                    if self.conn.poll(0):
                        return self.conn.recv()
                except (EOFError, OSError):
                    pass
                code = self.process.exitcode
                raise WorkerLost(CRASHED, _exit_text(code))

    def measure(
        self,
        config: SessionConfig,
        *,
        timeout: float,
        trial_dir: str | None = None,
        on_round: Callable[[int, float, bool], bool] | None = None,
    ) -> TrialResult:
        """Measure one candidate. ``on_round`` returns True to stop early (prune).
        Raises WorkerLost if the worker crashes or exceeds ``timeout``."""
        self.conn.send(("measure", config.to_json(), trial_dir))
        deadline = time.monotonic() + timeout
        while True:
            msg = self._receive(max(0.0, deadline - time.monotonic()))
            if msg[0] == "round":
                if on_round is not None and on_round(msg[1], msg[2], msg[3]):
                    self.conn.send(("stop",))
                continue
            if msg[0] == "result":
                data = msg[1]
                return TrialResult(**data)
            raise WorkerLost(FAILED, f"unexpected message from worker: {msg[0]}")

    def compare(self, configs: list[SessionConfig], rounds: int, timeout: float) -> dict[str, Any]:
        self.conn.send(("compare", [c.to_json() for c in configs], rounds))
        msg = self._receive(timeout)
        if msg[0] != "compared":
            raise WorkerLost(FAILED, f"unexpected message from worker: {msg[0]}")
        result: dict[str, Any] = msg[1]
        return result

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)

    def close(self) -> None:
        try:
            self.conn.send(("exit",))
        except (OSError, BrokenPipeError):
            pass
        self.process.join(5)
        self.kill()
        self.conn.close()


def _exit_text(code: int | None) -> str:
    import signal

    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the worker process died with {name}"
    return f"the worker process exited with code {code}"


def new_trial_dir(root: str | None) -> str | None:
    if root is None:
        return None
    Path(root).mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(prefix="trial-", dir=root)
