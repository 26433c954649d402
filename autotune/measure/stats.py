"""The few statistics every measurement summary uses, written once (standard library only)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation between order statistics, as numpy's
    default; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def iqr(values: Sequence[float]) -> float:
    """The interquartile range (0 for fewer than two values)."""
    if len(values) < 2:
        return 0.0
    return (percentile(values, 75) or 0.0) - (percentile(values, 25) or 0.0)
