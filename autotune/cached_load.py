"""``python -m autotune.cached_load MODEL CONFIG_JSON DIRECTORY``: build a session from a filled
compile cache in this fresh process and print the build's milliseconds. A search measures a
compiling trial's cached load this way (``autotune.build.cached_load_ms``): an app's next
launch is a fresh process too, and Core ML keeps state in the process that compiled."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from autotune.build import build_session
from autotune.config import SessionConfig


def main(argv: list[str]) -> int:
    """Build, time, print ``{"build_ms": …}``; exit 0."""
    model, config_json, directory = argv
    config = SessionConfig.from_json(config_json)
    t0 = time.perf_counter()
    build_session(model, config, cache_dir=Path(directory))
    print(json.dumps({"build_ms": (time.perf_counter() - t0) * 1000.0}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
