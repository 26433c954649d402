"""The cold compile against the load from autotune's compile cache, each in a fresh process.

Core ML cannot run here, so the compiling EP is the OpenVINO plugin (``onnxruntime-ep-openvino``
on the CPU device, its cache directory inside ``load_config``): the same code path
(``python -m autotune.cached_load``, which a search runs for a trial's cached load). Each
round empties the cache, builds once (the cold compile) and once more (from the cache), each
build timed inside its own fresh Python process; medians over the rounds are printed.

    python scripts/bench_compile_cache.py --rounds 5 --layers 8
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from autotune.build import cached_load_ms
from autotune.config import SessionConfig
from tests import models
from tests.test_compile_cache import openvino_config


def build_ms(model: Path, config: SessionConfig, cache: Path) -> float:
    """One build in a fresh process, timed there: a search's own measurement of a cached load."""
    value = cached_load_ms(str(model), config, cache)
    if value is None:
        raise SystemExit("the build in a fresh process failed")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--layers", type=int, default=8)
    args = parser.parse_args()
    config = openvino_config()
    if config is None:
        raise SystemExit("the OpenVINO plugin reports no device here (an Intel CPU is needed)")
    with tempfile.TemporaryDirectory() as tmp:
        model = models.slow(Path(tmp) / "slow.onnx", layers=args.layers)
        cache = Path(tmp) / "cache"
        cold, cached = [], []
        for _ in range(args.rounds):
            shutil.rmtree(cache, ignore_errors=True)
            cold.append(build_ms(model, config, cache))
            cached.append(build_ms(model, config, cache))
    print(f"model: tests.models.slow, {args.layers} layers; {config.describe()}")
    for name, values in (("cold compile", cold), ("from the cache", cached)):
        rounded = sorted(round(v) for v in values)
        print(f"{name:15} median {statistics.median(values):8.1f} ms  {rounded}")


if __name__ == "__main__":
    main()
