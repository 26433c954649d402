"""How far real reduced-precision computation moves outputs, and what each accuracy tier says.

For each example model: the gate's reference (the fp32 model on the CPU EP at ORT_DISABLE_ALL)
against (1) the model's fp16 twin on the CPU EP (fp16 weights and activations, every op's result
rounded to fp16) and, where the OpenVINO EP is installed (its own venv:
scripts/openvino_integration.sh), (2) OpenVINO on the CPU with INFERENCE_PRECISION_HINT f32, f16
and bf16. Prints the largest difference, the cosine similarity, the worst rank of the reference's
top class, and the verdict of the fp32 and fp16 tiers (autotune.measure.accuracy).

    python scripts/accuracy_tiers.py mlp transformer mobilenetv2
    .venv-openvino/bin/python scripts/accuracy_tiers.py transformer
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.models

from autotune.build import build_session
from autotune.config import CPU, SessionConfig
from autotune.examples import EXAMPLES, write_example
from autotune.measure.accuracy import judge, tier
from autotune.model import load_model_info, resolve_shapes, synthetic_feeds
from tests.models import fp16_twin

OV = "OpenVINOExecutionProvider"


def _candidates(path: Path, feeds: dict[str, Any]) -> dict[str, Callable[[], list[Any]]]:
    half = path.with_name(path.stem + "-fp16.onnx")
    onnx.save(fp16_twin(onnx.load(str(path))), str(half))
    half_feeds = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in feeds.items()}
    runs: dict[str, Callable[[], list[Any]]] = {
        "fp16 twin, CPU EP": partial(_run, half, SessionConfig(), half_feeds)
    }
    if OV in ort.get_available_providers():
        for hint in ("f32", "f16", "bf16"):
            config = json.dumps({"CPU": {"INFERENCE_PRECISION_HINT": hint}})
            options = {"device_type": "CPU", "load_config": config}
            cfg = SessionConfig(providers=((OV, options), (CPU, {})))
            runs[f"OpenVINO CPU {hint}"] = partial(_run, path, cfg, feeds)
    return runs


def _run(path: Path, config: SessionConfig, feeds: dict[str, Any]) -> list[Any]:
    return list(build_session(path, config).run(None, feeds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", choices=sorted(EXAMPLES))
    args = parser.parse_args()
    print(f"onnxruntime {ort.__version__} ({', '.join(ort.get_available_providers())})")
    header = ["model", "candidate", "max |err|", "cosine", "top rank", "fp32", "fp16"]
    print(" | ".join(header))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            path = write_example(name, Path(tmp) / f"{name}.onnx")
            info = load_model_info(path)
            feeds = synthetic_feeds(info, resolve_shapes(info))
            exact = SessionConfig(graph_optimization_level="ORT_DISABLE_ALL")
            reference = build_session(path, exact).run(None, feeds)
            for label, run in _candidates(path, feeds).items():
                outputs = run()
                cosine = judge(reference, outputs, tier("cosine:0.5"))
                rank = judge(reference, outputs, tier("topk:1")).err_to_tol
                verdicts = [judge(reference, outputs, tier(t)) for t in ("fp32", "fp16")]
                cells = [
                    name,
                    label,
                    f"{cosine.max_abs_err:.3g}",
                    f"{1 - cosine.err_to_tol * 0.5:.8f}",
                    f"{rank:.0f}",
                    *(f"{'pass' if v.ok else 'fail'} ({v.err_to_tol:.2f})" for v in verdicts),
                ]
                print(" | ".join(cells))


if __name__ == "__main__":
    main()
