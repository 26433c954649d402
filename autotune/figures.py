"""How a speed-up is written, everywhere (terminal, HTML, messages, verdict reasons): one
function, standard library only. A speed-up is ORT's default latency over this one (higher is
faster); an interval, when given, follows in brackets."""

from __future__ import annotations

import math


def speedup_text(
    value: float | None,
    low: float | None = None,
    high: float | None = None,
    *,
    digits: int = 3,
    sep: str = "–",
) -> str:
    """``1.234×``, ``1.234× [1.100–1.300]``; ``-`` for no figure."""
    if value is None or not math.isfinite(value) or value <= 0:
        return "-"
    text = f"{value:.{digits}f}×"
    if low is not None and high is not None and not (low == high == value):
        text += f" [{low:.{digits}f}{sep}{high:.{digits}f}]"
    return text


def ratio_text(ratio: float | None, *, digits: int = 2) -> str:
    """A latency ratio (this / ORT's default; lower is faster) written as its speed-up."""
    return "-" if not ratio or ratio <= 0 else speedup_text(1 / ratio, digits=digits)
