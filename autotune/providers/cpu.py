"""The CPU execution provider: always available, always the fallback. Its tuning lives in
the session options (see autotune.tuning.space); the EP itself has no provider options worth
searching."""

from __future__ import annotations

from autotune.providers.base import ProviderSpace, SearchContext, TrialLike


def _suggest(trial: TrialLike, ctx: SearchContext) -> dict[str, str]:
    return {}


SPACE = ProviderSpace(
    name="CPUExecutionProvider",
    short="cpu",
    options={},
    suggest=_suggest,
)
