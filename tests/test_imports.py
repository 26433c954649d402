"""The run-time path stays light: importing autotune and calling best_session never loads the
search's dependencies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_best_session_does_not_import_optuna_or_onnx(mlp_path: Path) -> None:
    code = (
        "import sys, autotune\n"
        f"s = autotune.best_session({str(mlp_path)!r})\n"
        "c = autotune.best_config(" + repr(str(mlp_path)) + ")\n"
        "heavy = ('optuna', 'onnx', 'scipy', 'sqlalchemy', 'sqlite_utils')\n"
        "heavy = sorted(m for m in heavy if m in sys.modules)\n"
        "print(type(s).__name__, c, heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "InferenceSession None []"
