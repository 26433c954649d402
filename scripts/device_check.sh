#!/usr/bin/env bash
# A real search over CPU and WebGPU (the onnxruntime-ep-webgpu plugin, over Vulkan) on a Linux
# machine with an NVIDIA GPU and no network, sized for one 8-minute run.
#
# 1. Where pip and apt work (the development machine), once, from the repository root:
#        bash scripts/device_check.sh --prepare
#    downloads into .whl/ the wheels the GPU machine lacks (the WebGPU plugin, autotune's own
#    dependencies; for Python $AUTOTUNE_DC_PYTHON_VERSION, default 3.12) and into .gl/ the
#    Vulkan loader (Debian's libvulkan1). Both folders are git-ignored; carry them
#    (the device tool's run: carry [".whl", ".gl"]).
# 2. On the GPU machine, from the repository root:
#        bash scripts/device_check.sh
#    installs the carried wheels into a scratch directory (never into the system's Python),
#    unpacks the Vulkan loader if the machine has none, checks that the WebGPU plugin reports a
#    GPU (else it stops here and says why: exit 2), then runs a real search of two example
#    models (a convnet, mobilenetv2, and the mlp) over CPU and WebGPU and prints each table.
#
# Environment: AUTOTUNE_DC_TRIALS (default 8 per model), AUTOTUNE_DC_TIMEOUT (seconds of
# search per model before the final head-to-head, default 120), AUTOTUNE_DC_OUT (where the tables and the database go,
# default $OUT or a temporary directory), AUTOTUNE_DC_PYTHON (default python3),
# AUTOTUNE_DC_MODELS (default "mobilenetv2 mlp"), AUTOTUNE_DC_REQUIRE_GPU=0 (go on past the GPU
# step with CPU only: to test the rest of this script on a machine without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${AUTOTUNE_DC_PYTHON:-python3}"
PYVER="${AUTOTUNE_DC_PYTHON_VERSION:-3.12}"
WEBGPU_SPEC="${AUTOTUNE_DC_WEBGPU:-onnxruntime-ep-webgpu==0.4.0}"

prepare() {
    mkdir -p .whl .gl  # both in .gitignore: carried to the GPU machine, never committed
    local platforms=()
    for tag in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1 \
        manylinux_2_31 manylinux_2_34; do
        platforms+=(--platform "${tag}_x86_64")
    done
    # the plugin and what autotune needs beyond the GPU machine's image (which has onnxruntime,
    # onnx, numpy, scipy, click): optuna and sqlite-utils with their own dependencies
    "$PY" -m pip download --quiet --only-binary=:all: --python-version "$PYVER" \
        --implementation cp "${platforms[@]}" -d .whl \
        "$WEBGPU_SPEC" "optuna>=4.0" "sqlite-utils>=4.0" "platformdirs>=3"
    # keep only what the image lacks: drop numpy/scipy/click/... it already has
    for have in numpy scipy click PyYAML pyyaml tqdm packaging typing_extensions MarkupSafe \
        markupsafe python_dateutil six pluggy tabulate pip; do
        rm -f .whl/"${have}"-[0-9]*.whl
    done
    (cd .gl && apt-get download libvulkan1 >/dev/null)
    du -sh .whl .gl
    ls .whl .gl
}

if [ "${1:-}" = "--prepare" ]; then
    prepare
    exit 0
fi

start=$(date +%s)
OUTDIR="${AUTOTUNE_DC_OUT:-${OUT:-$(mktemp -d)}}"
mkdir -p "$OUTDIR"
echo "== device check: $(uname -m), $("$PY" --version 2>&1), results in $OUTDIR"

# -- the carried wheels, into a scratch site directory ------------------------------------------
SITE="${AUTOTUNE_DC_SITE:-/tmp/autotune-site}"
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" .whl/*.whl
else
    echo "note: no .whl/ here; using what this Python already has"
fi
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export AUTOTUNE_DB="$OUTDIR/device_check.db" AUTOTUNE_CACHE_DIR="$OUTDIR/cache"

# -- the Vulkan loader (Dawn's backend on Linux) -----------------------------------------------
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
    # into /, as root: only on the GPU machine (it starts bare each time), never elsewhere
    # unless asked (AUTOTUNE_DC_UNPACK_VULKAN=1)
    if compgen -G ".gl/*.deb" >/dev/null && [ "$(id -u)" = 0 ] &&
        { command -v nvidia-smi >/dev/null || [ "${AUTOTUNE_DC_UNPACK_VULKAN:-}" = 1 ]; }; then
        for f in .gl/*.deb; do dpkg -x "$f" /; done
        ldconfig
        echo "unpacked the carried Vulkan loader"
    else
        echo "note: no Vulkan loader (libvulkan.so.1); a carried one (.gl/, --prepare) is" \
            "unpacked only as root on a machine with nvidia-smi (or AUTOTUNE_DC_UNPACK_VULKAN=1)"
    fi
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ]; then
    export VK_DRIVER_FILES="$icd"
fi
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"

# -- the versions, and the GPU step: does the WebGPU plugin report a GPU? -----------------------
"$PY" - <<'EOF'
import importlib.metadata as md
import onnxruntime as ort
print("onnxruntime", ort.__version__, "| onnxruntime-ep-webgpu", md.version("onnxruntime-ep-webgpu"))
EOF
"$PY" -m autotune.commands.cli chip | tee "$OUTDIR/chip.txt"
set +e
"$PY" - <<'EOF'
import sys
from autotune import plugins
entry = next((p for p in plugins.report() if p["package"] == "onnxruntime-ep-webgpu"), None)
if entry is None:
    sys.exit("onnxruntime-ep-webgpu is not installed (carry it in .whl/: --prepare)")
if not entry["devices"]:
    print(f"GPU step: no WebGPU device: {entry['no_device_reason']}", file=sys.stderr)
    sys.exit(2)
print("GPU step: WebGPU devices:", ", ".join(d["label"] for d in entry["devices"]))
EOF
rc=$?
set -e
if [ "$rc" -ne 0 ] && { [ "$rc" -ne 2 ] || [ "${AUTOTUNE_DC_REQUIRE_GPU:-1}" != 0 ]; }; then
    echo "== stopped at the GPU step after $(( $(date +%s) - start )) s (exit $rc)"
    exit "$rc"
fi
[ "$rc" -eq 0 ] || echo "== no GPU: going on with CPU only (AUTOTUNE_DC_REQUIRE_GPU=0)"

# -- a real search of two example models over CPU and WebGPU -----------------------------------
# The default configuration first, then each provider once (WebGPU among the first trials, not
# after the CPU one-knob variants), then the sampler; the timeout bounds each model's search.
TRIALS="${AUTOTUNE_DC_TRIALS:-8}"
TIMEOUT="${AUTOTUNE_DC_TIMEOUT:-120}"
# a file, not stdin: the trial processes are spawned and import the main module again
cat >"$OUTDIR/search.py" <<'EOF'
import sys

from autotune.tuning.progress import ProgressLine
from autotune.output.tables import outcome_text
from autotune.tuning.search import SearchOptions, run_search
from autotune.tuning.study import load_study

if __name__ == "__main__":
    study = load_study(sys.argv[1])
    options = SearchOptions(trial_timeout=120.0, seed_variants=False)
    for key, value in study.options.items():
        setattr(options, key, value)
    print(outcome_text(run_search(study.model, options, progress=ProgressLine())))
EOF
for model in ${AUTOTUNE_DC_MODELS:-mobilenetv2 mlp}; do
    study="$OUTDIR/$model.toml"
    cat >"$study" <<EOF
model = { example = "$model" }
providers = ["CPUExecutionProvider", "WebGpuExecutionProvider"]
objective = "latency"
trials = $TRIALS
timeout = $TIMEOUT
EOF
    echo "== $model: a search of $study"
    PYTHONUNBUFFERED=1 "$PY" "$OUTDIR/search.py" "$study" 2>&1 | tee "$OUTDIR/$model.txt"
done
echo "== device check done in $(( $(date +%s) - start )) s"
