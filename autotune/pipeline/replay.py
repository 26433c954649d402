"""A pipeline's call pattern run end to end in one process: the steps in order, a stage called
``repeat`` times with its ``state`` outputs fed back as the next call's inputs, the stages of an
overlap step at the same time, each on a thread of its own (ORT releases the GIL while it
runs), and an input named like an earlier step's output fed that output. Contention between
stages and their memory are in what is measured because they are in what runs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from autotune.build import build_session, dropped_providers, provider_list, session_options
from autotune.errors import ConfigError
from autotune.pipeline.arrangement import Arrangement
from autotune.pipeline.spec import PipelineSpec

Feeds = dict[str, dict[str, Any]]  # stage name -> input name -> array
_shared_threads: int | None = None  # the size this process's global pool was created with


def use_shared_pool(threads: int) -> None:
    """Create this process's global intra-op thread pool with ``threads`` threads. ORT creates
    it once per process: raises ConfigError when this process already has one of another
    size."""
    import onnxruntime as ort

    global _shared_threads
    if _shared_threads == threads:
        return  # this process's pool already has that size: sessions share it
    try:
        ort.set_global_thread_pool_sizes(threads, 1)
        _shared_threads = threads
    except Exception as exc:  # noqa: BLE001 - ORT raises its own Fail
        raise ConfigError(
            f"this process's shared thread pool already exists ({str(exc).splitlines()[0][:160]}"
            "); call best_pipeline() before anything else sets it"
        ) from None


def shared_pool() -> int | None:
    """The size of the shared pool this module created in this process, or None."""
    return _shared_threads


def build_sessions(
    spec: PipelineSpec, arrangement: Arrangement, *, join_pool: bool = False
) -> list[Any]:
    """One ``InferenceSession`` per stage, in stage order, with the arrangement's threads.
    ``join_pool``: the sessions use the pool this process already has, as it is."""
    import onnxruntime as ort

    if arrangement.shared_threads is None and not join_pool:
        return [
            build_session(s.model, c) for s, c in zip(spec.stages, arrangement.configs, strict=True)
        ]
    if arrangement.shared_threads is not None and not join_pool:
        use_shared_pool(arrangement.shared_threads)
    sessions = []
    for stage, config in zip(spec.stages, arrangement.configs, strict=True):
        so = session_options(config)
        so.use_per_session_threads = False  # the process's pool, not one of its own
        sessions.append(
            ort.InferenceSession(
                str(stage.model), sess_options=so, providers=provider_list(config, None)
            )
        )
    return sessions


class Replay:
    """The stages' sessions and the call pattern. ``feeds``: each stage's own inputs (state
    inputs: their first call's value); an input without one is fed an earlier step's output."""

    def __init__(self, spec: PipelineSpec, sessions: list[Any], feeds: Feeds) -> None:
        self.spec = spec
        self.sessions = sessions
        self.inputs = [[i.name for i in s.get_inputs()] for s in sessions]
        self.outputs = [[o.name for o in s.get_outputs()] for s in sessions]
        self.feeds = feeds
        self.fed = fed_inputs(spec, self.inputs, self.outputs)
        self.state = [
            _state_pairs(spec, i, self.inputs[i], self.outputs[i]) for i in range(len(sessions))
        ]
        for i, stage in enumerate(spec.stages):
            missing = [
                n
                for n in self.inputs[i]
                if n not in self.fed[i] and n not in feeds.get(stage.name, {})
            ]
            if missing:
                raise ConfigError(f"stage {stage.name!r} has no value for input {missing[0]!r}")
        # one thread per stage of the widest step, each always running the same slot: a shared
        # pool could let one of its threads run two "concurrent" stages one after the other
        widest = max(len(g) for g in spec.groups)
        self.lanes = [ThreadPoolExecutor(1, f"autotune-lane{k}") for k in range(widest)]

    def run(self) -> dict[str, list[Any]]:
        """One pipeline run: each stage's outputs of its last call."""
        produced: dict[str, Any] = {}
        last: dict[str, list[Any]] = {}
        for step in self.spec.groups:
            before = dict(produced)  # the stages of one step do not see each other's outputs
            if len(step) == 1:
                results = [self._stage(step[0], before)]
            else:
                lanes = self.lanes[: len(step)]
                running = [
                    lane.submit(self._stage, i, before) for lane, i in zip(lanes, step, strict=True)
                ]
                results = [r.result() for r in running]
            for i, outs in zip(step, results, strict=True):
                produced.update(zip(self.outputs[i], outs, strict=True))
                last[self.spec.stages[i].name] = outs
        return last

    def _stage(self, i: int, produced: dict[str, Any]) -> list[Any]:
        own = self.feeds.get(self.spec.stages[i].name, {})
        feeds = {n: own[n] if n in own else produced[n] for n in self.inputs[i]}
        run = self.sessions[i].run
        outs: list[Any] = []
        for _ in range(self.spec.stages[i].repeat):
            outs = run(None, feeds)
            for k, name in self.state[i]:
                feeds[name] = outs[k]
        return outs

    def dropped(self, arrangement: Arrangement) -> list[str]:
        """Providers ORT did not keep, over every stage."""
        return sorted(
            {
                p
                for s, c in zip(self.sessions, arrangement.configs, strict=True)
                for p in dropped_providers(s, c)
            }
        )

    def close(self) -> None:
        for lane in self.lanes:
            lane.shutdown()


def fed_inputs(
    spec: PipelineSpec, inputs: list[list[str]], outputs: list[list[str]]
) -> list[set[str]]:
    """Per stage: its inputs an earlier step's output of the same name can feed (a value of
    the stage's own, from its inputs file, wins)."""
    out: list[set[str]] = [set() for _ in spec.stages]
    earlier: set[str] = set()
    for step in spec.groups:
        for i in step:
            out[i] = set(inputs[i]) & earlier
        for i in step:
            earlier |= set(outputs[i])
    return out


def _state_pairs(
    spec: PipelineSpec, i: int, inputs: list[str], outputs: list[str]
) -> list[tuple[int, str]]:
    stage = spec.stages[i]
    pairs = []
    for out, inp in stage.state.items():
        if out not in outputs:
            raise ConfigError(
                f"stage {stage.name!r}: state names output {out!r}; its outputs are "
                f"{', '.join(outputs)}"
            )
        if inp not in inputs:
            raise ConfigError(
                f"stage {stage.name!r}: state feeds input {inp!r}; its inputs are "
                f"{', '.join(inputs)}"
            )
        pairs.append((outputs.index(out), inp))
    return pairs
