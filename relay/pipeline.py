"""A client's request through the relay: read it, quote and reserve, call channels until one answers, settle.

Plain async functions over frozen snapshots: no ORM, no Django request. The call itself is
relay/upstream.py's, the choice of channel relay/routing.py's and the prices billing/pricing.py's;
here they are put in order. Every failure before the first byte reaches the client may fail over to
another channel; after it, the client gets an error event and pays for what it got.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import orjson

from billing import pricing, usage_errors
from billing.services import Charge
from oneapi_site import metrics, options
from oneapi_site.lib import tokenizer
from providers import health
from providers.adapters import adapter_for
from providers.adapters.base import ChannelInfo, UpstreamError
from providers.adapters.uploads import Upload
from relay import admission, http, keys, limits, media, native_fallback, routing, shapes
from relay.auth import Caller, check_model_allowed
from relay.cache import cache
from relay.errors import RelayError, bad_request
from relay.limits import limiter
from relay.routing import Routes
from relay.stored import stored
from relay.upstream import Call, NativeRequest, Outcome, Responder, call_channel


def parse_body(raw: bytes, *, mode: str, path_model: str | None = None) -> dict:
    """The client's JSON body, checked as far as it must be before any quota is held."""
    return check_body(load_json(raw), mode=mode, path_model=path_model)


def load_json(raw: bytes) -> dict:
    """The client's body as a JSON object, or the client's 400."""
    if not raw:
        raise bad_request("The request body is empty: send a JSON object.", code="invalid_json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.", code="invalid_json")
    return body


def check_body(body: dict, *, mode: str, path_model: str | None = None) -> dict:
    """A request body as the relay takes it (an OpenAI body, or a codec's decoding of another protocol's)."""
    if path_model and not body.get("model"):
        body["model"] = path_model
    if not body.get("model") and mode in media.DEFAULT_MODELS:
        body["model"] = media.DEFAULT_MODELS[mode]
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad_request("`model` is required.", code="missing_model", param="model")
    if mode == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise bad_request("`messages` must be a non-empty array.", param="messages")
    elif mode == "completions" and body.get("prompt") is None:
        raise bad_request("`prompt` is required.", param="prompt")
    elif mode == "embeddings" and body.get("input") in (None, "", []):
        raise bad_request("`input` is required.", param="input")
    media.validate(mode, body)
    shapes.check(mode, body)
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 0):
        raise bad_request("`max_tokens` must be a non-negative integer.", param="max_tokens")
    return body


@metrics.recorded
async def relay_request(*, caller: Caller, mode: str, raw_body: bytes, request_id: str, out: Responder,
                        path_model: str | None = None, upload: Upload | None = None,
                        body: dict | None = None, client_protocol: str = "openai",
                        native: NativeRequest | None = None, stored_at: int | None = None,
                        headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Answer one `/v1` request of any kind (chat, completions, embeddings, images, speech, uploads...).

    `body` is the request already decoded from the client's protocol (relay/codecs), `raw_body` as it came;
    `client_protocol` names that protocol for the consume log; `native` is the client's request as it came,
    for channels that speak its protocol; `stored_at` the channel that holds an answer the request builds on
    (relay/stored.py), which alone may answer it; `headers` gets the rate-limit headers the answer carries."""
    started_at = time.monotonic()
    if stored_at is not None:
        caller = dataclasses.replace(caller, pinned_channel=stored_at)
    if upload is not None:
        body = dict(upload.fields)
        body["model"] = body.get("model") or media.DEFAULT_MODELS[mode]
        if not upload.has_file:
            raise bad_request("`file` is required: send the audio as a multipart file field.", param="file")
    elif body is not None:
        body = check_body(body, mode=mode)
    else:
        body = parse_body(raw_body, mode=mode, path_model=path_model)
    model = body["model"]
    check_model_allowed(caller, model)
    stream = bool(body.get("stream")) and mode in ("chat", "completions")
    stream_options = body.get("stream_options")
    wants_usage = isinstance(stream_options, dict) and bool(stream_options.get("include_usage"))
    call = Call(mode=mode, model=model, body=body, stream=stream, client_wants_usage=wants_usage,
                request_id=request_id, upload=upload, native=native)
    routes = await cache.get_routes()
    channel = routing.first_channel(routes, group=caller.user.group, model=model, mode=mode,
                                    pinned=caller.pinned_channel)
    metrics.routed(known_models=routes.model_owner, model=model, stream=stream, mode=mode)

    order = _order(call, caller, body_size=len(raw_body))
    ticket = limits.Ticket(request_id)
    scopes = limits.scopes_for(token=caller.token, user=caller.user, model=model)
    if scopes and not any(channel.limits) and admission.in_redis():
        # The channel is the first one whatever the limits say (it has no cap to be at), so its quote is known
        # and both admissions go to Redis together: one send and one round trip, as without limits.
        quote = _quote(order, channel)
        reserved = await _admit_and_hold(ticket, call, caller, routes, channel, scopes, order, headers, quote)
    else:
        if scopes or any(channel.limits):  # else no limit applies: nothing to count, no Redis call
            channel = await _admit(ticket, call, caller, routes, channel, scopes, order, headers)
        try:
            quote = _quote(order, channel)
            reserved = await admission.hold(caller, quote.reserve)
        except BaseException:
            await limiter.undo(ticket)  # refused before any upstream call: counts in no limit
            raise

    outcome = Outcome()
    settled = False
    billed = 0  # the tokens TPM counts: none for a request that got no answer
    try:
        await _call_with_failover(call, caller, routes, channel, out, outcome, ticket)
        billed = _settle(call, caller, order, channel, quote, outcome, reserved, started_at, client_protocol)
        settled = True
        if outcome.answer_id and native is not None and native.body.get("store") is not False:
            stored.remember(outcome.answer_id, channel_id=outcome.channel.id, user_id=caller.user.id)
    except asyncio.CancelledError:
        # The client left. A stream that started is billed for what it produced.
        if outcome.started:
            billed = _settle(call, caller, order, channel, quote, outcome, reserved, started_at, client_protocol)
            settled = True
        raise
    finally:
        if not settled:
            admission.release(reserved)
        await limiter.finish(ticket, tokens=billed)


async def _admit(ticket: limits.Ticket, call: Call, caller: Caller, routes: Routes, channel: ChannelInfo,
                 scopes: tuple[limits.Scope, ...], order: pricing.Order,
                 headers: list[tuple[bytes, bytes]] | None) -> ChannelInfo:
    """Count the request against its limits (relay/limits) and pick, among `channel` and the channels routing
    offers after it, the first not at its cap; the client's 429 when a limit is reached."""
    choices = routing.with_alternatives(routes, first=channel, group=caller.user.group, model=call.model,
                                        mode=call.mode, pinned=caller.pinned_channel, exclude=set())
    # A negative max_completion_tokens (only max_tokens is checked) takes nothing off the prompt's estimate.
    tokens = pricing.estimate_prompt_tokens(order.body_size) + max(0, order.max_tokens)
    # A refusal carries its Retry-After and x-ratelimit-* headers itself (RelayError.headers).
    index = await limiter.admit(ticket, scopes=scopes, channels=tuple(map(limits.channel_scope, choices)),
                                tokens=tokens, model=call.model)
    if headers is not None:
        headers.extend(ticket.headers())
    return choices[index]


async def _admit_and_hold(ticket: limits.Ticket, call: Call, caller: Caller, routes: Routes, channel: ChannelInfo,
                          scopes: tuple[limits.Scope, ...], order: pricing.Order,
                          headers: list[tuple[bytes, bytes]] | None, quote: pricing.Quote) -> admission.Hold:
    """`_admit` and the quota's hold at once; a request refused by either holds nothing in the other (a rate
    limit's refusal comes first, as when they run one after the other)."""
    # One task, not two and a wait: the limits' call is started first and the hold's runs here, and both reach
    # the Redis connection within the same turns of the loop, so they share its send (oneapi_site/lib/resp.py).
    counted = asyncio.ensure_future(_admit(ticket, call, caller, routes, channel, scopes, order, headers))
    try:
        reserved = await admission.hold(caller, quote.reserve)
    except asyncio.CancelledError:
        _let_go(counted, ticket)  # the client left: what the limits took is given back
        raise
    except BaseException:
        try:
            await counted  # a rate limit's refusal, if there is one, is the client's answer
        except asyncio.CancelledError:
            _let_go(counted, ticket)
            raise
        await limiter.undo(ticket)  # the quota or a budget refused it: nothing was served, nothing counts
        raise
    try:
        await counted
    except BaseException:
        admission.release(reserved)
        if not counted.done():  # this request was cancelled while the limits' call was under way
            _let_go(counted, ticket)
        raise
    return reserved


def _let_go(counted: asyncio.Future, ticket: limits.Ticket) -> None:
    """The limits' admission of a request that is gone: cancelled while under way (the limiter then undoes what
    Redis took once it answers), or undone when it was admitted already."""
    if not counted.done():
        counted.cancel()
    elif not counted.cancelled() and counted.exception() is None:
        undo = asyncio.ensure_future(limiter.undo(ticket))
        _undoing.add(undo)  # held: the loop keeps only a weak reference to a task
        undo.add_done_callback(_undoing.discard)


_undoing: set[asyncio.Future] = set()


async def count_natively(*, caller: Caller, body: dict, native: NativeRequest, request_id: str,
                         out: Responder) -> bool:
    """A token-count request forwarded to the model's channel when it speaks the client's protocol (Anthropic's
    count_tokens), free as it is at the vendor; whether it was answered. When the channel does not speak it,
    or is out of service, the caller counts locally; the channel's refusal of the request is the client's."""
    model = body["model"]
    routes = await cache.get_routes()
    channel = routing.choose_channel(routes, group=caller.user.group, model=model, mode="chat",
                                     pinned=caller.pinned_channel, exclude=set())
    if channel is None:
        return False
    mapped = channel.model_mapping.get(model, model)
    if not adapter_for(channel.type).speaks_natively(native.protocol, mode="count_tokens", model=mapped,
                                                     channel=channel) or (
            native.unconvertible is None and native_fallback.bridged(channel.id, native.protocol)):
        return False
    call = Call(mode="count_tokens", model=model, body=body, request_id=request_id, native=native)
    try:
        await call_channel(session=http.session(), channel=channel, call=call, out=out)
    except UpstreamError as err:
        if err.retryable or native_fallback.falls_back(err, channel=channel, protocol=native.protocol,
                                                       convertible=native.unconvertible is None):
            return False  # counted locally (a channel without the endpoint: its requests may cross the bridge)
        raise _to_relay_error(err) from None
    return True


def _order(call: Call, caller: Caller, *, body_size: int) -> pricing.Order:
    """The request's facts its price depends on."""
    body, user = call.body, caller.user
    if call.mode == "images":
        return pricing.Order(mode=call.mode, model=call.model, group=user.group, images=body.get("n", 1),
                             image_size=body.get("size", pricing.DEFAULT_IMAGE_SIZE),
                             image_quality=body.get("quality"), user_ratio=user.price_ratio)
    if call.mode == "speech":
        return pricing.Order(mode=call.mode, model=call.model, group=user.group,
                             characters=len(body["input"]), user_ratio=user.price_ratio)
    return pricing.Order(mode=call.mode, model=call.model, group=user.group, body_size=body_size,
                         max_tokens=body.get("max_tokens") or body.get("max_completion_tokens") or 0,
                         user_ratio=user.price_ratio)


def _quote(order: pricing.Order, channel: ChannelInfo) -> pricing.Quote:
    return pricing.quote(order, channel_type=channel.type, mapped_model=channel.model_mapping.get(order.model))


async def _call_with_failover(call: Call, caller: Caller, routes: Routes, channel: ChannelInfo, out: Responder,
                              outcome: Outcome, ticket: limits.Ticket) -> None:
    # A pinned channel is never swapped; an upload has streamed away and cannot be sent again.
    pinned = caller.pinned_channel is not None
    retries = 0 if pinned or call.upload is not None else max(0, options.get("RetryTimes"))
    tried: set[int] = set()
    refused: set[tuple[int, int]] = set()  # (channel, key line) of a multi-key channel's keys refused here
    session = http.session()
    while True:
        picked = keys.ring.pick(channel, refused=refused)
        if picked is None:  # no key of this channel is free (at its per-key cap, or just refused): another one
            tried.add(channel.id)
            following = await _next_channel(routes, caller, call, ticket, tried)
            if following is None:
                raise _no_free_key(channel)
            channel = following
            continue
        sending, key_index = picked
        try:
            await metrics.attempt(call_channel, session=session, channel=sending, call=call, out=out,
                                  outcome=outcome)
        except UpstreamError as err:
            usage_errors.errors.count(created_at=int(time.time()), group=caller.user.group, model=call.model,
                                      channel_id=channel.id, user_id=caller.user.id, token_id=caller.token.id)
            key = None if key_index is None else (key_index, sending.key)
            disabling = health.report_failure(channel.id, err, key=key)
            if disabling is not None and key is not None:
                _pass_over_until_written(channel.id, key_index, disabling)
            dead_key = key is not None and health.key_is_dead(err)
            if dead_key:
                # That key alone is dead: another of the channel's keys (never this one) or another channel.
                refused.add((channel.id, key_index))
                if not outcome.started and call.upload is None and len(refused) <= MAX_DEAD_KEYS and \
                        keys.ring.has_live(channel, refused=refused):
                    continue
            tried.add(channel.id)
            # Retry only what another channel may answer; never the channel that just failed.
            if not (err.retryable or dead_key) or outcome.started or len(tried) > retries:
                raise _to_relay_error(err) from None
            following = await _next_channel(routes, caller, call, ticket, tried)
            if following is None:
                raise _to_relay_error(err) from None
            channel = following
            continue
        if outcome.interrupted is not None:
            health.report_failure(channel.id, outcome.interrupted,
                                  key=None if key_index is None else (key_index, sending.key))
        else:
            health.report_success(channel.id, key_index=key_index)
        return


async def _next_channel(routes: Routes, caller: Caller, call: Call, ticket: limits.Ticket,
                        tried: set[int]) -> ChannelInfo | None:
    """The channel to go on with, past those tried, and with room under its caps; None when there is none."""
    following = routing.choose_channel(routes, group=caller.user.group, model=call.model, mode=call.mode,
                                       pinned=caller.pinned_channel, exclude=tried)
    if following is None:
        return None
    if ticket.channel is not None or any(following.limits):
        # The failed channel's lease goes; the next one must have room under its caps.
        choices = routing.with_alternatives(routes, first=following, group=caller.user.group,
                                            model=call.model, mode=call.mode, pinned=None, exclude=tried)
        index = await limiter.switch_channel(ticket, tuple(map(limits.channel_scope, choices)), model=call.model)
        if index is None:
            return None
        following = choices[index]
    return following


def _pass_over_until_written(channel_id: int, key_index: int, disabling: asyncio.Future) -> None:
    keys.ring.mark_down(channel_id, key_index)
    disabling.add_done_callback(lambda done: keys.ring.written(
        channel_id, key_index, disabled=not done.cancelled() and done.exception() is None and done.result() is True))


# Keys of multi-key channels one request may find dead before it gives up: a channel whose keys all died
# at once costs a client a few refusals, not one upstream call per key.
MAX_DEAD_KEYS = 3


def _no_free_key(channel: ChannelInfo) -> RelayError:
    if keys.ring.at_cap(channel):
        return RelayError(429, "Every key of the channel has had its requests for this minute; try again shortly.",
                          code="key_rate_limit_exceeded", type="rate_limit_error")
    return RelayError(503, "No key of the channel is available right now; try again shortly.",
                      code="model_not_available")


def _to_relay_error(err: UpstreamError) -> RelayError:
    message = err.message
    if err.status == 429 and not err.error_body:
        message = "The upstream channels are overloaded; try again shortly."
    return RelayError(err.status, message, type=err.type, code=err.code, param=err.param, body=err.error_body)


def _settle(call: Call, caller: Caller, order: pricing.Order, quoted: ChannelInfo, quote: pricing.Quote,
            outcome: Outcome, reserved: admission.Hold, started_at: float, client_protocol: str) -> int:
    """Charge what the answer held, on the channel that gave it; the tokens billed (prompt and completion)."""
    channel = outcome.channel
    if channel.id != quoted.id:  # another channel answered: its prices apply
        quote = _quote(order, channel)
    usage = outcome.usage
    reported = None if usage is None else pricing.Tokens(
        prompt=usage.prompt_tokens, completion=usage.completion_tokens, cached=usage.cached_tokens,
        cache_write=usage.cache_write_tokens, cache_write_1h=usage.cache_write_1h_tokens,
        reasoning=usage.reasoning_tokens, image_in=usage.input_image_tokens, audio_in=usage.input_audio_tokens,
        audio_out=usage.output_audio_tokens)
    prompt = outcome.prompt_usage
    tokens = pricing.billed_tokens(
        mode=call.mode, reported=reported,
        reported_prompt=None if prompt is None else pricing.Tokens(
            prompt=prompt.prompt_tokens, cached=prompt.cached_tokens, cache_write=prompt.cache_write_tokens,
            cache_write_1h=prompt.cache_write_1h_tokens, image_in=prompt.input_image_tokens,
            audio_in=prompt.input_audio_tokens),
        count_prompt=lambda: tokenizer.count_request(call.mode, call.body, call.model),
        count_answer=lambda: _count_answer(outcome, call.model))
    quota = pricing.charge(quote, tokens, images_made=outcome.images)
    metrics.charged(channel_id=channel.id, tokens=tokens, quota=quota)
    token = caller.token
    admission.settle(reserved, Charge(
        user_id=caller.user.id, username=caller.user.username, token_id=token.id, token_name=token.name,
        unlimited=token.unlimited, channel_id=channel.id, model_name=call.model, quota=quota,
        prompt_tokens=tokens.prompt, completion_tokens=tokens.completion, request_id=call.request_id,
        elapsed_ms=int((time.monotonic() - started_at) * 1000), is_stream=call.stream,
        content=quote.explain(tokens), created_at=int(time.time()), system_prompt_reset=outcome.prompt_reset,
        client_protocol=client_protocol, cached_tokens=tokens.cached, cache_write_tokens=tokens.cache_write,
        cache_write_1h_tokens=tokens.cache_write_1h, reasoning_tokens=tokens.reasoning, group=caller.user.group,
        **admission.periods(reserved)))
    return tokens.prompt + tokens.completion


def _count_answer(outcome: Outcome, model: str) -> int:
    text = "".join(outcome.texts)
    return tokenizer.count_text(text, model) if text else 0
