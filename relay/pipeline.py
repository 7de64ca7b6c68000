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
from oneapi_site import options
from oneapi_site.lib import tokenizer
from providers import health
from providers.adapters import adapter_for
from providers.adapters.base import ChannelInfo, UpstreamError
from providers.adapters.uploads import Upload
from relay import admission, http, media, native_fallback, routing, shapes
from relay.auth import Caller, check_model_allowed
from relay.cache import cache
from relay.errors import RelayError, bad_request
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


async def relay_request(*, caller: Caller, mode: str, raw_body: bytes, request_id: str, out: Responder,
                        path_model: str | None = None, upload: Upload | None = None,
                        body: dict | None = None, client_protocol: str = "openai",
                        native: NativeRequest | None = None, stored_at: int | None = None) -> None:
    """Answer one `/v1` request of any kind (chat, completions, embeddings, images, speech, uploads...).

    `body` is the request already decoded from the client's protocol (relay/codecs), `raw_body` as it came;
    `client_protocol` names that protocol for the consume log; `native` is the client's request as it came,
    for channels that speak its protocol; `stored_at` the channel that holds an answer the request builds on
    (relay/stored.py), which alone may answer it."""
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

    order = _order(call, caller, body_size=len(raw_body))
    quote = _quote(order, channel)
    reserved = await admission.hold(caller, quote.reserve)

    outcome = Outcome()
    settled = False
    try:
        await _call_with_failover(call, caller, routes, channel, out, outcome)
        _settle(call, caller, order, channel, quote, outcome, reserved, started_at, client_protocol)
        settled = True
        if outcome.answer_id and native is not None and native.body.get("store") is not False:
            stored.remember(outcome.answer_id, channel_id=outcome.channel.id, user_id=caller.user.id)
    except asyncio.CancelledError:
        # The client left. A stream that started is billed for what it produced.
        if outcome.started:
            _settle(call, caller, order, channel, quote, outcome, reserved, started_at, client_protocol)
            settled = True
        raise
    finally:
        if not settled:
            admission.release(reserved)


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
                              outcome: Outcome) -> None:
    # A pinned channel is never swapped; an upload has streamed away and cannot be sent again.
    pinned = caller.pinned_channel is not None
    retries = 0 if pinned or call.upload is not None else max(0, options.get("RetryTimes"))
    tried: set[int] = set()
    session = http.session()
    while True:
        try:
            await call_channel(session=session, channel=channel, call=call, out=out, outcome=outcome)
        except UpstreamError as err:
            health.report_failure(channel.id, err)
            usage_errors.errors.count(created_at=int(time.time()), group=caller.user.group, model=call.model,
                                      channel_id=channel.id, user_id=caller.user.id, token_id=caller.token.id)
            tried.add(channel.id)
            # Retry only what another channel may answer; never the channel that just failed.
            if not err.retryable or outcome.started or len(tried) > retries:
                raise _to_relay_error(err) from None
            following = routing.choose_channel(routes, group=caller.user.group, model=call.model, mode=call.mode,
                                               pinned=caller.pinned_channel, exclude=tried)
            if following is None:
                raise _to_relay_error(err) from None
            channel = following
            continue
        if outcome.interrupted is not None:
            health.report_failure(channel.id, outcome.interrupted)
        else:
            health.report_success(channel.id)
        return


def _to_relay_error(err: UpstreamError) -> RelayError:
    message = err.message
    if err.status == 429 and not err.error_body:
        message = "The upstream channels are overloaded; try again shortly."
    return RelayError(err.status, message, type=err.type, code=err.code, param=err.param, body=err.error_body)


def _settle(call: Call, caller: Caller, order: pricing.Order, quoted: ChannelInfo, quote: pricing.Quote,
            outcome: Outcome, reserved: admission.Hold, started_at: float, client_protocol: str) -> None:
    """Charge what the answer held, on the channel that gave it."""
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


def _count_answer(outcome: Outcome, model: str) -> int:
    text = "".join(outcome.texts)
    return tokenizer.count_text(text, model) if text else 0
