"""What a client protocol's codec does, and the responder that puts it between the relay and the client.

The relay speaks OpenAI chat inside: adapters turn every vendor into it, and the pipeline (quote, reserve,
failover, settle) knows nothing else. A codec is the edge for a client of another protocol: it decodes the
client's request into the internal chat body, and its Translator turns what the relay would send an OpenAI
client (a chat.completion, or `data: {chunk}` frames ending with `data: [DONE]`) into the client's own
answer as it goes out. The OpenAI routes have no codec and no translator: their bytes go out untouched.

A channel whose vendor speaks the client's protocol itself gets the client's own request instead
(relay/upstream.py, Adapter.native_protocols), and its answer is already the client's: for that call the
translator steps aside (`pass_through`), and the decoded chat body serves only the price estimate and the
channels that do not speak the protocol.
"""

from __future__ import annotations

import logging
from typing import Protocol

import orjson

from relay.codecs import chat_answer
from relay.errors import RelayError
from relay.streaming import DONE, SSE_HEADERS, SSEParser

log = logging.getLogger("oneapi.relay")


class StreamEncoder(Protocol):
    """One streamed answer in the client's events; each method returns the bytes to send (maybe none).
    An encoder whose stream is not server-sent events says its `content_type` (bytes) as an attribute."""

    def feed(self, chunk: dict) -> bytes: ...  # one internal chat.completion.chunk
    def fail(self, err: RelayError) -> bytes: ...  # the stream breaks off with an error
    def close(self) -> bytes: ...  # the stream ended as it should


class Codec(Protocol):
    protocol: str  # the client protocol's name ("anthropic")
    # The client's headers forwarded with its request to a channel that speaks the protocol natively.
    native_headers: tuple[str, ...]

    def decode(self, body: dict) -> dict:
        """The client's request as the internal chat body; a RelayError (400) for a shape it cannot take."""

    def encode_answer(self, answer: dict, *, model: str, request_id: str, request: dict | None = None) -> bytes:
        """A whole chat.completion as the client's answer; `model` is the name the client asked for, `request`
        the client's own request (a protocol whose answer echoes it, or names its tools apart, reads it)."""

    def stream_encoder(self, *, model: str, request_id: str, request: dict | None = None) -> StreamEncoder: ...

    def decode_count(self, body: dict) -> dict:
        """A token-count request as the chat body whose prompt is counted."""

    def decode_native(self, body: dict, *, counting: bool = False) -> tuple[dict, RelayError | None]:
        """As decode (decode_count when `counting`), for a request that may go as it is to a channel that speaks
        the protocol: what chat cannot carry is left out of the chat body, and the refusal a conversion would
        give comes with it (a channel that does not speak the protocol refuses the request with it)."""

    def encode_count(self, tokens: int) -> bytes:
        """The answer to a token-count request."""

    def render_error(self, err: RelayError, request_id: str) -> tuple[int, bytes]:
        """The status and body of an error answer in the client's shape."""

    def stream_error(self, err: RelayError, request_id: str) -> bytes:
        """The event that ends a started stream with an error, in the client's protocol."""

    # Optional: `native_framer()`, for a protocol with more than one framing of a stream (Gemini's SSE or JSON
    # array): what writes a native channel's SSE in the framing the client asked for (a NativeFramer), or None
    # when the client gets the SSE as it is. A codec without it always does.


class NativeFramer(Protocol):
    """A native stream's SSE rewritten in another framing as it goes; `content_type` (bytes) is the framing's."""

    def feed(self, data: bytes) -> bytes: ...
    def close(self) -> bytes: ...


def _stream_headers(headers: list[tuple[bytes, bytes]], encoder: StreamEncoder) -> list[tuple[bytes, bytes]]:
    """A stream's headers, with the type of the encoder's stream when it is not server-sent events."""
    content_type = getattr(encoder, "content_type", None)
    if content_type is None:
        return headers
    return [(name, content_type if name == b"content-type" else value) for name, value in headers]


def _sse(events: list) -> bytes:
    return b"".join(b"data: " + event.data + b"\n\n" for event in events)


class Translator:
    """A Responder (relay/upstream.py) that translates the relay's OpenAI answer for `out` as it goes.

    A whole answer is encoded before anything goes out, so an answer that cannot be translated is the
    client's error with its own status, never an error body under a 200 already sent."""

    __slots__ = ("out", "codec", "model", "request_id", "request", "stream", "encoder", "parser", "native", "framer",
                 "held", "parts")

    def __init__(self, out, codec: Codec, *, model: str, request_id: str):
        self.out = out
        self.codec = codec
        self.model = model
        self.request_id = request_id
        self.request: dict | None = None  # the client's request, as it came (set once it is read)
        self.stream = False  # whether the client asked for a stream (set with the request)
        self.encoder: StreamEncoder | None = None
        self.parser: SSEParser | None = None
        # The channel called speaks the client's protocol: its answer is already the client's (relay/upstream.py
        # says so before each call, so a failover between both kinds of channel is translated as it should be).
        self.native = False
        self.framer: NativeFramer | None = None
        self.held: tuple[int, list[tuple[bytes, bytes]]] | None = None  # a whole answer's status and headers
        self.parts: list[bytes] = []  # a whole answer's bytes written before its end

    @property
    def started(self) -> bool:
        return self.out.started or self.held is not None

    def pass_through(self, native: bool) -> None:
        self.native = native
        self.framer = None

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        streamed = any(name == b"content-type" and value.startswith(b"text/event-stream") for name, value in headers)
        if self.native:
            framing = getattr(self.codec, "native_framer", None) if streamed else None
            self.framer = framing() if framing is not None else None
            if self.framer is not None:
                content_type = self.framer.content_type
                headers = [(name, content_type if name == b"content-type" else value) for name, value in headers]
            await self.out.start(status, headers)
            return
        if streamed:
            self.encoder = self._stream_encoder()
            self.parser = SSEParser()
            await self.out.start(status, _stream_headers(headers, self.encoder))
        else:
            self.held = (status, headers)

    async def write(self, data: bytes) -> None:
        if self.framer is not None:
            data = self.framer.feed(data)
            if data:
                await self.out.write(data)
            return
        if self.native:
            await self.out.write(data)
            return
        if self.encoder is None:
            self.parts.append(data)
            return
        events = self._chunks(self._frames(data))
        if events:
            await self.out.write(events)

    async def write_events(self, events: list) -> None:
        """The relay's stream events (relay/upstream.py), as `write` would get them written out."""
        if self.encoder is None or self.native:
            await self.write(_sse(events))
            return
        data = self._chunks(events)
        if data:
            await self.out.write(data)

    async def finish_events(self, events: list) -> None:
        if self.encoder is None or self.native:
            await self.finish(_sse(events) + DONE)
            return
        await self.out.finish(self._chunks(events) + self._chunks(data for _, data in self.parser.close())
                              + self.encoder.close())

    async def finish(self, data: bytes = b"") -> None:
        if self.native:
            await self.out.finish(data if self.framer is None else self.framer.feed(data) + self.framer.close())
            return
        if self.encoder is None:
            status, headers = self.held or (200, [])
            try:
                status, headers, body = self._whole(status, headers, b"".join(self.parts) + data)
            except Exception:
                # A fault of the codec's: logged to be fixed, and answered as the client's error (the caller
                # renders it), since nothing has gone out yet.
                log.exception("the answer could not be translated for the %s client (request id %s)",
                              self.codec.protocol, self.request_id)
                raise RelayError(500, "The gateway failed to translate the upstream's answer.",
                                 type="one_api_panic", code="internal_error") from None
            self.held = None
            await self.out.start(status, headers)
            await self.out.finish(body)
            return
        events = self._chunks(self._frames(data)) + self._chunks(data for _, data in self.parser.close())
        await self.out.finish(events + self.encoder.close())

    def _whole(self, status: int, headers: list, data: bytes) -> tuple[int, list, bytes]:
        """A whole answer in the client's protocol: its answer, or its events when it asked for a stream and
        the upstream answered whole all the same (as some vendors do)."""
        if not data:
            return status, headers, b""
        answer = orjson.loads(data)
        if self.stream:
            encoder = self._stream_encoder()
            events = encoder.feed(chat_answer.as_chunk(answer)) + encoder.close()
            return status, _stream_headers(SSE_HEADERS, encoder), events
        return status, headers, self.codec.encode_answer(answer, model=self.model, request_id=self.request_id,
                                                         request=self.request)

    def _stream_encoder(self) -> StreamEncoder:
        return self.codec.stream_encoder(model=self.model, request_id=self.request_id, request=self.request)

    async def error(self, err: RelayError) -> None:
        """Answer a failure: the client's error, or on a started stream, its error event."""
        if self.out.finished:
            return
        if self.native and self.out.started:  # a native stream broken off by the gateway itself
            await self.out.finish(self.codec.stream_error(err, self.request_id))
            return
        if self.encoder is not None:
            await self.out.finish(self.encoder.fail(err))
            return
        self.held = None
        status, payload = self.codec.render_error(err, self.request_id)
        if self.out.started:
            await self.out.finish(payload)
        else:
            await self.out.json(status, payload, err.headers)

    def _frames(self, data: bytes):
        """The data of each event in `data`. The relay writes whole one-line `data: ...` events (relay/upstream.py),
        so they are cut apart here without the line-by-line parser, which reads anything else."""
        if data.startswith(b"data: ") and data.endswith(b"\n\n") and self.parser.idle:
            body = data[:-2]
            gaps = body.count(b"\n\ndata: ")
            # Every line break is one of the gaps between events, each followed by the next event's data.
            if body.count(b"\n") == 2 * gaps:
                return [frame[6:] for frame in body.split(b"\n\n")]
        return [data for _, data in self.parser.feed(data)]

    def _chunks(self, events) -> bytes:
        """The client's bytes for the relay's events: each the data of a `data:` line, or a StreamEvent, whose
        chunk the decoder may have parsed already."""
        encoder = self.encoder
        parts: list[bytes] = []
        for event in events:
            if isinstance(event, bytes):
                chunk, data = None, event
            else:
                chunk, data = event.chunk, event.data
            if chunk is None:
                if data == b"[DONE]":
                    continue
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    continue  # a vendor's malformed event: an OpenAI client skips it too
                if not isinstance(chunk, dict):
                    continue
            error = chunk.get("error")
            if error is not None and not chunk.get("choices"):
                # The relay's or the vendor's error chunk ends the stream for the client.
                # Its message as a vendor wrote it may be of any type, or none.
                message = chat_answer.text(error.get("message")) if isinstance(error, dict) else str(error)
                parts.append(encoder.fail(RelayError(502, message or "The upstream stream failed.")))
                continue
            parts.append(encoder.feed(chunk))
        return b"".join(parts)
