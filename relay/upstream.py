"""One call to one channel: the adapter and the transport, and nothing of billing or health.

`call_channel` sends the client's request to a channel and the answer to a responder as it comes, and
returns what the answer held (usage, words, images) for whoever pays for it. The pipeline calls it in
its failover loop, then settles the bill and tells the channel's health; the channel test calls it with
a responder that keeps the answer (relay/probe.py).

This is the boundary where upstream text enters the gateway: every failure leaves as an UpstreamError
with the channel's credentials masked (providers/masking.py), so clients, logs, health and channel
tests all get masked text.
"""

from __future__ import annotations

import dataclasses
import logging
import traceback
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson

from providers import masking
from providers.adapters import adapter_for, image_budget
from providers.adapters.base import (
    NETWORK_ERRORS,
    Adapter,
    ChannelInfo,
    EventAnswer,
    RequestContext,
    StreamDecoder,
    UpstreamError,
    Usage,
    WholeAnswer,
    network_failure,
    read_timeout,
)
from providers.adapters.multipart import FormError
from providers.adapters.uploads import Upload
from relay import http, media, native_fallback
from relay.errors import RelayError, bad_request
from relay.streaming import DONE, SSE_HEADERS, ChunkGatherer, Frames, SSEParser

log = logging.getLogger("oneapi.relay")

JSON_HEADERS = [(b"content-type", b"application/json")]
# What reading a vendor's bytes raises when they are not in the shape its adapter expects.
SHAPE_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError)

# orjson reads 1024 levels deep but writes only 255, and the adapters write the client's body again for the
# vendor (an adapter's converter may also recurse past Python's limit). Not checked up front, which cost
# every request two scans and often a whole dump: the vendor's request that cannot be written is refused
# as the client's bad JSON when the client's body nests deeper than DEEP_BODY (adapters add a few levels
# of their own, never dozens; below that it is this gateway's fault, a 500).
WRITE_NESTING = 255
DEEP_BODY = 200
TOO_DEEP = (orjson.JSONEncodeError, RecursionError)


class Responder(Protocol):
    """Where an answer goes: the client's connection (relay/asgi.py), or the channel test's capture.

    A responder with `write_events(events)` and `finish_events(events)` (a codec's Translator) gets a translated
    stream's StreamEvents in place of their `data:` bytes, [DONE] left implied."""

    started: bool

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None: ...
    async def write(self, data: bytes) -> None: ...
    async def finish(self, data: bytes = b"") -> None: ...


@dataclass(frozen=True, slots=True)
class NativeRequest:
    """A request as the client sent it in a protocol other than OpenAI's, for a channel that speaks it: the
    responder of such a call (relay/codecs/base.Translator) has `pass_through(bool)`, to step aside for it."""

    protocol: str  # the codec's name for it ("anthropic")
    body: dict = field(repr=False)  # the client's JSON, untouched (the model is mapped per channel)
    headers: tuple[tuple[str, str], ...] = ()  # the client's headers of that protocol, to forward
    # Why the request cannot be converted to chat (a block only the protocol carries), when it cannot: it goes
    # only to channels that speak the protocol.
    unconvertible: RelayError | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """What to ask of a channel, as the client asked it; each channel's model mapping and system prompt
    are applied when it is called."""

    mode: str
    model: str  # the name the client asked for
    body: dict = field(repr=False)
    stream: bool = False
    client_wants_usage: bool = False
    request_id: str = ""
    upload: Upload | None = field(default=None, repr=False)  # a multipart audio upload, streamed (never replayed)
    # The client's own request, when it came in another protocol: it goes as it is to a channel that speaks
    # that protocol (`body`, its decoding into chat, goes to the others).
    native: NativeRequest | None = field(default=None, repr=False)


@dataclass
class Outcome:
    """What a call has produced so far: what a bill needs, even when the client leaves mid-answer.

    A call that fails before its answer starts leaves it as it was (usage, words and images come
    with the answer's start), so one outcome may follow a request through failover."""

    channel: ChannelInfo | None = None  # the channel called last
    usage: Usage | None = None
    texts: list[str] = field(default_factory=list)
    started: bool = False
    images: int | None = None  # how many images the answer holds, when it is an images answer
    # The upstream failed after the answer started (a break, an error event): the client keeps what it
    # got and is billed for it, and the channel's health counts the failure.
    interrupted: UpstreamError | None = None
    prompt_reset: bool = False  # the channel's system prompt replaced the client's
    # The id under which the vendor stored a native answer (a Response made with `store`), "" for none.
    answer_id: str = ""
    # The vendor's count of the prompt, said before its full usage (Anthropic's message_start): a stream cut
    # before that usage pays it for the prompt and counts only the answer locally.
    prompt_usage: Usage | None = None


async def call_channel(*, session: aiohttp.ClientSession, channel: ChannelInfo, call: Call, out: Responder,
                       outcome: Outcome | None = None) -> Outcome:
    """Send `call` to `channel` and its answer to `out`; return what the answer held.

    A failure before the answer starts is raised as an UpstreamError (masked; `retryable` says whether
    another channel may answer) or a RelayError (the client's doing, or a fault of the gateway's own,
    logged here). Once the answer has started a failure ends it instead (an error event on a stream) and
    is kept in `outcome.interrupted`. Pass `outcome` to read it while the call runs: the pipeline settles
    a stream from it when the client leaves."""
    if outcome is None:
        outcome = Outcome()
    outcome.channel = channel
    outcome.prompt_usage = None  # a channel that failed before its answer said it of its own prompt
    session = http.routed(session, channel)  # through the channel's proxy, or RELAY_PROXY, when set
    adapter = adapter_for(channel.type)
    native = call.native
    if native is not None:
        # Decided per call, so failover may go from a channel that speaks the client's protocol to one that
        # does not, and back: the codec's translator steps aside only for the first.
        model = channel.model_mapping.get(call.model, call.model)
        # A request only the protocol carries goes natively even to a channel on the bridge: nothing else answers it.
        lately_bridged = native.unconvertible is None and native_fallback.bridged(channel.id, native.protocol)
        if lately_bridged or not adapter.speaks_natively(native.protocol, mode=call.mode, model=model,
                                                         channel=channel):
            if native.unconvertible is not None:
                # Not this channel's failure, nor quite the client's: another channel may take the request as it is.
                refusal = native.unconvertible
                raise UpstreamError(status=refusal.status, message=refusal.message, type=refusal.type,
                                    code=refusal.code, param=refusal.param, retryable=True, local=True)
            native = None
        out.pass_through(native is not None)
    if native is not None:
        body = {**native.body, "model": channel.model_mapping.get(call.model, call.model)}
        outcome.prompt_reset = bool(channel.system_prompt) and call.mode == "chat"
    else:
        body, outcome.prompt_reset = channel_body(call, channel)
    try:
        async with image_budget.held_for_call():  # what the call inlines is held until it ends
            try:
                await _exchange(call, adapter, channel, body, out, outcome, session, native)
            except UpstreamError as err:
                if native is None or call.mode != "chat" or outcome.started or not native_fallback.falls_back(
                        err, channel=channel, protocol=native.protocol,
                        convertible=native.unconvertible is None):
                    raise
                # The channel has no such endpoint: the same request, converted, on the same channel.
                native_fallback.remember(channel, err.status)
                native = None
                out.pass_through(False)
                body, outcome.prompt_reset = channel_body(call, channel)
                await _exchange(call, adapter, channel, body, out, outcome, session)
    except UpstreamError as err:
        err = masking.mask_error(err, adapter.secrets(channel))
        if not outcome.started:
            raise err from None
        outcome.interrupted = err
        await out.finish(_interrupted(call, err) + DONE if call.stream else b"")
    except RelayError:
        raise
    except FormError as err:  # the client's form, read by an adapter or cut off on its way upstream
        raise media.form_refused(err) from None
    except Exception as exc:
        _refuse_if_too_deep(call, exc)  # writing the vendor's request (in the adapter's open) over a deep body
        # A fault in this gateway's own code on the call path. Logged here, masked, because the traceback
        # may hold what the upstream sent; the client gets OpenAI's error as for any other fault.
        trace = masking.mask_text("".join(traceback.format_exception(exc)), adapter.secrets(channel))
        log.error("relay failure on channel #%s (request id %s)\n%s", channel.id, call.request_id, trace.rstrip())
        raise RelayError(500, "The gateway failed to handle this request.", type="one_api_panic",
                         code="internal_error") from None
    return outcome


def channel_body(call: Call, channel: ChannelInfo) -> tuple[dict, bool]:
    """The body for this channel: mapped model, the channel's system prompt, usage asked for in streams;
    and whether the system prompt replaced the client's."""
    body = dict(call.body)
    body["model"] = channel.model_mapping.get(call.model, call.model)
    prompt_reset = False
    if channel.system_prompt and call.mode == "chat":
        messages = list(body["messages"])
        if messages and isinstance(messages[0], dict) and messages[0].get("role") == "system":
            messages[0] = {**messages[0], "content": channel.system_prompt}
        else:
            messages.insert(0, {"role": "system", "content": channel.system_prompt})
        body["messages"] = messages
        prompt_reset = True
    if call.stream:
        stream_options = body.get("stream_options") if isinstance(body.get("stream_options"), dict) else {}
        body["stream_options"] = {**stream_options, "include_usage": True}
    return body, prompt_reset


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


def _refuse_if_too_deep(call: Call, exc: BaseException) -> None:
    """Raise the client's 400 when `exc` is the vendor's request failing to be written over the client's
    deep body; return otherwise (the caller handles `exc` as it would any other)."""
    if isinstance(exc, TOO_DEEP) and (nests_deeper(call.body, DEEP_BODY) or (
            call.native is not None and nests_deeper(call.native.body, DEEP_BODY))):
        raise bad_request(f"The request body is nested too deep: the request to the upstream would be nested "
                          f"deeper than {WRITE_NESTING} levels.", code="invalid_json") from None


def _unreadable(adapter: Adapter, exc: Exception, channel: ChannelInfo) -> UpstreamError:
    """An answer the adapter could not read (a shape it did not expect): a retryable 502, and one log line
    (where it failed, for whoever maintains the adapter), never a traceback."""
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}" if frame else ""
    log.warning("channel #%s (%s): could not read the upstream's answer: %s%s", channel.id, adapter.label,
                type(exc).__name__, where)
    return UpstreamError(status=502, message=f"{adapter.label} answered with something this gateway could not read.",
                         code="bad_response_body", retryable=True)


async def _exchange(call: Call, adapter: Adapter, channel: ChannelInfo, body: dict, out: Responder,
                    outcome: Outcome, session: aiohttp.ClientSession, native: NativeRequest | None = None) -> None:
    """The adapter opens the call (adapter.open: by default one HTTP request); its answer goes to `out` as
    what came back: an HTTP response read with the adapter's pure hooks, a whole answer, or events."""
    completes = call.mode in adapter.complete_modes and native is None
    # Whether the upstream is asked to stream: a stream-only vendor is, and gathered for the client.
    streams = not completes and (call.stream or (adapter.stream_only and call.mode != "embeddings" and not native))
    timeout = read_timeout(session)
    # One context per call: it carries the request's facts to the answer's conversion.
    ctx = RequestContext(channel=channel, mode=call.mode, body=body, stream=streams, client_model=call.model,
                         upload=call.upload)
    if native is not None:
        ctx = dataclasses.replace(ctx, protocol=native.protocol, headers=native.headers)
    try:
        opened = await adapter.open(ctx, session=session)
    except NETWORK_ERRORS as exc:
        if call.upload is not None and call.upload.refusal is not None:
            raise call.upload.refusal from None  # the form was cut off on its way: the client's doing
        raise network_failure(exc, read_timeout=timeout) from None
    except SHAPE_ERRORS as exc:
        if not completes:
            raise  # building the request failed: the gateway's fault (call_channel)
        _refuse_if_too_deep(call, exc)  # an `open` that answers whole writes the vendor's requests too
        raise _unreadable(adapter, exc, channel) from None
    if isinstance(opened, EventAnswer):
        batches = _event_batches(call, adapter, channel, opened.events, timeout)
        await (_stream if call.stream else _gather)(call, batches, out, outcome, channel)
    elif isinstance(opened, WholeAnswer):
        await _answer(call, adapter, opened.body, opened.usage, out, outcome,
                      [(b"content-type", opened.content_type.encode())])
    else:
        receive = _receive if native is None else _receive_native
        try:
            await receive(call, adapter, opened.ctx, opened.response, out, outcome, timeout)
        finally:
            opened.response.release()


async def _receive(call: Call, adapter: Adapter, ctx: RequestContext, response: aiohttp.ClientResponse,
                   out: Responder, outcome: Outcome, timeout: float | None) -> None:
    """The answer to one HTTP request, to `out`."""
    if response.status != 200:
        raise adapter.parse_error(ctx, status=response.status, body=await _read_error(response),
                                  headers=response.headers)
    decoder = adapter.stream_decoder(ctx) if ctx.stream else None
    if decoder is not None and decoder.accepts(response.headers.get("Content-Type", "")):
        batches = _http_batches(adapter, ctx.channel, decoder, _received(response, timeout))
        await (_stream if call.stream else _gather)(call, batches, out, outcome, ctx.channel)
        return
    if call.mode == "speech":
        await _pass_through(response, out, outcome, timeout)
        return
    raw = b"".join([chunk async for chunk in _received(response, timeout)])
    try:
        data, usage = adapter.parse_response(ctx, body=raw)
    except SHAPE_ERRORS as exc:
        raise _unreadable(adapter, exc, ctx.channel) from None
    headers = JSON_HEADERS
    if call.mode in media.RAW_MODES:  # subtitles and plain text keep their own type
        headers = [(b"content-type", response.headers.get("Content-Type", "application/json").encode())]
    await _answer(call, adapter, data, usage, out, outcome, headers)


async def _receive_native(call: Call, adapter: Adapter, ctx: RequestContext, response: aiohttp.ClientResponse,
                          out: Responder, outcome: Outcome, timeout: float | None) -> None:
    """A native call's answer to `out` as the vendor sent it, read only for its bill."""
    if response.status != 200:
        raise adapter.parse_error(ctx, status=response.status, body=await _read_error(response),
                                  headers=response.headers)
    content_type = response.headers.get("Content-Type", "application/json")
    if ctx.stream and not content_type.startswith("application/json"):
        await _native_stream(call, adapter, ctx, _received(response, timeout), out, outcome)
        return
    raw = b"".join([chunk async for chunk in _received(response, timeout)])
    try:
        usage, words = adapter.read_native_answer(ctx, body=raw)
    except SHAPE_ERRORS as exc:
        raise _unreadable(adapter, exc, ctx.channel) from None
    outcome.usage = usage
    if usage is None and words:
        outcome.texts.append(words)
    outcome.answer_id = adapter.native_answer_id(ctx, body=raw)
    outcome.started = True
    await out.start(200, [(b"content-type", content_type.encode())])
    await out.finish(raw)


async def _native_stream(call: Call, adapter: Adapter, ctx: RequestContext, chunks, out: Responder,
                         outcome: Outcome) -> None:
    """A native stream to the client as it arrives, held (as _stream holds) until the answer has begun."""
    stream = adapter.native_stream(ctx)
    parser = SSEParser() if stream.framing == "sse" else None
    held: list[bytes] = []
    reported: UpstreamError | None = None
    secrets: tuple[str, ...] | None = None

    def read(chunk: bytes) -> bytes:
        if parser is None:
            return stream.feed_bytes(chunk)
        for event, data in parser.feed(chunk):
            if event != b":":
                stream.read(event, data)
        return chunk

    try:
        async for chunk in chunks:
            try:
                data = read(chunk)
            except SHAPE_ERRORS as exc:
                raise _unreadable(adapter, exc, ctx.channel) from None
            if stream.error is not None and reported is None:
                if not outcome.started and not stream.begun:
                    raise stream.error  # masked by call_channel; another channel may answer
                # The client gets the vendor's error event, and the channel's health hears of it: both masked.
                secrets = adapter.secrets(ctx.channel)
                reported = outcome.interrupted = masking.mask_error(stream.error, secrets)
            if secrets is not None:
                data = masking.mask_bytes(data, secrets)
            if not outcome.started:
                held.append(data)
                if not stream.begun:
                    continue
                data, held = b"".join(held), []
                # Headers wait for the answer to begin, so a vendor that fails before can still fail over.
                await out.start(200, SSE_HEADERS)
                outcome.started = True
            outcome.usage, outcome.prompt_usage = stream.usage, stream.prompt_usage
            outcome.texts.extend(stream.texts)
            stream.texts.clear()
            if data:
                await out.write(data)
        try:
            for event, data in parser.close() if parser is not None else ():
                if event != b":":
                    stream.read(event, data)
            rest = stream.close()
        except SHAPE_ERRORS as exc:
            raise _unreadable(adapter, exc, ctx.channel) from None
        if stream.error is not None and reported is None and not outcome.started and not stream.begun:
            raise stream.error
    except UpstreamError as err:
        if not outcome.started:
            raise
        # Broken off after the answer began: the client keeps what came, ended by the protocol's error event.
        outcome.interrupted = masking.mask_error(err, adapter.secrets(ctx.channel))
        outcome.usage, outcome.prompt_usage = stream.usage, stream.prompt_usage
        outcome.texts.extend(stream.texts)
        outcome.answer_id = stream.answer_id
        await out.finish(stream.interruption(f"{outcome.interrupted.message} (request id: {call.request_id})"))
        return
    if not outcome.started:
        if not stream.answered:
            raise _no_answer()
        await out.start(200, SSE_HEADERS)
        outcome.started = True
    outcome.usage, outcome.prompt_usage = stream.usage, stream.prompt_usage
    outcome.texts.extend(stream.texts)
    outcome.answer_id = stream.answer_id
    await out.finish(b"".join(held) + rest)


async def call_stored(*, session: aiohttp.ClientSession, channel: ChannelInfo, method: str, path: str, query: str,
                      out: Responder) -> int:
    """A request about an answer `channel`'s vendor stored (retrieve, delete, list input items, cancel a stored
    Response: `path` is "{id}" and what is asked of it), its answer to `out` as the vendor sent it; returns the
    status. Nothing is billed. A vendor's refusal is raised as an UpstreamError, masked (the pipeline makes it
    the client's error); a network failure is the "upstream unreachable" 502."""
    adapter = adapter_for(channel.type)
    ctx = RequestContext(channel=channel, mode="stored", body={}, stream=False, client_model="")
    # The channel's headers go with it (a bodiless request: nothing for param_override).
    request = adapter.outgoing(ctx, adapter.build_stored_request(channel, method=method, path=path, query=query))
    session = http.routed(session, channel)
    timeout = read_timeout(session)
    try:
        async with session.request(request.method, request.url, headers=request.headers) as response:
            if response.status >= 300:
                raise masking.mask_error(adapter.parse_error(ctx, status=response.status,
                                                             body=await _read_error(response),
                                                             headers=response.headers), adapter.secrets(channel))
            content_type = response.headers.get("Content-Type", "application/json").encode()
            await out.start(response.status, [(b"content-type", content_type)])
            async for chunk in _received(response, timeout):  # a background Response may be streamed again
                await out.write(chunk)
            await out.finish()
            return response.status
    except NETWORK_ERRORS as exc:
        raise network_failure(exc, read_timeout=timeout) from None


async def _received(response: aiohttp.ClientResponse, timeout: float | None):
    """The answer's bytes as they arrive; a break, or a silence past the read timeout, is the answer cut
    off (a retryable 502 while nothing has reached the client)."""
    chunks = response.content.iter_any().__aiter__()
    while True:
        try:
            chunk = await chunks.__anext__()
        except StopAsyncIteration:
            return
        except NETWORK_ERRORS as exc:
            raise network_failure(exc, read_timeout=timeout, started=True) from None
        yield chunk


async def _answer(call: Call, adapter: Adapter, data: bytes, usage: Usage | None, out: Responder,
                  outcome: Outcome, headers: list[tuple[bytes, bytes]]) -> None:
    """A whole (not streamed) answer to the client, with what its bill needs."""
    outcome.usage = usage
    if call.mode == "images":
        outcome.images = media.images_delivered(data)
    elif usage is None and call.mode != "embeddings":
        outcome.texts.append(adapter.completion_text(mode=call.mode, body=data))
    outcome.started = True
    await out.start(200, headers)
    await out.finish(data)


async def _pass_through(response: aiohttp.ClientResponse, out: Responder, outcome: Outcome,
                        timeout: float | None) -> None:
    """Audio goes to the client as it arrives, in the upstream's own format."""
    content_type = response.headers.get("Content-Type", "application/octet-stream").encode()
    await out.start(200, [(b"content-type", content_type)])
    outcome.started = True
    async for chunk in _received(response, timeout):
        await out.write(chunk)
    await out.finish()


async def _read_error(response: aiohttp.ClientResponse) -> bytes:
    try:
        return await response.content.read(64 * 1024)
    except NETWORK_ERRORS:
        return b""


async def _http_batches(adapter: Adapter, channel: ChannelInfo, decoder: StreamDecoder, chunks):
    """The decoder's events, a batch per network read. A break, or an event the decoder cannot read, is
    an UpstreamError."""
    frames = Frames(decoder)
    async for chunk in chunks:
        try:
            batch = frames.feed(chunk)
        except SHAPE_ERRORS as exc:
            raise _unreadable(adapter, exc, channel) from None
        yield batch
    try:
        batch = frames.close()
    except SHAPE_ERRORS as exc:
        raise _unreadable(adapter, exc, channel) from None
    yield batch


async def _event_batches(call: Call, adapter: Adapter, channel: ChannelInfo, events, timeout: float | None):
    """An EventAnswer's events (a WebSocket vendor's), a batch each; connection failures may fail over."""
    started = False
    try:
        async for event in events:
            started = True
            yield [event]
    except NETWORK_ERRORS as exc:
        raise network_failure(exc, read_timeout=timeout, started=started) from None
    except SHAPE_ERRORS as exc:
        _refuse_if_too_deep(call, exc)  # the events' iterator writes its request frames as it goes
        raise _unreadable(adapter, exc, channel) from None


def _interrupted(call: Call, err: UpstreamError) -> bytes:
    error = {"error": {"message": f"{err.message} (request id: {call.request_id})",
                       "type": "upstream_error", "code": "stream_interrupted", "param": None}}
    return b"data: " + orjson.dumps(error) + b"\n\n"


def _no_answer() -> UpstreamError:
    return UpstreamError(status=502, message="The upstream answered 200, but its stream held no answer.",
                         code="bad_response_body", retryable=True)


async def _stream(call: Call, batches, out: Responder, outcome: Outcome, channel: ChannelInfo) -> None:
    """Events to the client as server-sent events, as they arrive.

    Nothing goes out before the first event with words, reasoning or usage, so until then the call may still fail
    over: a vendor's error event is raised, and a stream that ends without one event in the vendor's
    shape is a retryable 502. Events held till then (a role chunk, a malformed one) go out with it.
    A failure after that is raised too; call_channel ends the client's stream with an error event.
    """
    held: list = []
    answered = False  # an event in the vendor's shape came: an empty answer is still an answer
    secrets: tuple[str, ...] | None = None
    # A codec's translator takes the events themselves, so it reads the chunks the decoder parsed instead of
    # parsing the bytes again; every other responder gets the bytes.
    parsed = hasattr(out, "write_events")
    async for events in batches:
        chunks: list = []
        content = False
        for decoded in events:
            if decoded.done:
                continue  # the relay ends every stream with its own [DONE]
            if decoded.error is not None:
                if not outcome.started and not content:
                    raise decoded.error  # masked by call_channel, like any failure
                # The client keeps the vendor's error chunk and the channel's health hears of the error:
                # both are the vendor's text, so both are masked here, where they go out.
                if secrets is None:
                    secrets = adapter_for(channel.type).secrets(channel)
                outcome.interrupted = masking.mask_error(decoded.error, secrets)
                decoded = dataclasses.replace(decoded, data=masking.mask_bytes(decoded.data, secrets), chunk=None)
            elif not decoded.malformed:
                answered = True
            if decoded.usage is not None:
                outcome.usage = decoded.usage
                content = True
            if decoded.prompt_usage is not None:
                outcome.prompt_usage = decoded.prompt_usage  # not the answer's start: failover is still open
            if decoded.text:
                outcome.texts.append(decoded.text)
                content = True
            if decoded.reasoning:
                content = True  # the model thinks aloud: the answer has begun, though not its words
            if decoded.data is None or (decoded.usage_only and not call.client_wants_usage):
                continue
            chunks.append(decoded if parsed else b"data: " + decoded.data + b"\n\n")
        if not outcome.started:
            held.extend(chunks)
            if not content:
                continue
            chunks, held = held, []
            # Headers wait for the first words, so a vendor that fails before any can still fail over.
            await out.start(200, SSE_HEADERS)
            outcome.started = True
        if chunks:
            await (out.write_events(chunks) if parsed else out.write(b"".join(chunks)))
    if not outcome.started:
        if not answered:
            raise _no_answer()
        await out.start(200, SSE_HEADERS)
        outcome.started = True
    await (out.finish_events(held) if parsed else out.finish(b"".join(held) + DONE))


async def _gather(call: Call, batches, out: Responder, outcome: Outcome, channel: ChannelInfo) -> None:
    """A stream-only vendor answering a client that did not ask to stream: one JSON answer.

    What the stream says is kept here until it ends: a failure before then leaves `outcome` as it was,
    for the next channel. An error event before any words fails the call; after some, the answer so far
    is kept (the vendor has made it) and the channel's health hears of the error."""
    gatherer = ChunkGatherer(mode=call.mode, model=call.model, request_id=call.request_id)
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
        outcome.interrupted = masking.mask_error(interrupted, adapter_for(channel.type).secrets(channel))
    outcome.usage = usage
    outcome.texts.extend(texts)
    outcome.started = True
    await out.start(200, JSON_HEADERS)
    await out.finish(gatherer.result(usage))
