"""Run one of the serving measurements in a fresh Python process: a JSON job on its stdin, its
JSON result on the last line of its stdout."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from autotune.errors import SearchError


def run_child(module: str, job: dict[str, Any], *, timeout_s: float, what: str) -> Any:
    """``python -m module`` with ``job``; raises SearchError naming ``what`` when it fails or
    takes longer than ``timeout_s``."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", module],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SearchError(f"{what} took over {timeout_s:.0f} s and was stopped") from None
    if done.returncode != 0 or not done.stdout.strip():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SearchError(f"{what} failed ({last})")
    return json.loads(done.stdout.strip().splitlines()[-1])
