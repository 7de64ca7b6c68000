"""Which Claude models on which Vertex channels lack the count-tokens endpoint, remembered for a while.

Vertex counts Claude's tokens at `publishers/anthropic/models/count-tokens:rawPredict`, the model named in the
body, but not for every model and region: the others answer 400 or 404. Such a count is made locally instead,
and the channel and model are remembered here, in this process, so the next counts do not ask again; after a
while they do, for a region that has gained the endpoint.
"""

from __future__ import annotations

import time

# The statuses with which Vertex refuses a count it does not offer for the model or region.
UNSUPPORTED = (400, 404)
# Long enough to spare a busy client (Claude Code counts often) a round trip each, short enough that a model
# that gains the endpoint is asked again without a restart.
REMEMBER_SECONDS = 600.0

_refused: dict[tuple[int, str], float] = {}  # (channel id, upstream model) -> when to ask again (clock())
clock = time.monotonic  # a module attribute, so a test can move this clock alone


def refused(channel_id: int, model: str) -> bool:
    """Whether the channel refused lately to count the model's tokens."""
    until = _refused.get((channel_id, model))
    if until is None:
        return False
    if clock() < until:
        return True
    del _refused[(channel_id, model)]
    return False


def remember(channel_id: int, model: str) -> None:
    _refused[(channel_id, model)] = clock() + REMEMBER_SECONDS


def forget_all() -> None:
    _refused.clear()
