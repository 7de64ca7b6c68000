"""Channels taken by default to serve the Responses API that turn out not to: the bridge through chat instead.

OpenAI and Azure channels get a Responses client's request as it is unless their config says otherwise
(providers/adapters/openai.py, `responses_api`), but such a channel may point at a proxy that serves only chat
completions. When one answers 404 or 405 for /responses itself before any answer, the request crosses the
bridge on that same channel, and the channel is remembered here, in this process, for a while, so the next
requests do not ask for the missing endpoint again. A channel whose config says it serves the API is taken at
its word: its 404 is the client's answer, as is any request that builds on a stored response (only the vendor
can answer it).
"""

from __future__ import annotations

import logging
import time

from providers.adapters.base import ChannelInfo, UpstreamError
from providers.adapters.openai import RESPONSES_SETTING

log = logging.getLogger("oneapi.relay")

# The statuses with which a server says it has no such endpoint (or not for POST).
ENDPOINT_MISSING = (404, 405)
# OpenAI's code for a model it does not have, which it answers with 404 on an endpoint it does serve.
MISSING_MODEL = "model_not_found"
# How long a channel stays on the bridge: long enough to spare later requests a round trip each, short enough
# that a proxy upgraded to serve Responses gets them again without a restart.
REMEMBER_SECONDS = 600.0

_bridged: dict[int, float] = {}  # channel id -> when to try its /responses again (time.monotonic)


def bridged(channel_id: int, protocol: str) -> bool:
    """Whether the channel was found lately not to serve `protocol` (only ever Responses)."""
    until = _bridged.get(channel_id) if protocol == "responses" else None
    if until is None:
        return False
    if time.monotonic() < until:
        return True
    del _bridged[channel_id]
    return False


def falls_back(err: UpstreamError, *, channel: ChannelInfo, protocol: str, convertible: bool) -> bool:
    """Whether a native call's failure (before its answer) says the channel has no Responses endpoint, and the
    request may cross the bridge instead."""
    return (protocol == "responses" and convertible and not err.local
            and err.status in ENDPOINT_MISSING and err.code != MISSING_MODEL
            and (channel.config or {}).get(RESPONSES_SETTING) in (None, ""))


def remember(channel: ChannelInfo, status: int) -> None:
    """Send the channel's Responses requests over the bridge for a while; one log line each time it starts."""
    if not bridged(channel.id, "responses"):
        log.warning("channel #%s answered %s for /responses: Responses requests cross the bridge through chat "
                    "for %d minutes (set its responses_api config to say which it serves)",
                    channel.id, status, REMEMBER_SECONDS // 60)
    _bridged[channel.id] = time.monotonic() + REMEMBER_SECONDS


def forget_all() -> None:
    _bridged.clear()
