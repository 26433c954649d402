"""The chip descriptor: brand strings of real chips, OS core splits from real file trees."""

from __future__ import annotations

import ctypes
import functools
import json
import platform
import sqlite3
import subprocess
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from autotune.descriptor import (
    SYSCTLBYNAME,
    ChipDescriptor,
    canonical_chip_id,
    core_split,
    describe,
    from_chip_id,
    parse_brand,
    parse_cpu_list,
    read_sysctl,
    split_chip_id,
    stored_descriptor,
)

# (brand string exactly as sysctl machdep.cpu.brand_string, /proc/cpuinfo or Windows report it,
#  vendor, family, generation, tier)
BRANDS = [
    ("Apple M1", "Apple", "Apple M", "M1", "base"),
    ("Apple M1 Pro", "Apple", "Apple M", "M1", "Pro"),
    ("Apple M1 Max", "Apple", "Apple M", "M1", "Max"),
    ("Apple M1 Ultra", "Apple", "Apple M", "M1", "Ultra"),
    ("Apple M2", "Apple", "Apple M", "M2", "base"),
    ("Apple M2 Pro", "Apple", "Apple M", "M2", "Pro"),
    ("Apple M2 Max", "Apple", "Apple M", "M2", "Max"),
    ("Apple M2 Ultra", "Apple", "Apple M", "M2", "Ultra"),
    ("Apple M3", "Apple", "Apple M", "M3", "base"),
    ("Apple M3 Pro", "Apple", "Apple M", "M3", "Pro"),
    ("Apple M3 Max", "Apple", "Apple M", "M3", "Max"),
    ("Apple M3 Ultra", "Apple", "Apple M", "M3", "Ultra"),
    ("Apple M4", "Apple", "Apple M", "M4", "base"),
    ("Apple M4 Pro", "Apple", "Apple M", "M4", "Pro"),
    ("Apple M4 Max", "Apple", "Apple M", "M4", "Max"),
    ("12th Gen Intel(R) Core(TM) i9-12900K", "Intel", "Intel Core", "Alder Lake", "i9"),
    ("12th Gen Intel(R) Core(TM) i7-1260P", "Intel", "Intel Core", "Alder Lake", "i7"),
    ("13th Gen Intel(R) Core(TM) i7-13700H", "Intel", "Intel Core", "Raptor Lake", "i7"),
    ("14th Gen Intel(R) Core(TM) i9-14900K", "Intel", "Intel Core", "Raptor Lake", "i9"),
    ("Intel(R) Core(TM) Ultra 7 155H", "Intel", "Intel Core Ultra", "Meteor Lake", "7"),
    ("Intel(R) Core(TM) Ultra 7 258V", "Intel", "Intel Core Ultra", "Lunar Lake", "7"),
    ("Intel(R) Core(TM) Ultra 9 285K", "Intel", "Intel Core Ultra", "Arrow Lake", "9"),
    ("Intel(R) Xeon(R) Platinum 8480+", "Intel", "Intel Xeon", "Sapphire Rapids", "Platinum"),
    ("Intel(R) Xeon(R) Platinum 8592+", "Intel", "Intel Xeon", "Emerald Rapids", "Platinum"),
    ("Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", "Intel", "Intel Xeon", "Ice Lake", "Gold"),
    ("Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz", "Intel", "Intel Xeon", "Cascade Lake",
     "Platinum"),
    ("Intel(R) Xeon(R) 6980P", "Intel", "Intel Xeon", "Granite Rapids", "6"),
    ("Intel(R) Xeon(R) Processor", "Intel", "Intel Xeon", None, None),
    ("AMD Ryzen 9 7950X 16-Core Processor", "AMD", "AMD Ryzen", "Zen 4", "9"),
    ("AMD Ryzen 7 5800X3D 8-Core Processor", "AMD", "AMD Ryzen", "Zen 3", "7"),
    ("AMD Ryzen 9 9950X 16-Core Processor", "AMD", "AMD Ryzen", "Zen 5", "9"),
    ("AMD Ryzen 7 7840U w/ Radeon 780M Graphics", "AMD", "AMD Ryzen", "Zen 4", "7"),
    ("AMD Ryzen 5 7530U with Radeon Graphics", "AMD", "AMD Ryzen", "Zen 3", "5"),
    ("AMD Ryzen AI 9 HX 370 w/ Radeon 890M", "AMD", "AMD Ryzen AI", "Zen 5", "9"),
    ("AMD EPYC 7763 64-Core Processor", "AMD", "AMD EPYC", "Milan", "7"),
    ("AMD EPYC 7742 64-Core Processor", "AMD", "AMD EPYC", "Rome", "7"),
    ("AMD EPYC 9654 96-Core Processor", "AMD", "AMD EPYC", "Genoa", "9"),
    ("AMD EPYC 9R14", "AMD", "AMD EPYC", "Genoa", "9"),
    ("AMD EPYC 9755 128-Core Processor", "AMD", "AMD EPYC", "Turin", "9"),
    ("AMD EPYC", "AMD", "AMD EPYC", None, None),
    ("Snapdragon(R) X Elite - X1E80100 - Qualcomm(R) Oryon(TM) CPU", "Qualcomm", "Snapdragon X",
     "X1", "Elite"),
    ("Snapdragon(R) X Plus - X1P64100 - Qualcomm(R) Oryon(TM) CPU", "Qualcomm", "Snapdragon X",
     "X1", "Plus"),
    ("Snapdragon (TM) 8cx Gen 3 @ 3.0 GHz", "Qualcomm", "Snapdragon 8cx", "Gen 3", "8cx"),
    ("Qualcomm Technologies, Inc SM8650", "Qualcomm", "Snapdragon 8", "8 Gen 3", "8"),
]  # fmt: skip


@pytest.mark.parametrize(("brand", "vendor", "family", "generation", "tier"), BRANDS)
def test_brand_strings_of_real_chips(
    brand: str, vendor: str, family: str, generation: str | None, tier: str | None
) -> None:
    d = parse_brand(brand)
    assert (d.vendor, d.family, d.generation, d.tier) == (vendor, family, generation, tier)
    assert d.arch == ("x86_64" if vendor in ("Intel", "AMD") else "arm64")
    assert d.model and "(R)" not in d.model and "@" not in d.model


def test_unknown_brand_has_no_vendor() -> None:
    d = parse_brand("Some Future Chip 9000")
    assert d.vendor is None and d.family is None and d.model == "Some Future Chip 9000"


def test_chip_id_round_trip_and_migration_view() -> None:
    assert split_chip_id("Apple M3 Max (16 cores) + GPU Apple M3 Max") == (
        "Apple M3 Max",
        16,
        ("GPU Apple M3 Max",),
    )
    d = from_chip_id("AMD EPYC 9654 96-Core Processor (96 cores)", "Linux 6.8 (x86_64)")
    assert (d.generation, d.cores, d.os, d.arch) == ("Genoa", 96, "Linux", "x86_64")
    assert (d.performance_cores, d.efficiency_cores) == (96, 0)  # EPYC has no E cores
    apple = from_chip_id("Apple M3 Max (16 cores)", "Darwin 24.1.0 (arm64)")
    assert apple.performance_cores is None  # the split is not in the id: unknown, not guessed
    assert split_chip_id("odd") == ("odd", None, ())


def test_descriptor_json_round_trip_and_refusals() -> None:
    d = from_chip_id("Apple M3 Max (16 cores) + GPU Apple", "Darwin 24 (arm64)")
    assert ChipDescriptor.from_json(d.to_json()) == d
    bad: Any
    for bad in (
        {"vendor": "Apple", "evil": 1},
        {"cores": -1},
        {"cores": True},
        {"model": "x" * 500},
        {"model": "a\nb"},
        {"accelerators": "GPU"},
        [],
    ):
        with pytest.raises(ValueError):
            ChipDescriptor.from_dict(bad)
    with pytest.raises(ValueError):
        ChipDescriptor.from_json("{")


def test_cpu_list_format() -> None:
    assert parse_cpu_list("0-3,8,10-11\n") == {0, 1, 2, 3, 8, 10, 11}
    with pytest.raises(ValueError):
        parse_cpu_list("0-x")


def _cpu(root: Path, n: int, *, siblings: str | None = None, max_freq: int | None = None) -> None:
    cpu = root / "devices/system/cpu" / f"cpu{n}"
    (cpu / "topology").mkdir(parents=True)
    (cpu / "topology/core_cpus_list").write_text((siblings or str(n)) + "\n")
    if max_freq is not None:
        (cpu / "cpufreq").mkdir()
        (cpu / "cpufreq/cpuinfo_max_freq").write_text(f"{max_freq}\n")


def test_intel_hybrid_on_linux(tmp_path: Path) -> None:
    # i7-1260P: 4 P cores with hyper-threading (cpus 0-7) and 8 E cores (cpus 8-15)
    for n in range(8):
        _cpu(tmp_path, n, siblings=f"{n - n % 2}-{n - n % 2 + 1}")
    for n in range(8, 16):
        _cpu(tmp_path, n)
    (tmp_path / "devices/cpu_core").mkdir(parents=True)
    (tmp_path / "devices/cpu_core/cpus").write_text("0-7\n")
    (tmp_path / "devices/cpu_atom").mkdir()
    (tmp_path / "devices/cpu_atom/cpus").write_text("8-15\n")
    assert core_split("Linux", set(range(16)), sys_root=tmp_path) == (4, 8)
    # an affinity mask limits what counts
    assert core_split("Linux", {0, 1, 8}, sys_root=tmp_path) == (1, 1)


def test_arm_big_little_from_cpufreq(tmp_path: Path) -> None:
    # a phone SoC: 1 prime + 3 big + 4 little cores; the slowest cluster is the efficiency one
    freqs = [2000000] * 4 + [2800000] * 3 + [3300000]
    for n, f in enumerate(freqs):
        _cpu(tmp_path, n, max_freq=f)
    assert core_split("Linux", set(range(8)), sys_root=tmp_path) == (4, 4)


def test_homogeneous_linux_and_macos_perflevels(tmp_path: Path) -> None:
    for n in range(4):
        _cpu(tmp_path, n, siblings=f"{n - n % 2}-{n - n % 2 + 1}", max_freq=3000000)
    assert core_split("Linux", set(range(4)), sys_root=tmp_path) == (2, 0)
    values = {"hw.perflevel0.physicalcpu": "12", "hw.perflevel1.physicalcpu": "4"}
    assert core_split("Darwin", set(), sysctl=values.get) == (12, 4)
    assert core_split("Darwin", set(), sysctl=lambda name: None) == (None, None)
    d = describe(
        "Apple M3 Max", 16, ("GPU Apple",), system="Darwin", machine="arm64", sysctl=values.get
    )
    assert (d.generation, d.tier, d.performance_cores, d.efficiency_cores) == ("M3", "Max", 12, 4)
    assert d.label == "Apple M3 Max, 12P+4E"


def test_this_machine_has_a_descriptor() -> None:
    from autotune.chip import current_chip, current_descriptor

    d = current_descriptor()
    assert d.cores == current_chip().cores and d.os
    assert d.performance_cores is None or 1 <= d.performance_cores <= d.cores


def test_migration_describes_existing_rows(tmp_path: Path) -> None:
    import sqlite_utils

    from autotune.config import SessionConfig
    from autotune.store.database import open_writable
    from autotune.store.schema import migrations

    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    migrations.apply(db, stop_before="m005_chip_descriptor")
    config = SessionConfig(intra_op_num_threads=16).canonical()
    db["trials"].insert(  # type: ignore[union-attr]
        {
            "trial_uid": "t1",
            "model_digest": "d",
            "chip": "AMD EPYC 9654 96-Core Processor (16 cores)",
            "ort_version": "1.32.0",
            "shapes": "x=1",
            "config_id": config.config_id,
            "config": config.to_json(),
            "os": "Linux 6.8 (x86_64)",
        }
    )
    db.conn.close()
    open_writable(path).conn.close()
    conn = sqlite3.connect(path)
    text, roles = conn.execute("SELECT chip_descriptor, thread_roles FROM trials").fetchone()
    conn.close()
    d = ChipDescriptor.from_json(text)
    assert (d.family, d.generation, d.cores, d.os) == ("AMD EPYC", "Genoa", 16, "Linux")
    assert json.loads(roles) == {
        "intra_op_num_threads": "performance",
        "inter_op_num_threads": "default",
    }


# -- macOS: sysctls through sysctlbyname, the chip id from the hardware -----------------------

M3_MAX = "Apple M3 Max (16 cores) + GPU Apple + NPU Apple"


class FakeDarwinLibc:
    """Stands in for macOS's libc, which Linux cannot load: ``sysctlbyname`` as a C function
    with the kernel's calling convention (a NULL buffer asks for the size; -1 for an unknown
    name), called through ctypes as the real one is. Strings are NUL-terminated, integers int32
    little-endian, as an Apple Silicon kernel returns them."""

    def __init__(self, values: Mapping[str, str | int]) -> None:
        self.values = values
        self.sysctlbyname = SYSCTLBYNAME(self._sysctlbyname)  # kept alive with the fake

    def _sysctlbyname(self, name: bytes, old: Any, size: Any, new: Any, new_size: int) -> int:
        value = self.values.get(name.decode())
        if value is None:
            return -1
        data = (
            value.to_bytes(4, "little", signed=True)
            if isinstance(value, int)
            else (value.encode() + b"\0")
        )
        if old is not None:
            if size.contents.value < len(data):
                return -1
            ctypes.memmove(old, data, len(data))
        size.contents.value = len(data)
        return 0


MAC: dict[str, str | int] = {
    "machdep.cpu.brand_string": "Apple M3 Max",
    "hw.perflevel0.physicalcpu": 12,
    "hw.perflevel1.physicalcpu": 4,
    "sysctl.proc_translated": 0,
}


def test_sysctls_are_read_through_sysctlbyname() -> None:
    libc = FakeDarwinLibc(MAC)
    assert read_sysctl("machdep.cpu.brand_string", libc=libc) == "Apple M3 Max"
    assert read_sysctl("hw.perflevel0.physicalcpu", libc=libc) == "12"
    assert read_sysctl("sysctl.proc_translated", libc=libc) == "0"
    assert read_sysctl("hw.nosuchthing", libc=libc) is None
    # the real libc here (glibc) has no sysctlbyname: None, not an error
    assert read_sysctl("machdep.cpu.brand_string") is None


def _mac_chip(
    monkeypatch: pytest.MonkeyPatch, values: Mapping[str, str | int], machine: str, ort_sees: Any
) -> Any:
    """current_chip() as a Mac computes it: platform.system()/machine() and the sysctls are
    injected (this is Linux), and ``ort_sees`` is what this onnxruntime's get_ep_devices gives."""
    import autotune.chip as chip_module

    def no_process(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a subprocess was started: {args}")

    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    monkeypatch.setattr(platform, "machine", lambda: machine)
    monkeypatch.setattr(subprocess, "Popen", no_process)
    monkeypatch.setattr(
        chip_module, "read_sysctl", functools.partial(read_sysctl, libc=FakeDarwinLibc(values))
    )
    monkeypatch.setattr(chip_module, "_accelerators", lambda: ort_sees)
    monkeypatch.setattr(chip_module, "usable_cores", lambda: 16)
    return chip_module.current_chip.__wrapped__()


def test_apple_silicon_chip_id_does_not_change_with_the_ort_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    older = _mac_chip(monkeypatch, MAC, "arm64", ())  # ORT < 1.32 lists no GPU or NPU device
    newer = _mac_chip(monkeypatch, MAC, "arm64", ("GPU Apple", "NPU Apple"))  # ORT 1.32
    assert older.chip_id == newer.chip_id == M3_MAX
    assert not older.translated


def test_rosetta_has_a_chip_id_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    rosetta = _mac_chip(monkeypatch, {**MAC, "sysctl.proc_translated": 1}, "x86_64", ())
    assert rosetta.chip_id == (
        "Apple M3 Max (16 cores, x86_64 under Rosetta) + GPU Apple + NPU Apple"
    )
    assert split_chip_id(rosetta.chip_id) == ("Apple M3 Max", 16, ("GPU Apple", "NPU Apple"))
    d = from_chip_id(rosetta.chip_id, "Darwin 24.1.0 (x86_64)")
    assert (d.arch, d.generation, d.tier) == ("x86_64", "M3", "Max")
    # no sysctl answer at all: an x86_64 Python on an Apple chip is taken as translated
    no_sysctl = {k: v for k, v in MAC.items() if k != "sysctl.proc_translated"}
    assert _mac_chip(monkeypatch, no_sysctl, "x86_64", ()).translated
    assert not _mac_chip(monkeypatch, no_sysctl, "arm64", ()).translated


def test_a_sandboxed_mac_without_sysctl_still_reads_its_brand(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the brand comes from sysctlbyname: no sysctl binary, no PATH, no process (Popen raises)
    monkeypatch.setenv("PATH", "")
    assert _mac_chip(monkeypatch, MAC, "arm64", ()).cpu == "Apple M3 Max"


def test_stored_apple_chip_ids_are_made_canonical() -> None:
    for old, os_text in (
        ("Apple M3 Max (16 cores)", "Darwin 24.1.0 (arm64)"),  # an ORT before 1.32
        ("Apple M3 Max (16 cores) + GPU Apple", "Darwin 24.1.0 (arm64)"),
        (M3_MAX, "Darwin 25.0.0 (arm64)"),  # ORT 1.32: unchanged
    ):
        assert canonical_chip_id(old, os_text) == M3_MAX
    assert canonical_chip_id("Apple M3 Max (16 cores)", "Darwin 24.1.0 (x86_64)") == (
        "Apple M3 Max (16 cores, x86_64 under Rosetta) + GPU Apple + NPU Apple"
    )
    other_os: str | None
    for other, other_os in (
        ("AMD EPYC 9654 96-Core Processor (96 cores)", "Linux 6.8 (x86_64)"),
        ("Intel(R) Core(TM) i9-9880H CPU @ 2.30GHz (16 cores)", "Darwin 23.0 (x86_64)"),
        ("Apple M3 Max (16 cores)", None),  # no os column: not known to be a Mac
    ):
        assert canonical_chip_id(other, other_os) == other


ROSETTA_ID = "Apple M3 Max (16 cores, x86_64 under Rosetta) + GPU Apple + NPU Apple"
OLD_ROWS = {
    "old-ort": ("Apple M3 Max (16 cores)", "Darwin 24.1.0 (arm64)"),
    "rosetta": ("Apple M3 Max (16 cores)", "Darwin 24.1.0 (x86_64)"),
    "ort-1.32": (M3_MAX, "Darwin 25.0.0 (arm64)"),
    "epyc": ("AMD EPYC 9654 96-Core Processor (16 cores)", "Linux 6.8 (x86_64)"),
}


def _database_before_m010(path: Path) -> Path:
    """A database as an autotune before migration m010 left it, with OLD_ROWS' chip ids."""
    import sqlite_utils

    from autotune.store.schema import migrations

    db = sqlite_utils.Database(path)
    migrations.apply(db, stop_before="m010_apple_chip_ids")
    for uid, (chip, os_text) in OLD_ROWS.items():
        desc = from_chip_id(chip, os_text).to_json()
        common = {"model_digest": "d", "chip": chip, "ort_version": "1.22.0", "shapes": "x=1"}
        db["trials"].insert(  # type: ignore[union-attr]
            {**common, "trial_uid": uid, "config_id": "c", "os": os_text, "chip_descriptor": desc}
        )
        db["searches"].insert(  # type: ignore[union-attr]
            {**common, "search_id": uid, "os": os_text, "chip_descriptor": desc, "state": "done"}
        )
    db.conn.close()
    return path


def _assert_canonical(path: Path) -> None:
    conn = sqlite3.connect(path)
    for table, key in (("trials", "trial_uid"), ("searches", "search_id")):
        found = {
            uid: (chip, ChipDescriptor.from_json(text))
            for uid, chip, text in conn.execute(f"SELECT {key}, chip, chip_descriptor FROM {table}")
        }
        assert found["old-ort"][0] == found["ort-1.32"][0] == M3_MAX
        assert found["old-ort"][1].accelerators == ("GPU Apple", "NPU Apple")
        assert found["rosetta"][0] == ROSETTA_ID
        assert found["rosetta"][1].arch == "x86_64"
        assert found["epyc"][0] == OLD_ROWS["epyc"][0]
    conn.close()


def test_migration_makes_apple_chip_ids_canonical(tmp_path: Path) -> None:
    from autotune.store.database import open_writable

    path = _database_before_m010(tmp_path / "old.db")
    open_writable(path).conn.close()
    _assert_canonical(path)


def test_merging_an_older_database_makes_its_apple_chip_ids_canonical(tmp_path: Path) -> None:
    from autotune.store.sharing import merge

    old = _database_before_m010(tmp_path / "old.db")
    merge([old], into=tmp_path / "team.db")
    _assert_canonical(tmp_path / "team.db")
    # merged again (now as the same rows), nothing is added beside them
    (report,) = merge([old], into=tmp_path / "team.db")
    assert (report.trials_new, report.searches_new, report.searches_beside) == (0, 0, 0)


def test_an_unmigrated_read_only_row_is_still_borrowed_by_its_own_chip() -> None:
    from autotune import ladder

    old_id, old_os = OLD_ROWS["old-ort"]
    here = replace(
        from_chip_id(M3_MAX, "Darwin 25.0.0 (arm64)"), performance_cores=12, efficiency_cores=4
    )
    stored = stored_descriptor(old_id, old_os, from_chip_id(old_id, old_os).to_json())
    assert stored.accelerators == ("GPU Apple", "NPU Apple")
    assert ladder.rung(M3_MAX, here, old_id, stored) == "cores"
    # a Rosetta row stays another architecture's, never borrowed by a native process
    rosetta = stored_descriptor(*OLD_ROWS["rosetta"], None)
    assert ladder.rung(M3_MAX, here, OLD_ROWS["rosetta"][0], rosetta) is None
