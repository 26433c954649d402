"""The conditions a head-to-head ran under, judged against this machine (standard library only).

Other programs' CPU use matters in proportion to the machine: 0.3 of a core is a third of a
2-core VM's spare capacity and nothing on a 12-core laptop. And it matters only where it meets
the sessions' threads: a session with 4 intra-op threads on 16 cores leaves 12 to the browser.
So the load is classified by what competes with the sessions' threads:

    contending = other programs' cores + steal - (cores - the sessions' threads)

- **quiet**: contending at most ``max(0.25, 5% of the cores)``: measure and decide as usual.
- **light**: up to ``max(0.5, 25% of the cores)``: a pick that changes the provider or other
  settings stands when it clears the margin widened by the load's measured effect (how much
  slower the reference ran than on this machine at its fastest); a pick that changes thread
  settings is held (one thread really is faster while another program holds a core, and then
  slower on the quiet machine the app may run on).
- **heavy**: beyond that: the search waits for quiet before it starts (``--allow-busy`` goes
  on); a pick from such a head-to-head follows the light-load rules, its margin widened by the
  (larger) measured effect.

A slowdown of the reference beyond the slow-phase guard (host contention the guest cannot see,
steal 0) counts as light load even when the guest reports none.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

SLOW_PHASE = 1.25  # a reference this much slower than its floor: load, whatever psutil says


class LoadLevel(StrEnum):
    QUIET = "quiet"
    LIGHT = "light"
    HEAVY = "heavy"


def quiet_limit(cores: int) -> float:
    """Contending cores up to which the machine is quiet."""
    return max(0.25, 0.05 * cores)


def heavy_limit(cores: int) -> float:
    """Contending cores beyond which the load is heavy."""
    return max(0.5, 0.25 * cores)


def contending(other_cores: float, steal: float, cores: int, threads: int | None) -> float:
    """What of other programs' CPU use competes with sessions running ``threads`` threads."""
    spare = max(0, cores - (threads or cores))
    return max(0.0, other_cores + steal - spare)


def classify(other_cores: float, steal: float, cores: int, threads: int | None) -> LoadLevel:
    """quiet, light or heavy (see the module's docstring)."""
    used = contending(other_cores, steal, cores, threads)
    if used <= quiet_limit(cores):
        return LoadLevel.QUIET
    if used <= heavy_limit(cores):
        return LoadLevel.LIGHT
    return LoadLevel.HEAVY


@dataclass(frozen=True)
class Conditions:
    """What the head-to-head ran under: the load class, what other programs used, and how much
    slower the reference ran than its floor (the fastest this machine has measured for it)."""

    level: LoadLevel = LoadLevel.QUIET
    other_cores: float = 0.0
    steal: float = 0.0
    cores: int = 1
    threads: int | None = None
    slowdown: float = 1.0  # the reference's median block during the head-to-head / its floor
    text: str = ""  # what psutil saw, e.g. "other programs use 0.31 cores, busiest: …"

    @classmethod
    def measured(
        cls,
        other_cores: float,
        steal: float,
        cores: int,
        threads: int | None,
        slowdown: float = 1.0,
        text: str = "",
    ) -> Conditions:
        level = classify(other_cores, steal, cores, threads)
        if level == LoadLevel.QUIET and slowdown > SLOW_PHASE:
            level = LoadLevel.LIGHT  # the host is busy where the guest cannot see it
        return cls(level, other_cores, steal, cores, threads, max(1.0, slowdown), text)

    @property
    def loaded(self) -> bool:
        """Others used the CPU: thread-setting picks are held, others need the wider margin."""
        return self.level != LoadLevel.QUIET

    @property
    def widening(self) -> float:
        """The factor on the pick threshold: the load's measured effect (1 when quiet)."""
        return self.slowdown if self.loaded else 1.0

    def describe(self) -> str:
        what = self.text or f"other programs used {self.other_cores:.2f} cores"
        slower = f", the reference ran {self.slowdown:.2f}× its floor" if self.loaded else ""
        return f"{self.level} load ({what} of {self.cores}{slower})"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["level"] = self.level.value
        return out


QUIET = Conditions()
