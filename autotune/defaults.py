"""The search's defaults, stated once: ``SearchOptions``, the measurement ``Protocol`` and the
command line's options read them (a leaf module: the command line imports it without loading
the search)."""

TRIALS = 30  # configurations a search measures
TRIAL_TIMEOUT_S = 300.0  # a trial (build + measure) taking longer is killed: "timeout"
ROUNDS = 8  # kept paired rounds per candidate
FINAL_ROUNDS_PER_ROUND = 3  # the head-to-head: three processes' worth of rounds
MIN_GAIN = 0.03  # a candidate must beat ORT's defaults by this much to be picked
OBJECTIVE = "latency"  # or load, memory, balanced
PATIENCE = 12  # stop after this many trials without a 1% better one (0 or None: never)


def max_rounds(rounds: int) -> int:
    """Rounds a candidate may take waiting for fast phases, for ``rounds`` kept ones."""
    return max(rounds * 2 + 4, 8)
