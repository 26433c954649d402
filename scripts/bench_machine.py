"""Which machine a benchmark ran on and how busy it was: stored with every results file, so
a figure rendered into docs/ names its machine and load (scripts/render_docs.py prints it)."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from datetime import UTC, datetime
from typing import Any

import psutil

RESULTS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "results"
)


def others_cores(seconds: float = 2.0) -> float:
    """The CPU, in cores, that the whole machine used over the next seconds while this script
    sleeps (so: other programs' use), from psutil."""
    busy: float = psutil.cpu_percent(interval=seconds)
    return busy / 100 * (psutil.cpu_count() or 1)


def machine() -> dict[str, Any]:
    """The date, chip id, onnxruntime and Python versions, and the OS of this run."""
    import onnxruntime as ort

    from autotune.chip import current_chip

    chip = current_chip()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "chip": chip.chip_id,
        "onnxruntime": chip.ort_version,
        "providers": ort.get_available_providers(),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def describe(others_before: float) -> dict[str, Any]:
    """What a results file says of its run: the machine, the command line, and the cores other
    programs used before it (others_before, from others_cores()) and now, after it."""
    script = os.path.relpath(
        os.path.abspath(sys.argv[0]), os.path.dirname(os.path.dirname(RESULTS))
    )
    root = os.path.dirname(os.path.dirname(RESULTS))
    python = "python"
    if os.path.abspath(sys.prefix).startswith(root + os.sep):
        # a venv of the repository's own (the OpenVINO one): say which
        python = os.path.join(os.path.relpath(sys.prefix, root), "bin", "python")
    return {
        "machine": machine(),
        "command": shlex.join([python, script, *sys.argv[1:]]),
        "others_cores": [round(others_before, 2), round(others_cores(), 2)],
    }
