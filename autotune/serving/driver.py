"""One generation of a throughput head-to-head, in a fresh process: build every contender's
arrangement (and a second instance of the baseline, the reference), then in each round measure
each of them under the same load, in random order.

    python -m autotune.serving.driver < job.json > result.json

The job: ``model``, ``shapes`` (input name -> dims), ``arrangements`` (their dicts, the
baseline first), ``rounds``, ``window_s``, ``max_windows``, ``arrival`` (closed or poisson),
``qps``, ``seed``. The result: ``rounds`` (per round, per contender, then the reference: a
``Throughput`` dict, or null when it failed) and ``errors`` (per contender: why it could not be
built, or null).
"""

from __future__ import annotations

import json
import random
import sys
from typing import Any


def run_generation(job: dict[str, Any]) -> dict[str, Any]:
    from autotune.measure.throughput import closed_loop, open_loop
    from autotune.model import load_model_info, synthetic_feeds
    from autotune.serving.arrangement import GLOBAL_POOL, Arrangement
    from autotune.serving.pool import ServingPool

    info = load_model_info(job["model"])
    shapes = {k: tuple(v) for k, v in job["shapes"].items()}
    feeds = synthetic_feeds(info, shapes)
    arrangements = [Arrangement.from_dict(a) for a in job["arrangements"]]
    arrangements.append(arrangements[0])  # the reference: a second baseline instance
    pools: list[ServingPool | None] = [None] * len(arrangements)
    errors: list[str | None] = [None] * len(arrangements)
    # once ORT's global pool exists, every session built after it must use it: the global-pool
    # arrangements are built last (sessions built before keep their own pools)
    order = sorted(range(len(arrangements)), key=lambda i: arrangements[i].kind == GLOBAL_POOL)
    for i in order:
        try:
            pools[i] = ServingPool(job["model"], arrangements[i])
        except Exception as exc:  # noqa: BLE001 - reported per contender; others go on
            errors[i] = f"{type(exc).__name__}: {exc}"
    rng = random.Random(job.get("seed", 0))
    rounds: list[list[dict[str, Any] | None]] = []
    try:
        for _ in range(job["rounds"]):
            order = list(range(len(pools)))
            rng.shuffle(order)
            results: list[dict[str, Any] | None] = [None] * len(pools)
            for i in order:
                pool = pools[i]
                if pool is None:
                    continue

                def call(client: int, pool: ServingPool = pool) -> object:
                    return pool.run_as(client, None, feeds)

                n = arrangements[i].concurrency
                window = {"window_s": job["window_s"], "max_windows": job["max_windows"]}
                if job.get("arrival", "closed") == "poisson":
                    out = open_loop(call, n, job["qps"], seed=rng.randrange(2**31), **window)
                else:
                    out = closed_loop(call, n, **window)
                results[i] = out.to_dict()
            rounds.append(results)
    finally:
        for pool in pools:
            if pool is not None:
                pool.close()
    return {"rounds": rounds, "errors": errors}


def main() -> None:
    job = json.loads(sys.stdin.read())
    print(json.dumps(run_generation(job)))


if __name__ == "__main__":
    main()
