"""Start ``autotune adapt`` in the background (``best_session(adapt="background")``): a leaf,
so that the run-time lookup (``autotune.resolver``) can start it without importing the
measurement that ``autotune.adapt`` runs."""

from __future__ import annotations

import os
import subprocess
import sys

from autotune import defaults

DEFAULT_BUDGET_S = 30.0  # seconds a background adapt may measure
DEFAULT_MIN_GAIN = defaults.MIN_GAIN


def start_background(
    model_path: str | os.PathLike[str],
    *,
    db: str | None = None,
    budget_s: float = DEFAULT_BUDGET_S,
    nice: int = 10,
    min_gain: float = DEFAULT_MIN_GAIN,
) -> subprocess.Popen[bytes] | None:
    """Start ``autotune adapt`` in its own low-priority process and return at once (None if it
    cannot be started). Its output goes nowhere; its verdict goes to the database.

    Not in a frozen app (py2app, PyInstaller, Briefcase): there ``sys.executable`` is the app's
    own launcher, so this would start a second instance of the app, and so would every measuring
    process adapt spawns. Such an app ships results measured elsewhere (``AUTOTUNE_DB``)."""
    if getattr(sys, "frozen", False):
        import logging

        logging.getLogger("autotune").warning(
            "autotune: adapt='background' is skipped in a frozen app (it would relaunch the "
            "app); run `autotune adapt MODEL` where autotune is installed and ship its database"
        )
        return None
    command = [
        sys.executable,
        "-m",
        "autotune.commands.cli",
        "adapt",
        os.fspath(model_path),
        "--budget",
        str(budget_s),
        "--nice",
        str(nice),
        "--min-gain",
        str(min_gain),
    ]
    if db:
        command += ["--db", db]
    try:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return None
