"""Client protocols other than OpenAI's, one module each; relay/codecs/base.py says what a codec does.

A route belongs to a protocol by its path: every answer on it, errors included, is in that protocol's
shape. Paths without a codec are OpenAI's, whose shape is the relay's own.
"""

from __future__ import annotations

from relay.codecs.anthropic import CODEC as ANTHROPIC
from relay.codecs.base import Codec
from relay.codecs.gemini import CODEC as GEMINI
from relay.codecs.gemini import METHODS as GEMINI_METHODS
from relay.codecs.responses import CODEC as RESPONSES


def for_path(path: str) -> Codec | None:
    """The codec of the protocol a relay path belongs to (its trailing slash stripped), if not OpenAI's."""
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return ANTHROPIC
    if path == "/v1/responses" or path.startswith("/v1/responses/"):
        return RESPONSES
    # Gemini's paths: all of /v1beta, and on /v1 its `models/{model}:method` (GET /v1/models stays OpenAI's,
    # and so does GET /v1/models/{model} for a model id holding a colon, as Bedrock's do).
    if path.startswith("/v1beta/") or (path.startswith("/v1/models/") and path.rpartition(":")[2] in GEMINI_METHODS):
        return GEMINI
    return None
