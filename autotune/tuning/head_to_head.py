"""One head-to-head, written once (the search's final step and ``autotune adapt``): ORT's
defaults and a few candidates in fresh processes, more processes while a decision is open,
judged under the load it ran with.

The replication adapts: after the planned generations (3; 5 for models under 1 ms), while some
candidate's interval still straddles the margin (``Verdict.open``), another generation of the
default and the open candidates runs, up to ``max_generations`` and within the time the plan
allows (``--timeout`` bounds everything; without it, extra generations may take as long as the
planned ones did, at least ``Protocol.extra_seconds``). A 0.1 ms model affords 20 processes; a
40 ms one a few more.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from autotune.chip import current_descriptor
from autotune.config import DEFAULT_CONFIG, SessionConfig, load_config_properties
from autotune.ladder import roles_of
from autotune.measure.conditions import Conditions
from autotune.measure.generations import HeadToHead, HeadToHeadProgress, Replication
from autotune.measure.load import Load, LoadMonitor, LoadOver, LoadSource
from autotune.measure.manager import Measurer, Protocol
from autotune.measure.verdict import Entry, Verdict, decide

# session entries that are thread settings (a pick changing one is held when measured under load)
THREAD_ENTRIES = frozenset(
    {
        "session.intra_op.allow_spinning",
        "session.inter_op.allow_spinning",
        "session.force_spinning_stop",
        "session.dynamic_block_base",
    }
)


def changes_threads(
    config: SessionConfig, default: SessionConfig = DEFAULT_CONFIG, *, cores: int
) -> bool:
    """Whether ``config`` differs from ``default`` in a thread setting: intra/inter-op threads,
    spinning, the execution mode, or a provider running fewer threads than ORT's default pool
    (one a physical core: ``cores``) or more than one stream. A provider that uses every core in
    one stream (the OpenVINO EP's latency setup) changes the provider, not the threads: under
    load it is judged with the margin widened by the load, like any other provider."""
    if (config.intra_op_num_threads, config.inter_op_num_threads, config.execution_mode) != (
        default.intra_op_num_threads,
        default.inter_op_num_threads,
        default.execution_mode,
    ):
        return True
    for key in THREAD_ENTRIES:
        if config.session_entries.get(key) != default.session_entries.get(key):
            return True
    return any(
        _fewer_threads(key, value, cores)
        for _, options in config.providers
        for key, value in _flat_options(options)
    )


def _flat_options(options: Mapping[str, str]) -> list[tuple[str, str]]:
    """A provider's options, with an OpenVINO ``load_config``'s properties as options."""
    out: list[tuple[str, str]] = []
    for key, value in options.items():
        props = load_config_properties(value) if key == "load_config" else None
        out += list(props.items()) if props is not None else [(key, value)]
    return out


def _fewer_threads(key: str, value: str, cores: int) -> bool:
    """A provider option that narrows the threads: a thread count below ``cores`` (or one that is
    not a number), a stream count above one."""
    name = key.lower()
    if "thread" not in name and "stream" not in name:
        return False
    try:
        count = int(value)
    except ValueError:
        return True
    if "stream" in name:
        return count > 1
    return 0 < count < cores


@dataclass(frozen=True)
class Plan:
    """How one head-to-head is run and judged."""

    min_gain: float
    rounds: int  # kept rounds wanted over the planned generations
    generations: int  # planned generations (fresh processes per configuration), at least
    timeout: float  # for one process's build and one block
    deadline: float | None = None  # time.monotonic(): nothing runs past it (--timeout)
    max_generations: int = Protocol.max_generations
    extra_seconds: float = Protocol.extra_seconds


@dataclass
class HeadToHeadResult:
    verdict: Verdict
    measured: HeadToHead
    load: Load  # what other programs used over the whole head-to-head
    wall_s: float
    samples: list[Load] = field(default_factory=list)
    plan: Plan | None = None  # how it was run and judged


class _Judge:
    """Decides after each generation, from what was measured so far and the load meanwhile."""

    def __init__(
        self,
        manager: Measurer,
        contenders: list[SessionConfig],
        plan: Plan,
        monitor: LoadSource,
    ) -> None:
        self.manager, self.plan = manager, plan
        self.load = LoadOver(monitor)  # the head-to-head's load starts now
        self.flags = [changes_threads(c, cores=self.load.start.cores) for c in contenders]

    def __call__(self, measured: HeadToHead) -> Verdict:
        load = self.load.so_far()
        conditions = Conditions.measured(
            load.other_cores,
            load.steal,
            load.cores,
            load.threads,
            self.manager.slowdown([r.reference for r in measured.rounds]),
            load.text(),
        )
        return decide(
            measured.rounds,
            contenders=measured.contenders,
            min_gain=self.plan.min_gain,
            latencies=measured.latencies,
            rounds_dropped=measured.rounds_dropped,
            complete=measured.complete,
            conditions=conditions,
            changes_threads=self.flags,
            min_generations=self.plan.generations,
        )


def run(
    manager: Measurer,
    contenders: list[SessionConfig],
    plan: Plan,
    *,
    monitor: LoadSource | None = None,
    on_round: Callable[[HeadToHeadProgress], None] | None = None,
) -> HeadToHeadResult:
    """Measure ``contenders`` (ORT's default configuration first) and decide."""
    started = time.monotonic()
    judge = _Judge(manager, contenders, plan, monitor or LoadMonitor())
    replication = Replication(
        generations=plan.generations,
        still_open=lambda measured: judge(measured).open,
        max_generations=plan.max_generations,
        extra_seconds=plan.extra_seconds,
        deadline=plan.deadline,
    )
    measured = manager.compare(
        contenders, plan.rounds, plan.timeout, replication, on_round=on_round
    )
    verdict = judge(measured)
    return HeadToHeadResult(
        verdict, measured, judge.load.last, time.monotonic() - started, judge.load.samples, plan
    )


def entry_figures(config: SessionConfig, entry: Entry) -> dict[str, Any]:
    """One contender's figures as a verdict's ``compared`` list stores them (search and adapt
    alike; each adds what only it knows)."""
    return {
        "config_id": config.config_id,
        "config": config.to_json(),
        "label": config.describe(),
        "speedup": entry.speedup,
        "speedup_low": entry.speedup_low,
        "speedup_high": entry.speedup_high,
        "process_speedups": entry.process_speedups,
        "ratio": 1 / entry.speedup if entry.speedup else None,
        "latency_ms_p50": entry.latency_ms_p50,
        "latency_ms_p90": entry.latency_ms_p90,
        "eligible": entry.eligible,
        "why_not": entry.why_not,
        "state": entry.state,
    }


def verdict_columns(
    verdict: Verdict, compared: list[dict[str, Any]], **details: Any
) -> dict[str, Any]:
    """The ``searches`` row's verdict columns: the one place a head-to-head's verdict becomes
    stored fields (``autotune search`` and ``autotune adapt``). ``details`` go into the
    verdict's JSON beside its figures and ``compared``."""
    index = verdict.pick_index
    pick = SessionConfig.from_json(compared[index]["config"]) if index is not None else None
    entry = compared[index] if index is not None else {}
    speedup = verdict.speedup
    return {
        "outcome": verdict.outcome,
        "pick_config_id": pick.config_id if pick else None,
        "pick_config": pick.to_json() if pick else None,
        "pick_label": pick.describe() if pick else None,
        "pick_ratio": 1 / speedup if speedup else None,
        "thread_roles": json.dumps(roles_of(pick, current_descriptor())) if pick else None,
        "speedup": speedup,
        "speedup_low": entry.get("speedup_low"),
        "speedup_high": entry.get("speedup_high"),
        "aa_spread": verdict.aa_spread,
        "pick_latency_ms_p50": entry.get("latency_ms_p50"),
        "default_latency_ms_p50": compared[0]["latency_ms_p50"],
        "verdict": {**details, **verdict.to_dict(), "compared": compared},
    }
