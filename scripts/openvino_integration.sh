#!/usr/bin/env bash
# OpenVINO integration run: autotune against the real OpenVINO execution provider on this CPU.
#
# The OpenVINO EP ships in its own wheel, onnxruntime-openvino, which installs the same
# `onnxruntime` import package as the plain onnxruntime wheel: the two must never share an
# environment. autotune depends on `onnxruntime`, so here it is installed with --no-deps into a
# venv of its own, and its other dependencies are installed explicitly (read from
# pyproject.toml, so this script follows the dependency list).
#
# Usage, from anywhere:  bash scripts/openvino_integration.sh
#   AUTOTUNE_OV_VENV     the venv to create or reuse (default .venv-openvino, relative to the
#                        repository root)
#   AUTOTUNE_OV_SPEC     the OpenVINO wheel to install (default onnxruntime-openvino==1.24.1,
#                        the version the reference and docs/openvino.md were checked with)
#   AUTOTUNE_OV_PYTHON   the interpreter that creates the venv (default python3)
# Exit status: 0 when every OpenVINO test passed; non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${AUTOTUNE_OV_VENV:-.venv-openvino}"
OV_SPEC="${AUTOTUNE_OV_SPEC:-onnxruntime-openvino==1.24.1}"
BASE_PYTHON="${AUTOTUNE_OV_PYTHON:-python3}"
PY="$VENV/bin/python"

now() { date +%s.%N; }
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

script_start=$(now)
install_s="-"
verify_s="-"
test_s="-"
venv_ours=""
keep_log=""
# shellcheck disable=SC2317  # called by the EXIT trap
summary() {
    local rc=$? verdict=passed
    [ "$rc" -eq 0 ] || verdict="FAILED (exit $rc)"
    echo
    echo "== openvino integration: $verdict"
    echo "install (venv + pip): ${install_s} s"
    echo "verify:               ${verify_s} s"
    echo "tests:                ${test_s} s"
    echo "total:                $(seconds "$script_start" "$(now)") s"
    if [ -n "${LOG:-}" ] && [ -z "$keep_log" ]; then
        rm -f "$LOG"
    fi
    if [ -n "$venv_ours" ] && [ -d "$VENV" ]; then
        echo "venv size:            $(du -sh "$VENV" 2>/dev/null | cut -f1) ($VENV)"
    fi
    exit "$rc"
}
trap summary EXIT

fail() {
    echo "error: $*" >&2
    exit 1
}

# pip's and setuptools' chatter goes to a log, shown only when a step fails
LOG="$(mktemp "${TMPDIR:-/tmp}/openvino_integration.XXXXXX.log")"
quietly() {
    if ! "$@" >>"$LOG" 2>&1; then
        tail -n 60 "$LOG" >&2
        keep_log=1
        fail "failed: $* (log: $LOG)"
    fi
}

# -- never touch the main venv, never reuse a venv that holds plain onnxruntime -----------------
if [ "$(realpath -m "$VENV")" = "$(realpath -m .venv)" ]; then
    fail "AUTOTUNE_OV_VENV points at .venv, the main venv with plain onnxruntime; choose another path"
fi
if [ -e "$VENV" ]; then
    if ! { [ -x "$PY" ] && "$PY" -c pass 2>/dev/null; }; then
        fail "$VENV exists but is not a working venv; delete it or set AUTOTUNE_OV_VENV"
    fi
    if "$PY" -m pip show onnxruntime >/dev/null 2>&1; then
        fail "$VENV has the plain onnxruntime wheel installed; onnxruntime-openvino must never share" \
            "an environment with it. Delete $VENV (or set AUTOTUNE_OV_VENV) and run again."
    fi
    echo "== reusing $VENV"
fi
venv_ours=1

# -- install --------------------------------------------------------------------------------------
t0=$(now)
if [ ! -e "$VENV" ]; then
    echo "== creating $VENV with $("$BASE_PYTHON" --version 2>&1)"
    "$BASE_PYTHON" -m venv "$VENV"
fi
quietly "$PY" -m pip install --upgrade pip
if ! "$PY" -c 'import tomllib' 2>/dev/null; then
    quietly "$PY" -m pip install tomli  # Python 3.10: read pyproject.toml with tomli
fi
# autotune's dependencies except onnxruntime, plus pytest from the test extra
mapfile -t DEPS < <("$PY" - <<'EOF'
import re
try:
    import tomllib
except ModuleNotFoundError:
    import tomli as tomllib
with open("pyproject.toml", "rb") as f:
    project = tomllib.load(f)["project"]

def name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")

for req in project["dependencies"]:
    if not name(req).startswith("onnxruntime"):
        print(req)
for req in project.get("optional-dependencies", {}).get("test", []):
    if name(req) == "pytest":
        print(req)
EOF
)
[ "${#DEPS[@]}" -gt 0 ] || fail "could not read the dependencies from pyproject.toml"
echo "== installing $OV_SPEC ${DEPS[*]}"
quietly "$PY" -m pip install "$OV_SPEC" "${DEPS[@]}"
echo "== installing autotune (--no-deps, editable)"
quietly "$PY" -m pip install --no-deps -e .
install_s=$(seconds "$t0" "$(now)")
"$PY" -m pip list --format=freeze 2>/dev/null | grep -i -E '^(onnxruntime-openvino|onnx|numpy|optuna)==' | tr '\n' ' ' || true
echo

# -- verify the environment -------------------------------------------------------------------------
t0=$(now)
"$PY" -c "import onnxruntime as o; assert 'OpenVINOExecutionProvider' in o.get_available_providers()" \
    || fail "OpenVINOExecutionProvider is not available in $VENV"
if "$PY" -m pip show onnxruntime >/dev/null 2>&1; then
    fail "pip reports the plain onnxruntime wheel in $VENV: something pulled it in next to onnxruntime-openvino"
fi
"$PY" -m pip show onnxruntime-openvino >/dev/null || fail "onnxruntime-openvino is not installed in $VENV"
"$PY" - <<'EOF'
import importlib.metadata as md

import onnxruntime as ort

owners = md.packages_distributions().get("onnxruntime")
assert owners == ["onnxruntime-openvino"], f"the onnxruntime package comes from {owners}"
print(
    f"onnxruntime {ort.__version__} from onnxruntime-openvino "
    f"{md.version('onnxruntime-openvino')}; device {ort.get_device()}; "
    f"providers {ort.get_available_providers()}"
)
EOF
verify_s=$(seconds "$t0" "$(now)")

# -- the tests ------------------------------------------------------------------------------------------
# AUTOTUNE_REQUIRE_OPENVINO makes tests/test_openvino.py fail instead of skipping when the EP is
# missing, so this run can never pass by skipping everything.
t0=$(now)
set +e
AUTOTUNE_REQUIRE_OPENVINO=1 "$PY" -m pytest -m openvino tests/test_openvino.py -q -rs
rc=$?
set -e
test_s=$(seconds "$t0" "$(now)")
exit "$rc"
