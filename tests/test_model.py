"""Model identity and inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autotune import digest
from autotune.model import (
    free_dimensions,
    load_model_info,
    parse_shape_args,
    resolve_shapes,
    shape_signature,
    synthetic_feeds,
)


def test_digest_is_sha256_and_cached(mlp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    expected = hashlib.sha256(mlp_path.read_bytes()).hexdigest()
    digest._memo.clear()
    calls: list[Path] = []
    real = digest._hash_file

    def counting(p: Path) -> str:
        calls.append(p)
        return real(p)

    monkeypatch.setattr(digest, "_hash_file", counting)
    assert digest.model_digest(mlp_path) == expected
    digest._memo.clear()  # a new process: the on-disk cache answers
    assert digest.model_digest(mlp_path) == expected
    assert len(calls) == 1
    # a changed file (size or mtime) is hashed again
    mlp_path.write_bytes(mlp_path.read_bytes() + b"\0")
    digest._memo.clear()
    assert digest.model_digest(mlp_path) != expected
    assert len(calls) == 2


def test_inputs_and_shapes(dynamic_path: Path) -> None:
    info = load_model_info(dynamic_path)
    assert [(i.name, i.shape) for i in info.inputs] == [
        ("tokens", ("batch", "seq")),
        ("x", ("N", None, 8)),
    ]
    shapes = resolve_shapes(info, parse_shape_args(["tokens=2x7", "x=1,3,8"]))
    assert shape_signature(shapes) == "tokens=2x7;x=1x3x8"
    assert free_dimensions(info, shapes) == {"batch": 2, "seq": 7, "N": 1}
    feeds = synthetic_feeds(info, shapes)
    assert feeds["tokens"].dtype == np.int64 and feeds["tokens"].shape == (2, 7)
    assert feeds["x"].dtype == np.float32


def test_leading_batch_defaults_to_one(mlp_path: Path) -> None:
    info = load_model_info(mlp_path)
    assert resolve_shapes(info) == {"x": (1, 16)}
    assert info.op_counts == {"MatMul": 2, "Relu": 1}
