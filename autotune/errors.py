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

from typing import Any


def printable(text: Any, limit: int | None = None) -> str:
    """``text`` safe in a message or on a terminal: every control or format character (ESC,
    newline, bidirectional overrides; Unicode categories C*) becomes ``?``; cut to ``limit``
    characters. The one sanitizer for every message built from stored or shared text (a
    database, an export, a manifest): it may carry escape sequences that clear the screen or
    write the clipboard."""
    value = text if isinstance(text, str) else str(text)
    if limit is not None and len(value) > limit:
        value = value[: limit - 1] + "…"
    return "".join(ch if ch.isprintable() else "?" for ch in value)


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
