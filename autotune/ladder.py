"""The fallback ladder: which other chips' results this chip may borrow, best first, and how a
borrowed configuration's thread counts are re-derived here. Pure functions over descriptors.

The rungs, in order:

1. ``exact``: the same chip id (model, core count and accelerators): the result as measured;
2. ``cores``: the same model with another core count (an M3 Max of 14 cores borrowing from one
   of 16);
3. ``family_tier``: the same family and tier, another generation (an M4 Max borrowing from an
   M3 Max; a Xeon Platinum of one generation from another);
4. ``generation``: the same family and generation, another tier (an M3 Pro from an M3 Max).

Never across vendors, architectures, operating systems or accelerator sets (the kinds and
vendors of the GPUs and NPUs ORT sees): a choice measured there says nothing about here. A chip
whose brand string the parser does not know only ever matches itself.

Thread counts do not travel as numbers: a stored count is a *role* (ORT's default, one thread,
all performance cores, all cores, or a number N) and is re-derived on the local chip.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from autotune.config import SessionConfig
from autotune.descriptor import ChipDescriptor

RUNGS = ("exact", "cores", "family_tier", "generation")
ROLES = ("default", "one", "performance", "all")
THREAD_FIELDS = ("intra_op_num_threads", "inter_op_num_threads")


def accelerator_set(desc: ChipDescriptor) -> frozenset[str]:
    """The kinds and vendors of a chip's accelerators: ``GPU NVIDIA H200`` -> ``GPU NVIDIA``."""
    return frozenset(" ".join(a.split()[:2]) for a in desc.accelerators)


def refusal(local: ChipDescriptor, other: ChipDescriptor) -> str | None:
    """Why ``other``'s results may never be borrowed by ``local`` (None: they may be)."""
    if local.vendor is None or other.vendor is None:
        return "unknown vendor"
    if local.vendor != other.vendor:
        return f"another vendor ({other.vendor})"
    if local.arch and other.arch and local.arch != other.arch:
        return f"another architecture ({other.arch})"
    if local.os and other.os and local.os != other.os:
        return f"another operating system ({other.os})"
    if accelerator_set(local) != accelerator_set(other):
        shown = ", ".join(sorted(accelerator_set(other))) or "none"
        return f"another accelerator set ({shown})"
    return None


def rung(
    local_chip: str, local: ChipDescriptor, other_chip: str, other: ChipDescriptor
) -> str | None:
    """The ladder's rung on which ``other_chip`` stands for ``local_chip``, or None."""
    if other_chip == local_chip:
        return "exact"
    if refusal(local, other) is not None:
        return None
    if local.model and local.model == other.model:
        return "cores"
    if local.family is None or local.family != other.family:
        return None
    if local.tier is not None and local.tier == other.tier:
        return "family_tier"
    if local.generation is not None and local.generation == other.generation:
        return "generation"
    return None


def order(
    local_chip: str, local: ChipDescriptor, others: Iterable[tuple[str, ChipDescriptor]]
) -> list[tuple[str, str, ChipDescriptor]]:
    """(chip, rung, descriptor) for every chip that may be borrowed from, best first: by rung,
    then by the nearest performance-core count, then by name (a stable order)."""
    found: dict[str, tuple[str, str, ChipDescriptor]] = {}
    for chip, desc in others:
        r = rung(local_chip, local, chip, desc)
        if r is not None and chip not in found:
            found[chip] = (chip, r, desc)

    def distance(entry: tuple[str, str, ChipDescriptor]) -> tuple[int, int, str]:
        chip, r, desc = entry
        mine = local.performance_cores or local.cores or 0
        theirs = desc.performance_cores or desc.cores or 0
        return RUNGS.index(r), abs(mine - theirs), chip

    return sorted(found.values(), key=distance)


# -- thread roles ----------------------------------------------------------------------------


def thread_role(threads: int, desc: ChipDescriptor) -> str | int:
    """A thread count as measured on ``desc``, as a role that means the same on another chip."""
    if threads == 0:
        return "default"
    if threads == 1:
        return "one"
    if desc.performance_cores and threads == desc.performance_cores:
        return "performance"
    if desc.cores and threads == desc.cores:
        return "all"
    return threads


def threads_for(role: Any, local: ChipDescriptor) -> int:
    """A role re-derived on ``local``; a plain number is capped at the cores usable here."""
    if role == "default":
        return 0
    if role == "one":
        return 1
    if role == "performance":
        return local.performance_cores or local.cores or 0
    if role == "all":
        return local.cores or 0
    if isinstance(role, int) and not isinstance(role, bool) and role >= 0:
        return min(role, local.cores) if local.cores else role
    raise ValueError(f"unknown thread role {role!r:.40}")


def roles_of(config: SessionConfig, desc: ChipDescriptor) -> dict[str, str | int]:
    """The thread roles of a configuration measured on ``desc``."""
    return {name: thread_role(getattr(config, name), desc) for name in THREAD_FIELDS}


def check_roles(roles: Any) -> dict[str, str | int]:
    """Validate stored roles (they may come from another machine's database or a manifest)."""
    if not isinstance(roles, Mapping) or set(roles) - set(THREAD_FIELDS):
        raise ValueError("thread roles must map intra_op_num_threads/inter_op_num_threads")
    out: dict[str, str | int] = {}
    for name, role in roles.items():
        if role in ROLES or (
            isinstance(role, int) and not isinstance(role, bool) and 0 <= role <= 1024
        ):
            out[name] = role
        else:
            raise ValueError(f"unknown thread role {role!r:.40}")
    return out


def rederive(
    config: SessionConfig, roles: Mapping[str, str | int], local: ChipDescriptor
) -> SessionConfig:
    """``config`` with its thread counts re-derived on ``local`` from their roles."""
    intra = threads_for(roles.get("intra_op_num_threads", "default"), local)
    inter = threads_for(roles.get("inter_op_num_threads", "default"), local)
    return replace(config, intra_op_num_threads=intra, inter_op_num_threads=inter).canonical()
