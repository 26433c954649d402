"""The inputs a pipeline is measured on: per stage, its ``inputs`` file, else synthetic inputs
for what no earlier step produces (the search side: it reads the models with onnx)."""

from __future__ import annotations

from dataclasses import replace

from autotune.errors import ShapeError
from autotune.model import load_feeds, load_model_info, resolve_shapes, synthetic_feeds
from autotune.pipeline.replay import Feeds, fed_inputs
from autotune.pipeline.spec import PipelineSpec


def stage_feeds(spec: PipelineSpec) -> Feeds:
    """Each stage's own inputs. Raises ShapeError (one line, naming the stage) for a symbolic
    dimension not given in its ``shapes`` or an inputs file that does not fit."""
    infos = [load_model_info(s.model) for s in spec.stages]
    fed = fed_inputs(
        spec,
        [[t.name for t in info.inputs] for info in infos],
        [[t.name for t in info.outputs] for info in infos],
    )
    out: Feeds = {}
    for stage, info, produced in zip(spec.stages, infos, fed, strict=True):
        try:
            if stage.inputs is not None:
                out[stage.name], _ = load_feeds(info, stage.inputs)
                continue
            own = replace(info, inputs=tuple(t for t in info.inputs if t.name not in produced))
            given = {k: v for k, v in stage.shapes.items() if k not in produced}
            out[stage.name] = synthetic_feeds(own, resolve_shapes(own, given))
        except ShapeError as exc:
            text = str(exc).replace("--shape", "shapes")
            raise ShapeError(f"pipeline stage {stage.name!r}: {text}") from None
    return out
