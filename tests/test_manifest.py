"""The manifest: export, validation on load, and a reader that agrees with the database resolver."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import autotune
from autotune import manifest
from autotune.chip import Chip, current_chip
from autotune.commands.cli import cli
from autotune.config import SessionConfig
from autotune.descriptor import ChipDescriptor, describe
from autotune.errors import ConfigError
from tests.test_ladder import sibling_chip, store_sibling_pick


def _apple(brand: str, p: int, e: int) -> tuple[Chip, ChipDescriptor]:
    values = {"hw.perflevel0.physicalcpu": str(p), "hw.perflevel1.physicalcpu": str(e)}
    desc = describe(
        brand, p + e, ("GPU Apple",), system="Darwin", machine="arm64", sysctl=values.get
    )
    ort = current_chip().ort_version
    return Chip(brand, p + e, ("GPU Apple",), "Darwin 24.1.0", ort, ("CPUExecutionProvider",)), desc


def _export(model: Path, tmp_path: Path) -> Path:
    out = tmp_path / "model.autotune.json"
    result = CliRunner().invoke(
        cli, ["manifest", str(model), "-o", str(out), "--swift", str(tmp_path / "R.swift")]
    )
    assert result.exit_code == 0, result.output
    assert "entries" in result.output
    return out


def test_manifest_reader_agrees_with_the_database_resolver(
    mlp_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import autotune.resolver as resolver

    max16 = _apple("Apple M3 Max", 12, 4)
    pro = _apple("Apple M3 Pro", 6, 6)
    # relabelled results: a verdict measured on an M3 Max (16 cores), another on an M3 Pro
    on_max = SessionConfig(graph_optimization_level="ORT_ENABLE_BASIC", intra_op_num_threads=12)
    on_pro = SessionConfig(graph_optimization_level="ORT_ENABLE_EXTENDED", intra_op_num_threads=3)
    store_sibling_pick(mlp_path, on_max.canonical(), max16[0].chip_id, max16[1])
    store_sibling_pick(mlp_path, on_pro.canonical(), pro[0].chip_id, pro[1])
    loaded = manifest.load(_export(mlp_path, tmp_path))
    assert loaded.dropped == 0 and len(loaded.entries) == 2
    expected = {
        "Apple M3 Max": ("exact", 12),  # 16 cores
        "Apple M3 Max 14": ("cores", 10),  # performance role -> 10 P cores here
        "Apple M4 Max": ("family_tier", 12),
        "Apple M3 Pro 11": ("cores", 3),  # a plain 3 stays 3
        "Apple M3": ("generation", 3),  # the M3 Pro (6P) is nearer than the M3 Max (12P)
    }
    locals_ = {
        "Apple M3 Max": max16,
        "Apple M3 Max 14": _apple("Apple M3 Max", 10, 4),
        "Apple M4 Max": _apple("Apple M4 Max", 12, 4),
        "Apple M3 Pro 11": _apple("Apple M3 Pro", 5, 6),
        "Apple M3": _apple("Apple M3", 4, 4),
    }
    for name, (chip, desc) in locals_.items():
        monkeypatch.setattr(resolver, "current_chip", lambda chip=chip: chip)
        monkeypatch.setattr(resolver, "current_descriptor", lambda desc=desc: desc)
        from_db = autotune.best_config(mlp_path)
        from_manifest = loaded.resolve(chip.chip_id, desc)
        assert from_db is not None and from_manifest is not None, name
        assert from_manifest.config == from_db.config, name
        assert (from_manifest.rung, from_manifest.chip) == (from_db.rung, from_db.key.chip), name
        assert from_manifest.rung == expected[name][0], name
        assert from_manifest.config.intra_op_num_threads == expected[name][1], name
    # an AMD machine borrows nothing from Apple results, in both readers
    epyc_desc = replace(
        max16[1], vendor="AMD", family="AMD EPYC", model="AMD EPYC 9654", os="Linux"
    )
    epyc = Chip("AMD EPYC 9654", 12, (), "Linux", max16[0].ort_version, ())
    monkeypatch.setattr(resolver, "current_chip", lambda: epyc)
    monkeypatch.setattr(resolver, "current_descriptor", lambda: epyc_desc)
    assert autotune.best_config(mlp_path) is None
    assert loaded.resolve(epyc.chip_id, epyc_desc) is None


def test_manifest_round_trip_on_this_machine(mlp_path: Path, tmp_path: Path) -> None:
    chip, desc = sibling_chip()
    store_sibling_pick(mlp_path, SessionConfig(intra_op_num_threads=1).canonical(), chip, desc)
    path = _export(mlp_path, tmp_path)
    data = json.loads(path.read_text())
    assert data["format"] == "autotune-manifest" and data["version"] == 1
    assert data["ladder"] == ["exact", "cores", "family_tier", "generation"]
    assert data["entries"][0]["thread_roles"] == {
        "intra_op_num_threads": "one",
        "inter_op_num_threads": "default",
    }
    loaded = manifest.load(path)
    choice = loaded.resolve()  # this machine
    best = autotune.best_config(mlp_path)
    assert choice is not None and best is not None
    assert choice.config == best.config and choice.borrowed and choice.chip == chip
    # export, then load again: the same entries
    assert manifest.parse(json.dumps(data)).entries == loaded.entries


def test_manifest_is_validated_by_the_allow_list(
    mlp_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    chip, desc = sibling_chip()
    store_sibling_pick(mlp_path, SessionConfig(intra_op_num_threads=1).canonical(), chip, desc)
    data = json.loads(_export(mlp_path, tmp_path).read_text())
    good = data["entries"][0]
    hostile = [
        {**good, "config": {**good["config"], "session_entries": {"session.save_model": "x"}}},
        {**good, "config": {**good["config"], "providers": [["EvilEP", {}]]}},
        {**good, "thread_roles": {"intra_op_num_threads": "all-of-them"}},
        {**good, "descriptor": {**good["descriptor"], "cores": -3}},
        {**good, "extra": 1},
        {**good, "ratio": "fast"},
        "not an entry",
    ]
    with caplog.at_level(logging.WARNING, logger="autotune"):
        loaded = manifest.parse(json.dumps({**data, "entries": [*hostile, good]}))
    assert loaded.dropped == len(hostile) and len(loaded.entries) == 1
    assert sum("refusing manifest entry" in r.getMessage() for r in caplog.records) == len(hostile)
    for bad in (
        "[]",
        "{",
        json.dumps({**data, "version": 2}),
        json.dumps({**data, "format": "other"}),
        json.dumps({**data, "model_digest": "abc"}),
        json.dumps({**data, "surprise": True}),
    ):
        with pytest.raises(ConfigError):
            manifest.parse(bad)
    result = CliRunner().invoke(cli, ["manifest", str(tmp_path / "missing.onnx")])
    assert result.exit_code == 1 and "Error:" in result.output


def test_reading_a_manifest_never_imports_sqlite(mlp_path: Path, tmp_path: Path) -> None:
    chip, desc = sibling_chip()
    store_sibling_pick(mlp_path, SessionConfig(intra_op_num_threads=1).canonical(), chip, desc)
    path = _export(mlp_path, tmp_path)
    code = (
        "import sys; from autotune import manifest; "
        f"c = manifest.load({str(path)!r}).resolve(); assert c is not None; "
        "bad = [m for m in ('sqlite3', '_sqlite3', 'optuna', 'sqlite_utils', 'onnx') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_swift_resolver_reads_the_manifest_fields(mlp_path: Path, tmp_path: Path) -> None:
    from autotune.config import SESSION_ENTRIES
    from autotune.output.snippets import manifest_swift

    chip, desc = sibling_chip()
    store_sibling_pick(mlp_path, SessionConfig(intra_op_num_threads=1).canonical(), chip, desc)
    path = _export(mlp_path, tmp_path)
    swift = (tmp_path / "R.swift").read_text()
    assert swift == manifest_swift(path.name)
    entry = json.loads(path.read_text())["entries"][0]

    def fields(struct: str) -> set[str]:
        """The fields a Swift struct decodes and requires (an optional one may be absent)."""
        body = swift.split(f"struct {struct}: Decodable {{", 1)[1].split("\n}\n", 1)[0]
        return set(re.findall(r"^    (?:let|var) (\w+): [^?\n]*$", body, re.M))

    # every field the Swift structs require is in the manifest (Decodable fails on a missing one)
    assert fields("AutotuneEntry") <= set(entry)
    assert fields("AutotuneConfig") <= set(entry["config"])
    assert fields("AutotuneChip") <= set(entry["descriptor"])
    assert fields("AutotuneManifest") <= set(json.loads(path.read_text()))
    for key in SESSION_ENTRIES:
        assert json.dumps(key) in swift  # the same allow-list
    for needed in (
        'sysctlString("machdep.cpu.brand_string")',
        'sysctlInt("hw.perflevel0.physicalcpu")',
        '"exact", "cores", "family_tier", "generation"',
        "setIntraOpNumThreads",
        "appendExecutionProvider",
        "addConfigEntry",
    ):
        assert needed in swift


def test_ort_model_package_cannot_select_a_variant_by_chip(tmp_path: Path) -> None:
    """Why autotune does not export to ORT's model package (documented in the README): its
    variants are selected by execution provider and device, not by CPU model or core count.
    Two CPU variants with different session options: ORT picks the first, whatever the chip."""
    ort = pytest.importorskip("onnxruntime")
    if not hasattr(ort, "ModelPackage"):
        pytest.skip("this onnxruntime has no ModelPackage")
    package = ort.ModelPackage()
    package.set_metadata(name="m", version="1")
    package.set_component_inline("model", json.dumps({"variants": {}}))
    for name, threads in (("apple-m3-max", "12"), ("apple-m3-pro", "6")):
        package.set_variant(
            "model", name, json.dumps({"ep": "CPUExecutionProvider", "device": "cpu"})
        )
        info = {
            "model_file": "model.onnx",
            "session_options": {"session.intra_op_num_threads": threads},
        }
        package.set_variant_executor_info_inline("model", name, "ort", json.dumps(info))
    with pytest.raises(Exception, match="unknown field"):
        # no field of a variant names a CPU model, a core count or any other chip property
        package.set_variant("model", "x", json.dumps({"ep": "CPUExecutionProvider", "cpu": "M3"}))
    package.commit(str(tmp_path / "pkg"))
    context = ort.ModelPackageContext(str(tmp_path / "pkg"))
    selected = context.select_component("model", ort.ModelPackageOptions(ort.SessionOptions()))
    assert selected.get_selected_variant_name() == "apple-m3-max"


# -- the Swift resolver: package data, parsed, and never applying an entry in part ------------


def _swift_source() -> str:
    from autotune.output.snippets import manifest_swift

    return manifest_swift("model.autotune.json")


def test_swift_resolver_is_package_data_filled_in() -> None:
    from importlib.resources import files

    template = files("autotune.output").joinpath("AutotuneManifest.swift").read_text("utf-8")
    swift = _swift_source()
    markers = re.findall(r"// from autotune: @(\w+)@$", template, re.M)
    assert sorted(markers) == ["ENTRIES", "LEVELS", "MANIFEST", "OPTIONS", "PROVIDERS"]
    assert "// from autotune:" not in swift  # every marker line was replaced
    assert 'let autotuneManifestName = "model.autotune.json"\n' in swift
    # ORTGraphOptimizationLevelLayout, in ORT's Objective-C API since 1.23 (ort_enums.h)
    assert '    "ORT_ENABLE_LAYOUT": .layout,\n' in swift
    pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    assert '"autotune.output" = ["AutotuneManifest.swift"]' in pyproject


@pytest.mark.parametrize("which", ["template", "generated"])
def test_swift_resolver_parses(which: str) -> None:
    """Checked by tree-sitter's Swift grammar (no Swift compiler installs here): a syntax
    error anywhere makes an ERROR or a MISSING node."""
    from importlib.resources import files

    ts_swift = pytest.importorskip("tree_sitter_swift")
    tree_sitter = pytest.importorskip("tree_sitter")
    source = (
        files("autotune.output").joinpath("AutotuneManifest.swift").read_text("utf-8")
        if which == "template"
        else _swift_source()
    ).encode()
    parser = tree_sitter.Parser(tree_sitter.Language(ts_swift.language()))
    tree = parser.parse(source)
    bad: list[str] = []

    def walk(node: Any) -> None:
        if node.type == "ERROR" or node.is_missing:
            start = node.start_point[0] + 1
            bad.append(f"line {start}: {source.splitlines()[start - 1].decode()}")
        for child in node.children:
            walk(child)

    walk(tree.root_node)
    assert bad == []
    # and the parser does report a broken program
    assert parser.parse(
        source.replace(b"func refusal() -> String? {", b"func refusal( {")
    ).root_node.has_error


def _swift_function(swift: str, signature: str) -> str:
    body = swift.split(signature, 1)[1]
    return body.split("\n    }\n", 1)[0]


def test_swift_resolver_skips_what_the_objc_api_cannot_apply() -> None:
    """Every setting ``unsupported(config, "swift")`` lists is a reason ``refusal()`` gives to
    skip the entry (never applied in part), and ``resolution()`` goes on to the next entry."""
    from autotune.output.snippets import unsupported

    swift = _swift_source()
    refusal = _swift_function(swift, "func refusal() -> String? {")
    for setting, swift_check in (
        ({"device_policy": "PREFER_NPU"}, "if let policy = device_policy"),
        ({"execution_mode": "ORT_PARALLEL"}, 'if execution_mode != "ORT_SEQUENTIAL"'),
        ({"free_dimension_overrides": {"batch": 1}}, "if !free_dimension_overrides.isEmpty"),
        ({"enable_mem_pattern": False}, "if !enable_mem_pattern"),
        ({"enable_cpu_mem_arena": False}, "if !enable_cpu_mem_arena"),
        ({"providers": [["CUDAExecutionProvider", {}]]}, "guard let short = autotuneProviders"),
    ):
        assert unsupported(SessionConfig.from_dict(setting), "swift"), setting
        assert swift_check in refusal, setting
    assert 'if let package = plugin?["package"]' in refusal  # a plugin EP
    # LAYOUT is applied (ORT >= 1.23), not skipped
    assert unsupported(SessionConfig(graph_optimization_level="ORT_ENABLE_LAYOUT"), "swift") == []
    resolution = _swift_function(swift, "func resolution(")
    assert (
        "if let reason = found.config.refusal() {\n"
        "                skipped.append((chip: name, shapes: found.shapes, reason: reason))\n"
        "                continue\n"
    ) in resolution
    # sessionOptions() applies everything: nothing is collected and dropped on the way
    options = _swift_function(
        swift, "func sessionOptions(coreMLCacheDirectory: URL? = nil) throws -> ORTSessionOptions {"
    )
    assert "notApplied" not in swift and "return options" in options
    # resolve() logs every entry it skipped
    assert "NSLog(" in _swift_function(swift, "func resolve(")


def test_swift_resolver_bounds_thread_counts_as_the_lookup_does() -> None:
    swift = _swift_source()
    assert "if let cores = chip.cores, cores > 0, threads > 2 * cores { threads = cores }" in swift
    assert "if !(0...1024).contains(intra_op_num_threads)" in swift
