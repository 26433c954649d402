"""What ``autotune.best_session()`` costs an app over a plain ``onnxruntime.InferenceSession()``.

Measures, each in fresh processes (so the page cache is warm but nothing is memoized):
- cold: a new process that imports autotune, hashes the model (digest cache empty) and builds;
- warm: a new process whose digest cache already knows the file (the normal app start);
- in-process: repeated calls in one process (the digest is memoized);
and model-hash throughput. Both paths build the same configuration (ORT defaults) so the
difference is autotune's own work: stat, digest lookup, chip id, database query, validation.

    python scripts/bench_overhead.py [MODEL.onnx] [--repeats 15] [--out FILE]

Prints the figures and writes them with the machine and its load to --out (default
docs/results/overhead.json), from which scripts/render_docs.py renders docs/benchmarks.md's table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_machine

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
mode, path = sys.argv[1], sys.argv[2]
import onnxruntime as ort
t_import = time.perf_counter()
if mode == "ort":
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
else:
    import autotune
    s = autotune.best_session(path)
t1 = time.perf_counter()
print(json.dumps({"build_ms": (t1 - t_import) * 1000, "total_ms": (t1 - t0) * 1000,
                  "optuna": "optuna" in sys.modules}))
"""


def child(mode: str, model: Path, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(model)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="an .onnx file (default: the mlp example)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path(bench_machine.RESULTS) / "overhead.json")
    args = parser.parse_args()
    load_before = bench_machine.others_cores()
    work = Path(tempfile.mkdtemp(prefix="autotune-bench-"))
    env = {
        **os.environ,
        "AUTOTUNE_DB": str(work / "autotune.db"),
        "AUTOTUNE_CACHE_DIR": str(work / "cache"),
    }
    os.environ.update({k: env[k] for k in ("AUTOTUNE_DB", "AUTOTUNE_CACHE_DIR")})
    if args.model:
        model = Path(args.model)
    else:
        from autotune.examples import write_example

        model = write_example("mlp", work / "mlp.onnx")
    # a stored pick, so best_session goes through lookup + validation + build (on a busy
    # machine the verdict is inconclusive: the lookup then finds none, and results say so)
    subprocess.run(
        [sys.executable, "-m", "autotune.commands.cli", "search", str(model), "--trials", "2",
         "--rounds", "2", "--json", "--allow-busy"],
        env=env, capture_output=True, check=True,
    )  # fmt: skip
    import autotune
    from autotune import digest

    autotune.best_session(model)  # warm the digest cache on disk

    ort_ms, warm_ms, cold_ms = [], [], []
    for _ in range(args.repeats):
        ort_ms.append(child("ort", model, env)["build_ms"])
        warm = child("autotune", model, env)
        assert not warm["optuna"], "best_session imported optuna"
        warm_ms.append(warm["build_ms"])
        cold_env = {**env, "AUTOTUNE_CACHE_DIR": tempfile.mkdtemp(dir=work)}
        cold_ms.append(child("autotune", model, cold_env)["build_ms"])

    import onnxruntime as ort

    # the same configuration built directly: the difference is autotune's own work
    from autotune.build import session_options

    chosen = autotune.best_config(model)
    so = session_options(chosen.config) if chosen else None
    in_ort, in_at = [], []
    for _ in range(args.repeats * 4):
        t0 = time.perf_counter()
        ort.InferenceSession(str(model), sess_options=so, providers=["CPUExecutionProvider"])
        in_ort.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        autotune.best_session(model)
        in_at.append((time.perf_counter() - t0) * 1000)

    # isolation: what running one trial in its own process costs (spawn, imports, build, exit)
    from autotune.config import DEFAULT_CONFIG
    from autotune.measure.manager import SessionProcess
    from autotune.measure.messages import ProcessSetup
    from autotune.measure.worker import worker_main
    from autotune.model import load_model_info, resolve_shapes, synthetic_feeds

    info = load_model_info(model)
    feeds = synthetic_feeds(info, resolve_shapes(info))
    iso_ms = []
    for _ in range(max(3, args.repeats // 3)):
        t0 = time.perf_counter()
        proc = SessionProcess(
            ProcessSetup(str(model), feeds, DEFAULT_CONFIG.to_json()), worker_main, 120
        )
        proc.close()
        iso_ms.append((time.perf_counter() - t0) * 1000 - proc.built.session_create_ms)

    size = model.stat().st_size
    digest._memo.clear()
    t0 = time.perf_counter()
    digest._hash_file(model)
    hash_s = time.perf_counter() - t0

    med = statistics.median
    results = {
        **bench_machine.describe(load_before),
        "model": model.name,
        "model_mb": round(size / 2**20, 2),
        "repeats": args.repeats,
        "lookup_found_a_verdict": chosen is not None,
        "ort_new_process_ms": med(ort_ms),
        "best_session_new_process_cached_ms": med(warm_ms),
        "best_session_new_process_uncached_ms": med(cold_ms),
        "ort_in_process_ms": med(in_ort),
        "best_session_in_process_ms": med(in_at),
        "hash_mb_per_s": size / 2**20 / hash_s,
        "isolation_ms": med(iso_ms),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"model: {model.name} ({size / 2**20:.1f} MB), {args.repeats} fresh processes each")
    print(f"InferenceSession() in a new process:            {med(ort_ms):7.2f} ms")
    print(f"best_session() new process, digest cached:      {med(warm_ms):7.2f} ms"
          f"  (+{med(warm_ms) - med(ort_ms):.2f} ms)")  # fmt: skip
    print(f"best_session() new process, digest not cached:  {med(cold_ms):7.2f} ms"
          f"  (+{med(cold_ms) - med(ort_ms):.2f} ms)")  # fmt: skip
    print(f"in one process, same configuration: InferenceSession {med(in_ort):.2f} ms, "
          f"best_session {med(in_at):.2f} ms"
          f"  (+{med(in_at) - med(in_ort):.2f} ms)")  # fmt: skip
    print(f"model hashing: {size / 2**20 / hash_s:.0f} MB/s")
    print(f"isolation per trial (spawn, import onnxruntime, exit; session build excluded): "
          f"{med(iso_ms):.0f} ms")  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
