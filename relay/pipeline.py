"""The text relay: authenticate, choose a channel, call it, stream back, settle the bill.

Plain async functions over frozen snapshots: no ORM, no Django request. Every
failure before the first byte reaches the client may fail over to another
channel; after it, the client gets an error event and pays for what it got.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson

from billing import options, pricing
from billing.ledger import ledger
from billing.services import Charge
from providers import health
from providers.adapters import adapter_for
from providers.adapters.base import ChannelInfo, RequestContext, StreamDecoder, UpstreamError, Usage
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


@dataclass
class Progress:
    """What a stream has produced so far: billed even if the client leaves."""

    usage: Usage | None = None
    texts: list[str] = field(default_factory=list)
    started: bool = False
    images: int | None = None  # how many images the answer holds, when it is an images answer


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


# orjson reads 1024 levels of nesting but writes only 254: a body nested between the two would parse,
# then fail as the adapter writes it out for the upstream. Refuse it here, with room for the levels
# an adapter wraps around the client's values. No real request nests anywhere near this deep.
MAX_NESTING = 128


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Iterative: a recursive walk is what a deep body would overflow."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > limit:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, (dict, list)):
                pending.append((child, depth + 1))
    return False


def parse_body(raw: bytes, *, mode: str, path_model: str | None = None) -> dict:
    if not raw:
        raise bad_request("The request body is empty: send a JSON object.", code="invalid_json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.", code="invalid_json")
    # Counting brackets runs at memory speed; only a body with that many of them is walked.
    if raw.count(b"[") + raw.count(b"{") > MAX_NESTING and _nested_deeper_than(body, MAX_NESTING):
        raise bad_request(f"The request body nests more than {MAX_NESTING} levels deep.", code="invalid_json")
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
        if b'filename="' not in upload.head:
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
            await _call_once(plan, channel, body, out, progress)
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
    adapter = adapter_for(channel.type)
    session = session or http.session()
    upstream_stream = plan.stream or (adapter.stream_only and plan.mode != "embeddings")
    if adapter.transport == "websocket":
        body = await adapter.prepare(channel=channel, mode=plan.mode, body=body, session=session)
        ctx = RequestContext(channel=channel, mode=plan.mode, body=body, stream=True, client_model=plan.model)
        batches = _ws_batches(adapter.exchange(ctx, session=session))
        await (_stream if plan.stream else _gather)(plan, batches, out, progress)
        return
    if plan.mode in adapter.complete_modes:  # more than one request makes the answer (a task to poll)
        try:
            body = await adapter.prepare(channel=channel, mode=plan.mode, body=body, session=session)
            ctx = RequestContext(channel=channel, mode=plan.mode, body=body, stream=False, client_model=plan.model,
                                 upload=plan.upload)
            data, usage = await adapter.complete(ctx, session=session)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise UpstreamError(status=502, message=f"Could not talk to the upstream: {type(exc).__name__}",
                                code="do_request_failed", retryable=True) from None
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
        raise UpstreamError(status=502, message=f"Could not reach the upstream: {type(exc).__name__}",
                            code="do_request_failed", retryable=True) from None
    try:
        if response.status != 200:
            raise adapter.parse_error(ctx, status=response.status, body=await _read_error(response),
                                      headers=response.headers)
        decoder = adapter.stream_decoder(ctx) if upstream_stream else None
        if decoder is not None and decoder.accepts(response.headers.get("Content-Type", "")):
            await (_stream if plan.stream else _gather)(plan, _http_batches(decoder, response), out, progress)
            return
        if plan.mode == "speech":
            await _pass_through(response, out, progress)
            return
        try:
            raw = await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise UpstreamError(status=502, message=f"The upstream answer was cut off: {type(exc).__name__}",
                                code="do_request_failed", retryable=True) from None
        data, usage = adapter.parse_response(ctx, body=raw)
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


async def _pass_through(response: aiohttp.ClientResponse, out: Responder, progress: Progress) -> None:
    """Audio goes to the client as it arrives, in the upstream's own format."""
    content_type = response.headers.get("Content-Type", "application/octet-stream").encode()
    await out.start(200, [(b"content-type", content_type)])
    progress.started = True
    async for chunk in response.content.iter_any():
        await out.write(chunk)
    await out.finish()


async def _read_error(response: aiohttp.ClientResponse) -> bytes:
    try:
        return await response.content.read(64 * 1024)
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return b""


async def _http_batches(decoder: StreamDecoder, response: aiohttp.ClientResponse):
    """The decoder's events, a batch per network read."""
    frames = Frames(decoder)
    async for chunk in response.content.iter_any():
        yield frames.feed(chunk)
    yield frames.close()


async def _ws_batches(events):
    """A WebSocket vendor's events (adapter.exchange), a batch each; connection failures may fail over."""
    try:
        async for event in events:
            yield [event]
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise UpstreamError(status=502, message=f"Could not talk to the upstream: {type(exc).__name__}",
                            code="do_request_failed", retryable=True) from None


def _interrupted(plan: Plan, exc: Exception) -> bytes:
    message = exc.message if isinstance(exc, UpstreamError) else f"The upstream stream broke off: {type(exc).__name__}"
    error = {"error": {"message": f"{message} (request id: {plan.request_id})",
                       "type": "upstream_error", "code": "stream_interrupted", "param": None}}
    return b"data: " + orjson.dumps(error) + b"\n\n"


async def _stream(plan: Plan, batches, out: Responder, progress: Progress) -> None:
    """Events to the client as server-sent events, as they arrive."""

    def emit(decoded_events) -> bytes:
        chunks: list[bytes] = []
        for decoded in decoded_events:
            if decoded.done:
                continue  # the relay ends every stream with its own [DONE]
            if decoded.usage is not None:
                progress.usage = decoded.usage
            if decoded.text:
                progress.texts.append(decoded.text)
            if decoded.data is None or (decoded.usage_only and not plan.client_wants_usage):
                continue
            chunks.append(b"data: " + decoded.data + b"\n\n")
        return b"".join(chunks)

    try:
        async for events in batches:
            payload = emit(events)
            if payload:
                if not progress.started:
                    # Headers wait for the first words, so a vendor that fails before any can still fail over.
                    await out.start(200, SSE_HEADERS)
                    progress.started = True
                await out.write(payload)
    except (aiohttp.ClientError, asyncio.TimeoutError, UpstreamError) as exc:
        if not progress.started:
            raise
        await out.finish(_interrupted(plan, exc) + DONE)
        return
    if not progress.started:
        await out.start(200, SSE_HEADERS)
        progress.started = True
    await out.finish(DONE)


async def _gather(plan: Plan, batches, out: Responder, progress: Progress) -> None:
    """A stream-only vendor answering a client that did not ask to stream: one JSON answer."""
    gatherer = ChunkGatherer(mode=plan.mode, model=plan.model, request_id=plan.request_id)
    try:
        async for events in batches:
            for decoded in events:
                if decoded.usage is not None:
                    progress.usage = decoded.usage
                if decoded.text:
                    progress.texts.append(decoded.text)
                if decoded.data is not None and not decoded.done:
                    gatherer.add(decoded.data)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise UpstreamError(status=502, message=f"The upstream answer was cut off: {type(exc).__name__}",
                            code="do_request_failed", retryable=True) from None
    progress.started = True
    await out.start(200, JSON_HEADERS)
    await out.finish(gatherer.result(progress.usage))


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
