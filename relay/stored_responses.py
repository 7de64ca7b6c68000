"""The routes of stored Responses (retrieve, delete, list input items, cancel) and the channel a new Response
that builds on one must go to: the channel that stored it (relay/stored.py), for the user who made it only.

Nothing here is billed: OpenAI charges for none of these calls.
"""

from __future__ import annotations

import re

from providers.adapters.base import UpstreamError
from relay import http
from relay.auth import Caller
from relay.cache import cache
from relay.codecs.responses import not_stored, previous_not_found, response_not_found
from relay.errors import RelayError, bad_request
from relay.stored import stored
from relay.upstream import Responder, call_stored

ROUTE = re.compile(r"^/v1/responses/(?P<id>[^/]+)(?P<rest>/input_items|/cancel)?$")
METHODS = {"": ("GET", "DELETE"), "/input_items": ("GET",), "/cancel": ("POST",)}
# OpenAI's routes under /v1/responses/ that name no stored Response (compaction, which the bridge cannot do).
NOT_IDS = ("compact", "input_tokens")


async def pinned_channel(body: dict, caller: Caller) -> int | None:
    """The channel that holds the Response a new one continues (`previous_response_id`), or None when it
    continues none; an id this gateway has no record of for the caller is refused."""
    previous = body.get("previous_response_id")
    if previous is None:
        return None
    if not isinstance(previous, str) or not previous:
        raise bad_request("previous_response_id must be a response id.", param="previous_response_id")
    channel_id = await stored.channel_of(previous, user_id=caller.user.id)
    if channel_id is None:
        raise previous_not_found(previous)
    model = body.get("model")
    if isinstance(model, str) and not caller.pinned_channel:
        # Pinning skips routing, so routing's check is made here: else one stored id would let a caller send any
        # model name to that channel, whatever its group may use.
        tiers = (await cache.get_routes()).by_group_model.get((caller.user.group, model), ())
        if not any(channel.id == channel_id for tier in tiers for channel in tier.channels):
            raise bad_request(f"The channel that stored response {previous!r} does not serve model {model!r} for "
                              f"your group: continue it with a model it serves.", param="previous_response_id",
                              code="model_not_available")
    return channel_id


async def answer(*, caller: Caller, method: str, path: str, raw_path: str, query: bytes, out: Responder) -> None:
    """A stored-response route: the vendor's answer from the channel that holds the Response, as it sent it."""
    match = ROUTE.match(path)
    if match is None or match["id"] in NOT_IDS:
        raise not_stored(method, raw_path)
    rest = match["rest"] or ""
    if method not in METHODS[rest]:
        raise RelayError(405, f"{method} is not allowed on {raw_path}; use {' or '.join(METHODS[rest])}.",
                         type="invalid_request_error", code="method_not_allowed")
    answer_id = match["id"]
    channel_id = await stored.channel_of(answer_id, user_id=caller.user.id)
    if channel_id is None:  # unknown, or another user's: the same answer, so ids cannot be probed
        raise response_not_found(answer_id)
    channel = (await cache.get_routes()).channels.get(channel_id)
    if channel is None:
        raise RelayError(503, f"The channel that stored response {answer_id!r} is disabled or deleted.",
                         code="channel_disabled")
    try:
        status = await call_stored(session=http.session(), channel=channel, method=method, path=answer_id + rest,
                                   query=query.decode("latin-1"), out=out)
    except UpstreamError as err:
        raise RelayError(err.status, err.message, type=err.type, code=err.code, param=err.param,
                         body=err.error_body) from None
    if method == "DELETE" and status == 200:
        await stored.forget(answer_id)
