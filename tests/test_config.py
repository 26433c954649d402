"""SessionConfig: canonical form, identity, and strict parsing of stored JSON."""

from __future__ import annotations

import json

import pytest

from autotune.config import DEFAULT_CONFIG, SessionConfig
from autotune.errors import ConfigError


def test_canonical_drops_defaults_and_settings_that_cannot_matter() -> None:
    a = SessionConfig(
        intra_op_num_threads=1,
        inter_op_num_threads=4,  # sequential: no inter-op pool
        session_entries={"session.intra_op.allow_spinning": "0"},  # one thread: nothing spins
    )
    b = SessionConfig(intra_op_num_threads=1)
    assert a.config_id == b.config_id
    explicit_default = SessionConfig(session_entries={"session.intra_op.allow_spinning": "1"})
    assert explicit_default.config_id == DEFAULT_CONFIG.config_id
    assert explicit_default.is_default()


def test_round_trip() -> None:
    config = SessionConfig(
        graph_optimization_level="ORT_ENABLE_BASIC",
        execution_mode="ORT_PARALLEL",
        intra_op_num_threads=2,
        inter_op_num_threads=2,
        enable_mem_pattern=False,
        session_entries={"session.intra_op.allow_spinning": "0"},
        free_dimension_overrides={"batch": 1},
    )
    again = SessionConfig.from_json(config.to_json())
    assert again == config.canonical()
    assert again.config_id == config.config_id
    assert config.describe() == "CPU BASIC t2 par/i2 no-mempattern spin=0 batch:1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"surprise": 1}', "unknown configuration field(s): surprise"),
        ('{"graph_optimization_level": "ORT_TURBO"}', "graph_optimization_level must be one of"),
        ('{"intra_op_num_threads": "4"}', "whole number from 0 to 1024"),
        ('{"intra_op_num_threads": 100000000}', "whole number from 0 to 1024"),
        ('{"enable_mem_pattern": "yes"}', "must be true or false"),
        (
            '{"session_entries": {"session.collect_node_memory_stats_to_file": "/tmp/x"}}',
            "is not one autotune applies",
        ),
        ('{"session_entries": {"session.intra_op.allow_spinning": "2"}}', "invalid value"),
        (
            '{"session_entries": {"session.dynamic_block_base": "1; DROP TABLE trials"}}',
            "invalid value",
        ),
        ('{"free_dimension_overrides": {"batch": 0}}', "from 1 to 1048576"),
        ('{"providers": "CPUExecutionProvider"}', "list of 1 to 4"),
        ('{"providers": [["../../lib", {}]]}', "not a valid name"),
        ('{"providers": [["X", {"k": 1}]]}', "must be a string"),
        ('{"device_policy": "FASTEST"}', "device_policy must be one of"),
    ],
)
def test_hostile_or_malformed_json_is_refused(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        SessionConfig.from_json(text)
    assert expected in str(info.value)


def test_huge_json_is_refused() -> None:
    with pytest.raises(ConfigError, match="reasonable size"):
        SessionConfig.from_json(
            json.dumps({"providers": [["CPUExecutionProvider", {}]]}) + " " * 70000
        )
