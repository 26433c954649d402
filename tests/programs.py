"""Another program, as a user's browser or build would be: a Python process this test does not
parent (the shell that starts it exits), so psutil counts it as someone else's CPU."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def other_program(code: str) -> Iterator[int]:
    """Run ``code`` in an unparented Python process while the block runs; yields its pid."""
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(code)} >/dev/null 2>&1 & echo $!"
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    pid = int(out.stdout.strip())
    time.sleep(0.3)
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGKILL)
