"""Errors autotune raises. Every message names the problem and the fix in one line.

AutotuneError                 base; the CLI prints ``Error: <message>`` and exits 1
├── ModelError                not a file, not ONNX, truncated, unreadable
├── ShapeError                symbolic dimensions not given, bad ``--shape``, bad ``--inputs``
├── ConfigError               a configuration that fails validation (unknown or unsafe option)
├── DatabaseError             not SQLite, schema newer than this autotune, locked by a search
├── SearchError               a search that cannot start or finish (bad arguments, busy model,
│                             busy machine)
├── SessionBuildError         ``strict=True`` and the stored configuration does not build
└── ReportError               nothing stored to report on, or the report cannot be written
"""

from __future__ import annotations


class AutotuneError(Exception):
    """Base class: a problem the user can fix, described in one line."""


class ModelError(AutotuneError):
    """The model file is missing, a directory, not ONNX, or truncated."""


class ShapeError(AutotuneError):
    """Input shapes or input data do not fit the model."""


class ConfigError(AutotuneError):
    """A session configuration is invalid or unsafe to apply."""


class DatabaseError(AutotuneError):
    """The tuning database cannot be used as it is."""


class SearchError(AutotuneError):
    """A search cannot run with the arguments given."""


class SessionBuildError(AutotuneError):
    """A stored configuration failed to build a session (raised only with ``strict=True``)."""


class ReportError(AutotuneError):
    """There is nothing stored to report on, or the report cannot be written."""
