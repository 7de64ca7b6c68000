"""The text relay: authenticate, choose a channel, call it, stream back, settle the bill.

Plain async functions over frozen snapshots: no ORM, no Django request. Every
failure before the first byte reaches the client may fail over to another
channel; after it, the client gets an error event and pays for what it got.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson

from billing import pricing
from billing.ledger import ledger
from billing.services import Charge
from oneapi_site import options
from providers import health, masking
from providers.adapters import adapter_for, image_budget
from providers.adapters.base import (
    ChannelInfo,
    RequestContext,
    StreamDecoder,
    UpstreamError,
    Usage,
    network_failure,
    read_timeout,
)
from relay import http, media, shapes, tokenizer
from relay.auth import Caller, check_model_allowed
from relay.cache import Routes, cache, pick
from relay.errors import RelayError, bad_request
from relay.media import Upload
from relay.streaming import DONE, SSE_HEADERS, ChunkGatherer, Frames


class Responder(Protocol):
    started: bool

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None: ...
    async def write(self, data: bytes) -> None: ...
    async def finish(self, data: bytes = b"") -> None: ...


JSON_HEADERS = [(b"content-type", b"application/json")]
log = logging.getLogger("oneapi.relay")
# What reading a vendor's bytes raises when they are not in the shape its adapter expects.
SHAPE_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError)


@dataclass
class Progress:
    """What a stream has produced so far: billed even if the client leaves."""

    usage: Usage | None = None
    texts: list[str] = field(default_factory=list)
    started: bool = False
    images: int | None = None  # how many images the answer holds, when it is an images answer
    # The upstream failed after the answer started (a break, an error event): the client keeps what it
    # got and is billed for it, and the channel's health counts the failure.
    interrupted: UpstreamError | None = None


@dataclass(frozen=True)
class Plan:
    caller: Caller
    mode: str
    model: str
    body: dict
    stream: bool
    client_wants_usage: bool
    prompt_estimate: int  # for the reservation only; exact counts come from the vendor or at settlement
    group_ratio: float
    request_id: str
    started_at: float
    upload: Upload | None = None  # a multipart audio upload, streamed through (never replayed)
    fixed_quota: int | None = None  # the price when it is known up front (images, speech)


# orjson reads 1024 levels deep but writes only 255, and the adapters write the client's body again for the
# vendor (an adapter's converter may also recurse past Python's limit). Not checked up front, which cost
# every request two scans and often a whole dump: the vendor's request that cannot be written is refused
# as the client's bad JSON when the client's body nests deeper than DEEP_BODY (adapters add a few levels
# of their own, never dozens; below that it is this gateway's fault, a 500).
WRITE_NESTING = 255
DEEP_BODY = 200
TOO_DEEP = (orjson.JSONEncodeError, RecursionError)


def parse_body(raw: bytes, *, mode: str, path_model: str | None = None) -> dict:
    if not raw:
        raise bad_request("The request body is empty: send a JSON object.", code="invalid_json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.", code="invalid_json")
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


def nests_deeper(value: Any, limit: int) -> bool:
    """Whether arrays and objects in `value` nest more than `limit` levels (without recursion: the value may
    be too deep for it)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _refuse_if_too_deep(plan: Plan, exc: BaseException) -> None:
    """Raise the client's 400 when `exc` is the vendor's request failing to be written over the client's
    deep body; return otherwise (the caller handles `exc` as it would any other)."""
    if isinstance(exc, TOO_DEEP) and nests_deeper(plan.body, DEEP_BODY):
        raise bad_request(f"The request body is nested too deep: the request to the upstream would be nested "
                          f"deeper than {WRITE_NESTING} levels.", code="invalid_json") from None


def count_prompt(mode: str, body: dict, model: str) -> int:
    if mode == "chat":
        return tokenizer.count_messages(body.get("messages"), model)
    if mode == "completions":
        return tokenizer.count_input(body.get("prompt"), model)
    if mode == "rerank":
        documents = [d if isinstance(d, str) else str((d or {}).get("text", "")) for d in body.get("documents", [])]
        return tokenizer.count_input([body.get("query", ""), *documents], model)
    if mode in ("embeddings", "moderations"):
        return tokenizer.count_input(body.get("input"), model)
    return 0


def upstream_body(plan: Plan, channel: ChannelInfo) -> tuple[dict, bool]:
    """The body for this channel: mapped model, the channel's system prompt, usage asked for in streams."""
    body = dict(plan.body)
    body["model"] = channel.model_mapping.get(plan.model, plan.model)
    prompt_reset = False
    if channel.system_prompt and plan.mode == "chat":
        messages = list(body["messages"])
        if messages and isinstance(messages[0], dict) and messages[0].get("role") == "system":
            messages[0] = {**messages[0], "content": channel.system_prompt}
        else:
            messages.insert(0, {"role": "system", "content": channel.system_prompt})
        body["messages"] = messages
        prompt_reset = True
    if plan.stream:
        stream_options = body.get("stream_options") if isinstance(body.get("stream_options"), dict) else {}
        body["stream_options"] = {**stream_options, "include_usage": True}
    return body, prompt_reset


def _ratios(plan: Plan, channel: ChannelInfo) -> tuple[float, float]:
    model_ratios = options.get("ModelRatio")
    completion_ratios = options.get("CompletionRatio")
    # Price by the name the client asked for; fall back to the mapped name's price.
    name = plan.model
    mapped = channel.model_mapping.get(name)
    if mapped and name not in model_ratios and f"{name}({channel.type})" not in model_ratios \
            and name not in pricing.DEFAULT_MODEL_RATIO:
        name = mapped
    return (pricing.model_ratio(name, channel.type, model_ratios),
            pricing.completion_ratio(name, completion_ratios))


def choose_channel(plan: Plan, routes: Routes, exclude: set[int]) -> ChannelInfo | None:
    if plan.caller.pinned_channel is not None:
        return routes.channels.get(plan.caller.pinned_channel) if not exclude else None
    tiers = routes.by_group_model.get((plan.caller.user.group, plan.model), ())
    exclude = set(exclude)
    while (channel := pick(tiers, exclude)) is not None:
        if plan.mode in adapter_for(channel.type).modes:
            return channel
        exclude.add(channel.id)  # this vendor has no such endpoint: another channel may
    return None


async def relay_text(*, caller: Caller, mode: str, raw_body: bytes, request_id: str, out: Responder,
                     path_model: str | None = None, upload: Upload | None = None) -> None:
    started_at = time.monotonic()
    if upload is not None:
        body = dict(upload.fields)
        body["model"] = body.get("model") or media.DEFAULT_MODELS[mode]
        if not upload.has_file:
            raise bad_request("`file` is required: send the audio as a multipart file field.", param="file")
    else:
        body = parse_body(raw_body, mode=mode, path_model=path_model)
    model = body["model"]
    check_model_allowed(caller, model)
    stream = bool(body.get("stream")) and mode in ("chat", "completions")
    stream_options = body.get("stream_options")
    wants_usage = isinstance(stream_options, dict) and bool(stream_options.get("include_usage"))
    routes = await cache.get_routes()
    group_ratio = pricing.group_ratio(caller.user.group, options.get("GroupRatio"))
    plan = Plan(caller=caller, mode=mode, model=model, body=body, stream=stream, client_wants_usage=wants_usage,
                prompt_estimate=len(raw_body) // 3, group_ratio=group_ratio, request_id=request_id,
                started_at=started_at, upload=upload)

    if caller.pinned_channel is not None:
        status = routes.channel_status.get(caller.pinned_channel)
        if status is None:
            raise bad_request(f"Channel {caller.pinned_channel} does not exist.", code="channel_not_found")
        if caller.pinned_channel not in routes.channels:
            raise RelayError(403, f"Channel {caller.pinned_channel} is disabled.", code="channel_disabled")
    channel = choose_channel(plan, routes, set())
    if channel is None:
        raise RelayError(503, f"No available channel for model {model} in group {caller.user.group}.",
                         code="model_not_available")

    model_ratio, _ = _ratios(plan, channel)
    fixed = media.fixed_quota(mode, body, model_ratio=model_ratio, group_ratio=group_ratio)
    if fixed is not None:
        plan = dataclasses.replace(plan, fixed_quota=fixed)
        reserved = fixed
    else:
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or 0
        reserved = pricing.pre_consume_quota(base=options.get("PreConsumedQuota"),
                                             prompt_tokens=plan.prompt_estimate, max_tokens=max_tokens,
                                             model_ratio=model_ratio, group_ratio=group_ratio)
    token = caller.token
    refused = ledger.reserve(user_id=caller.user.id, user_quota=caller.user.quota, token_id=token.id,
                             token_quota=None if token.unlimited else token.remain_quota, amount=reserved)
    if refused == "user":
        raise RelayError(403, "Your account's quota is not enough for this request.", code="insufficient_user_quota")
    if refused == "token":
        raise RelayError(403, "This API key's quota is not enough for this request.",
                         code="pre_consume_token_quota_failed")

    progress = Progress()
    settled = False
    try:
        channel, prompt_reset = await _call_with_failover(plan, routes, channel, out, progress)
        _settle(plan, channel, progress, reserved, prompt_reset)
        settled = True
    except asyncio.CancelledError:
        # The client left. A stream that started is billed for what it produced.
        if progress.started:
            _settle(plan, channel, progress, reserved, False)
            settled = True
        raise
    finally:
        if not settled:
            ledger.release(user_id=caller.user.id, token_id=token.id, amount=reserved, limited=not token.unlimited)


async def _call_with_failover(plan: Plan, routes: Routes, channel: ChannelInfo, out: Responder,
                              progress: Progress) -> tuple[ChannelInfo, bool]:
    # A pinned channel is never swapped; an upload has streamed away and cannot be sent again.
    pinned = plan.caller is not None and plan.caller.pinned_channel is not None
    retries = 0 if pinned or plan.upload is not None else max(0, options.get("RetryTimes"))
    tried: set[int] = set()
    while True:
        body, prompt_reset = upstream_body(plan, channel)
        try:
            async with image_budget.held_for_call():  # what the call inlines is held until it ends
                await _call_once(plan, channel, body, out, progress)
            if progress.interrupted is not None:
                health.report_failure(channel.id, progress.interrupted)
            else:
                health.report_success(channel.id)
            return channel, prompt_reset
        except UpstreamError as err:
            health.report_failure(channel.id, err)
            tried.add(channel.id)
            # Retry only what another channel may answer; never the channel that just failed.
            if not err.retryable or progress.started or len(tried) > retries:
                raise _to_relay_error(err) from None
            following = choose_channel(plan, routes, tried)
            if following is None:
                raise _to_relay_error(err) from None
            channel = following


def _to_relay_error(err: UpstreamError) -> RelayError:
    message = err.message
    if err.status == 429 and not err.error_body:
        message = "The upstream channels are overloaded; try again shortly."
    return RelayError(err.status, message, type=err.type, code=err.code, param=err.param, body=err.error_body)


async def _call_once(plan: Plan, channel: ChannelInfo, body: dict, out: Responder, progress: Progress,
                     session: aiohttp.ClientSession | None = None) -> None:
    """One call to one channel, its answer sent to `out`.

    The boundary where upstream text enters the gateway: every failure leaves as an UpstreamError with the
    channel's credentials masked (providers/masking.py), so clients, logs, health and channel tests all
    get masked text. A failure once the answer has started ends the client's answer instead (an error
    event on a stream) and is kept in `progress.interrupted` for the channel's health.
    """
    try:
        await _exchange(plan, channel, body, out, progress, session or http.session())
    except UpstreamError as err:
        err = masking.mask_error(err, adapter_for(channel.type).secrets(channel))
        if not progress.started:
            raise err from None
        progress.interrupted = err
        await out.finish(_interrupted(plan, err) + DONE if plan.stream else b"")
    except RelayError:
        raise
    except Exception as exc:
        _refuse_if_too_deep(plan, exc)  # writing the vendor's request (build_request, prepare) over a deep body
        # A fault in this gateway's own code on the call path. Logged here, masked, because the traceback
        # may hold what the upstream sent; the client gets OpenAI's error as for any other fault.
        secrets = adapter_for(channel.type).secrets(channel)
        trace = masking.mask_text("".join(traceback.format_exception(exc)), secrets)
        log.error("relay failure on channel #%s (request id %s)\n%s", channel.id, plan.request_id, trace.rstrip())
        raise RelayError(500, "The gateway failed to handle this request.", type="one_api_panic",
                         code="internal_error") from None


def _unreadable(adapter, exc: Exception, channel: ChannelInfo) -> UpstreamError:
    """An answer the adapter could not read (a shape it did not expect): a retryable 502, and one log line
    (where it failed, for whoever maintains the adapter), never a traceback."""
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}" if frame else ""
    log.warning("channel #%s (%s): could not read the upstream's answer: %s%s", channel.id, adapter.label,
                type(exc).__name__, where)
    return UpstreamError(status=502, message=f"{adapter.label} answered with something this gateway could not read.",
                         code="bad_response_body", retryable=True)


async def _exchange(plan: Plan, channel: ChannelInfo, body: dict, out: Responder, progress: Progress,
                    session: aiohttp.ClientSession) -> None:
    adapter = adapter_for(channel.type)
    upstream_stream = plan.stream or (adapter.stream_only and plan.mode != "embeddings")
    timeout = read_timeout(session)
    if adapter.transport == "websocket":
        body = await adapter.prepare(channel=channel, mode=plan.mode, body=body, session=session)
        ctx = RequestContext(channel=channel, mode=plan.mode, body=body, stream=True, client_model=plan.model)
        batches = _ws_batches(plan, adapter, channel, adapter.exchange(ctx, session=session), timeout)
        await (_stream if plan.stream else _gather)(plan, batches, out, progress, channel)
        return
    if plan.mode in adapter.complete_modes:  # more than one request makes the answer (a task to poll)
        try:
            body = await adapter.prepare(channel=channel, mode=plan.mode, body=body, session=session)
            ctx = RequestContext(channel=channel, mode=plan.mode, body=body, stream=False, client_model=plan.model,
                                 upload=plan.upload)
            data, usage = await adapter.complete(ctx, session=session)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise network_failure(exc, read_timeout=timeout) from None
        except SHAPE_ERRORS as exc:
            _refuse_if_too_deep(plan, exc)  # `complete` writes the vendor's requests too
            raise _unreadable(adapter, exc, channel) from None
        await _answer(plan, adapter, data, usage, out, progress,
                      [(b"content-type", adapter.answer_content_type(ctx).encode())])
        return
    try:
        body = await adapter.prepare(channel=channel, mode=plan.mode, body=body, session=session)
        # One context per upstream call: it carries the request's facts to the answer's conversion.
        ctx = RequestContext(channel=channel, mode=plan.mode, body=body, stream=upstream_stream,
                             client_model=plan.model)
        request = adapter.build_request(ctx)
        data = request.body
        if plan.upload is not None:
            data = plan.upload.with_model(body["model"]).chunks()
            request.headers["Content-Type"] = plan.upload.content_type
        response = await session.request(request.method, request.url, headers=request.headers, data=data)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        if plan.upload is not None and plan.upload.refusal is not None:
            raise plan.upload.refusal from None  # the form was cut off on its way: the client's doing
        raise network_failure(exc, read_timeout=timeout) from None
    try:
        if response.status != 200:
            raise adapter.parse_error(ctx, status=response.status, body=await _read_error(response),
                                      headers=response.headers)
        decoder = adapter.stream_decoder(ctx) if upstream_stream else None
        if decoder is not None and decoder.accepts(response.headers.get("Content-Type", "")):
            batches = _http_batches(adapter, channel, decoder, response, timeout)
            await (_stream if plan.stream else _gather)(plan, batches, out, progress, channel)
            return
        if plan.mode == "speech":
            await _pass_through(response, out, progress, timeout)
            return
        try:
            raw = await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise network_failure(exc, read_timeout=timeout, started=True) from None
        try:
            data, usage = adapter.parse_response(ctx, body=raw)
        except SHAPE_ERRORS as exc:
            raise _unreadable(adapter, exc, channel) from None
        headers = JSON_HEADERS
        if plan.mode in media.RAW_MODES:  # subtitles and plain text keep their own type
            headers = [(b"content-type", response.headers.get("Content-Type", "application/json").encode())]
        await _answer(plan, adapter, data, usage, out, progress, headers)
    finally:
        response.release()


async def _answer(plan: Plan, adapter, data: bytes, usage: Usage | None, out: Responder, progress: Progress,
                  headers: list[tuple[bytes, bytes]]) -> None:
    """A whole (not streamed) answer to the client, with what its bill needs."""
    progress.usage = usage
    if plan.mode == "images":
        progress.images = media.images_delivered(data)
    elif usage is None and plan.mode != "embeddings":
        progress.texts.append(adapter.completion_text(mode=plan.mode, body=data))
    progress.started = True
    await out.start(200, headers)
    await out.finish(data)


async def _pass_through(response: aiohttp.ClientResponse, out: Responder, progress: Progress,
                        timeout: float | None) -> None:
    """Audio goes to the client as it arrives, in the upstream's own format."""
    content_type = response.headers.get("Content-Type", "application/octet-stream").encode()
    await out.start(200, [(b"content-type", content_type)])
    progress.started = True
    try:
        async for chunk in response.content.iter_any():
            await out.write(chunk)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise network_failure(exc, read_timeout=timeout, started=True) from None
    await out.finish()


async def _read_error(response: aiohttp.ClientResponse) -> bytes:
    try:
        return await response.content.read(64 * 1024)
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return b""


async def _http_batches(adapter, channel: ChannelInfo, decoder: StreamDecoder, response: aiohttp.ClientResponse,
                        timeout: float | None):
    """The decoder's events, a batch per network read. A break, or an event the decoder cannot read, is
    an UpstreamError."""
    frames = Frames(decoder)
    chunks = response.content.iter_any().__aiter__()
    while True:
        try:
            chunk = await chunks.__anext__()
        except StopAsyncIteration:
            chunk = None
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise network_failure(exc, read_timeout=timeout, started=True) from None
        try:
            batch = frames.feed(chunk) if chunk is not None else frames.close()
        except SHAPE_ERRORS as exc:
            raise _unreadable(adapter, exc, channel) from None
        yield batch
        if chunk is None:
            return


async def _ws_batches(plan: Plan, adapter, channel: ChannelInfo, events, timeout: float | None):
    """A WebSocket vendor's events (adapter.exchange), a batch each; connection failures may fail over."""
    started = False
    try:
        async for event in events:
            started = True
            yield [event]
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise network_failure(exc, read_timeout=timeout, started=started) from None
    except SHAPE_ERRORS as exc:
        _refuse_if_too_deep(plan, exc)  # the exchange writes its request frames as it goes
        raise _unreadable(adapter, exc, channel) from None


def _interrupted(plan: Plan, err: UpstreamError) -> bytes:
    error = {"error": {"message": f"{err.message} (request id: {plan.request_id})",
                       "type": "upstream_error", "code": "stream_interrupted", "param": None}}
    return b"data: " + orjson.dumps(error) + b"\n\n"


def _no_answer() -> UpstreamError:
    return UpstreamError(status=502, message="The upstream answered 200, but its stream held no answer.",
                         code="bad_response_body", retryable=True)


async def _stream(plan: Plan, batches, out: Responder, progress: Progress, channel: ChannelInfo) -> None:
    """Events to the client as server-sent events, as they arrive.

    Nothing goes out before the first event with words, reasoning or usage, so until then the call may still fail
    over: a vendor's error event is raised, and a stream that ends without one event in the vendor's
    shape is a retryable 502. Events held till then (a role chunk, a malformed one) go out with it.
    A failure after that is raised too; _call_once ends the client's stream with an error event.
    """
    held: list[bytes] = []
    answered = False  # an event in the vendor's shape came: an empty answer is still an answer
    secrets: tuple[str, ...] | None = None
    async for events in batches:
        chunks: list[bytes] = []
        content = False
        for decoded in events:
            if decoded.done:
                continue  # the relay ends every stream with its own [DONE]
            if decoded.error is not None:
                if not progress.started and not content:
                    raise decoded.error  # masked by _call_once, like any failure
                # The client keeps the vendor's error chunk and the channel's health hears of the error:
                # both are the vendor's text, so both are masked here, where they go out.
                if secrets is None:
                    secrets = adapter_for(channel.type).secrets(channel)
                progress.interrupted = masking.mask_error(decoded.error, secrets)
                decoded = dataclasses.replace(decoded, data=masking.mask_bytes(decoded.data, secrets))
            elif not decoded.malformed:
                answered = True
            if decoded.usage is not None:
                progress.usage = decoded.usage
                content = True
            if decoded.text:
                progress.texts.append(decoded.text)
                content = True
            if decoded.reasoning:
                content = True  # the model thinks aloud: the answer has begun, though not its words
            if decoded.data is None or (decoded.usage_only and not plan.client_wants_usage):
                continue
            chunks.append(b"data: " + decoded.data + b"\n\n")
        if not progress.started:
            held.extend(chunks)
            if not content:
                continue
            chunks, held = held, []
            # Headers wait for the first words, so a vendor that fails before any can still fail over.
            await out.start(200, SSE_HEADERS)
            progress.started = True
        if chunks:
            await out.write(b"".join(chunks))
    if not progress.started:
        if not answered:
            raise _no_answer()
        await out.start(200, SSE_HEADERS)
        progress.started = True
    await out.finish(b"".join(held) + DONE)


async def _gather(plan: Plan, batches, out: Responder, progress: Progress, channel: ChannelInfo) -> None:
    """A stream-only vendor answering a client that did not ask to stream: one JSON answer.

    What the stream says is kept here until it ends: a failure before then leaves `progress` as it was,
    for the next channel. An error event before any words fails the call; after some, the answer so far
    is kept (the vendor has made it) and the channel's health hears of the error."""
    gatherer = ChunkGatherer(mode=plan.mode, model=plan.model, request_id=plan.request_id)
    usage: Usage | None = None
    texts: list[str] = []
    answered = False
    interrupted: UpstreamError | None = None
    async for events in batches:
        for decoded in events:
            if decoded.done or decoded.malformed:
                continue
            if decoded.error is not None:
                if not texts and usage is None:
                    raise decoded.error
                interrupted = interrupted or decoded.error
                continue
            answered = True
            if decoded.usage is not None:
                usage = decoded.usage
            if decoded.text:
                texts.append(decoded.text)
            if decoded.data is not None:
                gatherer.add(decoded.data)
    if not answered:
        raise _no_answer()
    if interrupted is not None:
        progress.interrupted = masking.mask_error(interrupted, adapter_for(channel.type).secrets(channel))
    progress.usage = usage
    progress.texts.extend(texts)
    progress.started = True
    await out.start(200, JSON_HEADERS)
    await out.finish(gatherer.result(usage))


def _settle(plan: Plan, channel: ChannelInfo, progress: Progress, reserved: int, prompt_reset: bool) -> None:
    usage = progress.usage
    model_ratio, completion_ratio = _ratios(plan, channel)
    if usage is None or (usage.prompt_tokens == 0 and usage.completion_tokens == 0):
        # No usage from the vendor (or a cut stream): count locally, as one-api does.
        text = "".join(progress.texts)
        if plan.mode in media.UPLOAD_MODES:
            # The transcript's tokens, priced at the model ratio (one-api forgets the ratio here).
            usage = Usage(prompt_tokens=tokenizer.count_text(text, plan.model), completion_tokens=0)
        else:
            completion = tokenizer.count_text(text, plan.model) if text else 0
            usage = Usage(prompt_tokens=count_prompt(plan.mode, plan.body, plan.model), completion_tokens=completion)
    if plan.fixed_quota is not None:
        quota = plan.fixed_quota
        if progress.images is not None:
            # Images are paid per image delivered: a vendor that made fewer than `n` (DashScope's
            # partly failed tasks) is paid for those it made, as it bills its own account.
            n = plan.body.get("n", 1)
            quota = quota // n * min(progress.images, n)
    else:
        quota = pricing.text_quota(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                                   model_ratio=model_ratio, completion_ratio=completion_ratio,
                                   group_ratio=plan.group_ratio)
    caller = plan.caller
    ledger.settle(Charge(
        user_id=caller.user.id, username=caller.user.username, token_id=caller.token.id,
        token_name=caller.token.name, unlimited=caller.token.unlimited, channel_id=channel.id,
        model_name=plan.model, quota=quota, prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens, request_id=plan.request_id,
        elapsed_ms=int((time.monotonic() - plan.started_at) * 1000), is_stream=plan.stream,
        content=f"model ratio {model_ratio:g} x group ratio {plan.group_ratio:g} x completion ratio {completion_ratio:g}",
        created_at=int(time.time()), system_prompt_reset=prompt_reset,
    ), reserved=reserved)


def model_entry(model: str, owner: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1626777600, "owned_by": owner,
            "permission": [], "root": model, "parent": None}
