"""autotune: find, remember and apply the fastest correct ONNX Runtime configuration for a model
on this chip.

    >>> import autotune
    >>> session = autotune.best_session("model.onnx")   # an onnxruntime.InferenceSession

Importing autotune, and ``best_session``/``best_config``, never import optuna: the search lives
in ``autotune.tuning.search`` and is loaded only when ``autotune.search_model`` is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autotune.config import DEFAULT_CONFIG, SessionConfig
from autotune.errors import (
    AutotuneError,
    ConfigError,
    DatabaseError,
    ModelError,
    SearchError,
    SessionBuildError,
    ShapeError,
)
from autotune.version import __version__

if TYPE_CHECKING:
    from autotune.chip import Chip
    from autotune.resolver import BestConfig


def best_session(path: Any, **kwargs: Any) -> Any:
    """An ``onnxruntime.InferenceSession`` from the best stored configuration for this chip, or
    ORT defaults when none is known. See :func:`autotune.resolver.best_session`."""
    from autotune.resolver import best_session as _best_session

    return _best_session(path, **kwargs)


def best_config(path: Any, **kwargs: Any) -> BestConfig | None:
    """The best stored configuration for this model on this chip, or None.
    See :func:`autotune.resolver.best_config`."""
    from autotune.resolver import best_config as _best_config

    return _best_config(path, **kwargs)


def best_pipeline(path: Any, **kwargs: Any) -> Any:
    """The sessions of every stage of a pipeline file (``PipelineSessions``, with
    ``prewarm()``), built with the arrangement tuned for this chip, or ORT's defaults.
    See :func:`autotune.pipeline.runtime.best_pipeline`."""
    from autotune.pipeline.runtime import best_pipeline as _best_pipeline

    return _best_pipeline(path, **kwargs)


def best_serving(path: Any, *, concurrency: int, **kwargs: Any) -> Any:
    """A ``ServingPool`` of the best stored arrangement for ``concurrency`` requests in flight
    (one shared session, N sessions, N sessions on a global pool, or N processes), or one
    shared session with ORT's defaults. See :func:`autotune.serving.runtime.best_serving`."""
    from autotune.serving.runtime import best_serving as _best_serving

    return _best_serving(path, concurrency=concurrency, **kwargs)


def selection_delegate(path: Any, **kwargs: Any) -> Any:
    """A device-selection delegate for ``SessionOptions.set_provider_selection_policy_delegate``
    that picks the tuned device. See :func:`autotune.resolver.selection_delegate`."""
    from autotune.resolver import selection_delegate as _selection_delegate

    return _selection_delegate(path, **kwargs)


def current_chip() -> Chip:
    """This machine's chip identity (CPU model, usable cores, accelerators, ORT build)."""
    from autotune.chip import current_chip as _current_chip

    return _current_chip()


def search_model(path: Any, **options: Any) -> Any:
    """Run a search (imports optuna). Options as :class:`autotune.tuning.search.SearchOptions`."""
    from autotune.tuning.search import SearchOptions, run_search

    return run_search(path, SearchOptions(**options))


__all__ = [
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
