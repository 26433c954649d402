"""The search's progress line: trials done, the current best, elapsed time."""

from __future__ import annotations

import sys
from typing import TextIO

from autotune.figures import ratio_text
from autotune.tuning.search import Event, EventKind


class ProgressLine:
    """Redraws one line on a terminal; prints one line per trial elsewhere (logs, CI)."""

    def __init__(self, stream: TextIO | None = None, width: int = 24) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.width = width
        self._last_round = -1

    def __call__(self, event: Event) -> None:
        if event.kind == EventKind.PLAN:
            for line in event.message.splitlines():
                self._print(line)
        elif event.kind == EventKind.START:
            note = f" ({event.message})" if event.message else ""
            self._print(f"searching: {event.total} trials to measure{note}")
        elif event.kind == EventKind.TRIAL:
            self._trial(event)
        elif event.kind in (EventKind.FINAL, EventKind.BUSY):
            self._print(f"[{_clock(event.elapsed)}] {event.message}")
        elif event.kind == EventKind.FINAL_ROUND:
            self._round(event)
        elif event.kind == EventKind.DONE and self.tty:
            self.stream.write("\n")

    def _trial(self, e: Event) -> None:
        total = max(e.total, 1)
        filled = int(self.width * min(e.done, total) / total)
        bar = "#" * filled + "." * (self.width - filled)
        # speed-ups, higher is better: trial estimates until the head-to-head confirms one
        best = (
            f"best so far {ratio_text(e.best_ratio, digits=3)} ({e.best_label})"
            if e.best_ratio
            else ""
        )
        busy = f" | busy: others use {e.load_cores:.1f} cores" if e.load_cores else ""
        head = f"[{bar}] {e.done}/{e.total} {_clock(e.elapsed)} {best}{busy}"
        if self.tty:
            self.stream.write("\r\033[K" + head[:200])
            self.stream.flush()
        else:
            self._print(f"{head} | {e.message}")

    def _round(self, e: Event) -> None:
        text = f"[{_clock(e.elapsed)}] head-to-head: {e.done}/{e.total} rounds kept, {e.message}"
        if self.tty:
            self.stream.write("\r\033[K" + text[:200])
            self.stream.flush()
        elif e.done != self._last_round and (e.done in (1, e.total) or e.done % 4 == 0):
            self._last_round = e.done  # a line per 4 kept rounds in logs, not per dropped one
            self._print(text)

    def _print(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m:02d}:{s:02d}"
