"""The fallback ladder: its order, its refusals, thread roles, and the resolver borrowing."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import autotune
from autotune import ladder
from autotune.config import SessionConfig
from autotune.descriptor import ChipDescriptor, describe, parse_brand
from tests.rows import store_finished_search


def _apple(brand: str, p: int, e: int, acc: tuple[str, ...] = ("GPU Apple",)) -> ChipDescriptor:
    values = {"hw.perflevel0.physicalcpu": str(p), "hw.perflevel1.physicalcpu": str(e)}
    return describe(brand, p + e, acc, system="Darwin", machine="arm64", sysctl=values.get)


def _id(brand: str, d: ChipDescriptor) -> str:
    return f"{brand} ({d.cores} cores)" + "".join(f" + {a}" for a in d.accelerators)


M3_MAX_14 = _apple("Apple M3 Max", 10, 4)
M3_MAX_16 = _apple("Apple M3 Max", 12, 4)
M3_PRO = _apple("Apple M3 Pro", 6, 6)
M4_MAX = _apple("Apple M4 Max", 10, 4)
M4_PRO = _apple("Apple M4 Pro", 10, 4)
M2_MAX = _apple("Apple M2 Max", 8, 4)


def test_ladder_order_exact_then_cores_then_family_tier_then_generation() -> None:
    local_id = _id("Apple M3 Max", M3_MAX_14)
    others = [
        (_id("Apple M3 Pro", M3_PRO), M3_PRO),
        (_id("Apple M2 Max", M2_MAX), M2_MAX),
        (_id("Apple M4 Max", M4_MAX), M4_MAX),
        (_id("Apple M3 Max", M3_MAX_16), M3_MAX_16),
        (local_id, M3_MAX_14),
        (_id("Apple M4 Pro", M4_PRO), M4_PRO),  # another generation and another tier: no rung
    ]
    got = [(chip, r) for chip, r, _ in ladder.order(local_id, M3_MAX_14, others)]
    assert got == [
        (local_id, "exact"),
        ("Apple M3 Max (16 cores) + GPU Apple", "cores"),
        # same family and tier: the nearer performance-core count first (M4 Max 10P, M2 Max 8P)
        ("Apple M4 Max (14 cores) + GPU Apple", "family_tier"),
        ("Apple M2 Max (12 cores) + GPU Apple", "family_tier"),
        ("Apple M3 Pro (12 cores) + GPU Apple", "generation"),
    ]


def test_ladder_refuses_other_vendor_arch_os_accelerators_and_unknown_chips() -> None:
    local_id = _id("Apple M3 Max", M3_MAX_14)
    epyc = replace(parse_brand("AMD EPYC 9654 96-Core Processor"), cores=96, os="Darwin")
    no_gpu = _apple("Apple M3 Max", 12, 4, acc=())
    with_npu = _apple("Apple M3 Max", 12, 4, acc=("GPU Apple", "NPU Apple"))
    linux = replace(M3_MAX_16, os="Linux")
    x86 = replace(M3_MAX_16, arch="x86_64")  # Rosetta: another architecture, never borrowed
    unknown = parse_brand("Some Future Chip")
    assert ladder.refusal(M3_MAX_14, epyc) == "another vendor (AMD)"
    assert ladder.refusal(M3_MAX_14, x86) == "another architecture (x86_64)"
    assert ladder.refusal(M3_MAX_14, linux) == "another operating system (Linux)"
    assert ladder.refusal(M3_MAX_14, no_gpu) == "another accelerator set (none)"
    assert ladder.refusal(M3_MAX_14, with_npu) is not None
    assert ladder.refusal(unknown, unknown) == "unknown vendor"
    others = [(f"c{i}", d) for i, d in enumerate([epyc, no_gpu, with_npu, linux, x86, unknown])]
    assert ladder.order(local_id, M3_MAX_14, others) == []
    # an unknown chip still matches itself exactly
    assert ladder.rung("Future (4 cores)", unknown, "Future (4 cores)", unknown) == "exact"
    # Intel: a Sapphire Rapids Platinum borrows from another Platinum, never from a Core i7
    spr = replace(parse_brand("Intel(R) Xeon(R) Platinum 8480+"), cores=56)
    emr = replace(parse_brand("Intel(R) Xeon(R) Platinum 8592+"), cores=64)
    i7 = replace(parse_brand("13th Gen Intel(R) Core(TM) i7-13700H"), cores=14)
    assert ladder.rung("spr", spr, "emr", emr) == "family_tier"
    assert ladder.rung("spr", spr, "i7", i7) is None


def test_thread_roles_are_re_derived_on_the_local_chip() -> None:
    assert ladder.thread_role(0, M3_MAX_16) == "default"
    assert ladder.thread_role(1, M3_MAX_16) == "one"
    assert ladder.thread_role(12, M3_MAX_16) == "performance"
    assert ladder.thread_role(16, M3_MAX_16) == "all"
    assert ladder.thread_role(4, M3_MAX_16) == 4
    measured = SessionConfig(
        intra_op_num_threads=12, execution_mode="ORT_PARALLEL", inter_op_num_threads=16
    ).canonical()
    roles = ladder.roles_of(measured, M3_MAX_16)
    assert roles == {"intra_op_num_threads": "performance", "inter_op_num_threads": "all"}
    here = ladder.rederive(measured, roles, M3_PRO)
    assert (here.intra_op_num_threads, here.inter_op_num_threads) == (6, 12)
    # a plain number is capped at the cores usable here
    assert ladder.threads_for(24, M3_PRO) == 12
    assert ladder.check_roles({"intra_op_num_threads": 3}) == {"intra_op_num_threads": 3}
    bad: Any
    for bad in ({"intra_op_num_threads": "many"}, {"x": 1}, [], {"intra_op_num_threads": True}):
        with pytest.raises(ValueError):
            ladder.check_roles(bad)


def sibling_chip() -> tuple[str, ChipDescriptor]:
    """This machine's chip with more cores: the ladder's "cores" rung."""
    from autotune.chip import current_chip, current_descriptor

    chip, local = current_chip(), current_descriptor()
    if local.vendor is None:
        pytest.skip(f"this chip's brand string is not one the parser knows: {chip.cpu}")
    cores = chip.cores + 6
    text = f"{chip.cpu} ({cores} cores)" + "".join(f" + {a}" for a in chip.accelerators)
    p = (local.performance_cores or chip.cores) + 6
    return text, replace(local, cores=cores, performance_cores=p)


def store_sibling_pick(model: Path, config: SessionConfig, chip: str, desc: ChipDescriptor) -> None:
    common = {
        "chip": chip,
        "chip_descriptor": desc.to_json(),
        "thread_roles": json.dumps(ladder.roles_of(config, desc)),
    }
    store_finished_search(model, config, search_id="sibling-" + chip, common=common)


def test_resolver_borrows_from_a_sibling_chip_and_says_so(
    mlp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from autotune.chip import current_descriptor
    from autotune.commands.cli import cli

    chip, desc = sibling_chip()
    assert desc.performance_cores is not None
    measured = SessionConfig(
        graph_optimization_level="ORT_ENABLE_BASIC", intra_op_num_threads=desc.performance_cores
    ).canonical()
    store_sibling_pick(mlp_path, measured, chip, desc)
    best = autotune.best_config(mlp_path)
    assert best is not None and best.borrowed and best.rung == "cores"
    assert best.key.chip == chip
    local_p = current_descriptor().performance_cores or current_descriptor().cores
    assert best.config.intra_op_num_threads == local_p
    assert best.config.graph_optimization_level == "ORT_ENABLE_BASIC"
    with caplog.at_level(logging.INFO, logger="autotune"):
        session = autotune.best_session(mlp_path)
    borrowed_lines = [r for r in caplog.records if "borrowing" in r.getMessage()]
    assert len(borrowed_lines) == 1 and chip in borrowed_lines[0].getMessage()
    assert str(session.get_session_options().graph_optimization_level).endswith("BASIC")
    out = CliRunner().invoke(cli, ["best", str(mlp_path), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["measured_on"] == chip and data["borrowed"] and data["rung"] == "cores"
    assert data["thread_roles"]["intra_op_num_threads"] in ("performance", "all")


def test_resolver_never_borrows_across_vendors(mlp_path: Path) -> None:
    from autotune.chip import current_descriptor

    local = current_descriptor()
    vendor, brand = ("AMD", "AMD EPYC 9654") if local.vendor != "AMD" else ("Intel", "Intel Xeon")
    other = replace(local, vendor=vendor, model=brand)
    store_sibling_pick(mlp_path, SessionConfig(intra_op_num_threads=1).canonical(), brand, other)
    assert autotune.best_config(mlp_path) is None


def test_thread_choices_include_the_performance_cores() -> None:
    from autotune.providers import SearchContext
    from autotune.tuning.space import one_knob_variants, thread_choices

    assert thread_choices(16, 12) == [0, 1, 2, 4, 8, 12, 16]
    assert thread_choices(16) == [0, 1, 2, 4, 8, 16]
    assert thread_choices(2, 2) == [0, 1, 2]
    hybrid = SearchContext(cores=16, performance_cores=12)
    threads = [p["intra_op_num_threads"] for d, p in one_knob_variants(hybrid, ["ORT_ENABLE_ALL"])]
    assert 12 in threads and 1 in threads
    # no hybrid variant on a plain chip; on Linux (not macOS) the one explicit "all cores"
    # variant, which ORT leaves unpinned
    for system, expected in (("Darwin", 0), ("Linux", 1)):
        plain = SearchContext(cores=2, performance_cores=2, system=system)
        variants = one_knob_variants(plain, ["ORT_ENABLE_ALL"])
        assert [p["intra_op_num_threads"] for _, p in variants].count(2) == expected
