"""The public surface, pinned (httpx's test_exported_members): everything else may move."""

from __future__ import annotations

import autotune


def test_the_public_api_is_exactly_this() -> None:
    assert sorted(autotune.__all__) == sorted(
        [
            "DEFAULT_CONFIG",
            "AutotuneError",
            "ConfigError",
            "DatabaseError",
            "ModelError",
            "SearchError",
            "SessionBuildError",
            "SessionConfig",
            "ShapeError",
            "__version__",
            "best_config",
            "best_pipeline",
            "best_serving",
            "best_session",
            "current_chip",
            "search_model",
            "selection_delegate",
        ]
    )
    for name in autotune.__all__:
        assert getattr(autotune, name) is not None, name


def test_one_version_source() -> None:
    from importlib.metadata import version

    from autotune.version import __version__

    assert autotune.__version__ == __version__ == version("autotune")
