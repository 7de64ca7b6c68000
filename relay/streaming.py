"""Server-sent events: split an upstream byte stream into events without buffering the answer."""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson

SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
DONE = b"data: [DONE]\n\n"


class SSEParser:
    """Feed raw bytes as they arrive; get back complete (event, data) pairs.

    Multi-line `data:` fields are joined with newlines, as the SSE spec says;
    comments (lines starting with a colon) are returned with event b":".
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._event = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> Iterator[tuple[bytes, bytes]]:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            yield from self._line(line.rstrip(b"\r"))

    @property
    def idle(self) -> bool:
        """Whether nothing of an event is pending (what comes next starts a new one)."""
        return not self._buffer and not self._data and not self._event

    def close(self) -> Iterator[tuple[bytes, bytes]]:
        """The stream ended: a last event without its blank line still counts."""
        if self._buffer:
            yield from self._line(self._buffer.rstrip(b"\r"))
            self._buffer = b""
        yield from self._line(b"")

    def _line(self, line: bytes) -> Iterator[tuple[bytes, bytes]]:
        if not line:
            if self._data:
                yield self._event, b"\n".join(self._data)
            self._event, self._data = b"", []
            return
        if line[0:1] == b":":
            yield b":", line
            return
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value


class LineParser:
    """Newline-delimited JSON streams (Ollama and others): each non-empty line is one event."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> Iterator[tuple[bytes, bytes]]:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            line = line.strip()
            if line:
                yield b"", line

    def close(self) -> Iterator[tuple[bytes, bytes]]:
        line, self._buffer = self._buffer.strip(), b""
        if line:
            yield b"", line


class ChunkGatherer:
    """Folds OpenAI stream chunks back into one chat.completion (or text_completion) answer."""

    def __init__(self, *, mode: str, model: str, request_id: str) -> None:
        self.mode = mode
        self.model = model
        self.id = f"chatcmpl-{request_id}"
        self.created = int(time.time())
        self.content: dict[int, list[str]] = {}
        self.finish: dict[int, str | None] = {}
        self.tool_calls: dict[int, dict[int, dict]] = {}

    def add(self, data: bytes) -> None:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(chunk, dict):
            return
        self.id = chunk.get("id") or self.id
        self.model = chunk.get("model") or self.model
        self.created = chunk.get("created") or self.created
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            delta = choice.get("delta") or {}
            piece = delta.get("content") if self.mode == "chat" else choice.get("text")
            if isinstance(piece, str):
                self.content.setdefault(index, []).append(piece)
            if choice.get("finish_reason"):
                self.finish[index] = choice["finish_reason"]
            for call in delta.get("tool_calls") or ():
                slot = self.tool_calls.setdefault(index, {}).setdefault(call.get("index", 0), {
                    "id": call.get("id"), "type": "function", "function": {"name": "", "arguments": ""}})
                if call.get("id"):
                    slot["id"] = call["id"]
                fn = call.get("function") or {}
                slot["function"]["name"] += fn.get("name") or ""
                slot["function"]["arguments"] += fn.get("arguments") or ""

    def result(self, usage) -> bytes:
        indexes = sorted(set(self.content) | set(self.finish) | set(self.tool_calls)) or [0]
        choices = []
        for i in indexes:
            text = "".join(self.content.get(i, []))
            if self.mode == "chat":
                message: dict = {"role": "assistant", "content": text}
                calls = self.tool_calls.get(i)
                if calls:
                    message["tool_calls"] = [calls[k] for k in sorted(calls)]
                choices.append({"index": i, "message": message, "logprobs": None,
                                "finish_reason": self.finish.get(i, "stop")})
            else:
                choices.append({"index": i, "text": text, "logprobs": None,
                                "finish_reason": self.finish.get(i, "stop")})
        answer = {"id": self.id, "object": "chat.completion" if self.mode == "chat" else "text_completion",
                  "created": self.created, "model": self.model, "choices": choices}
        if usage is not None:
            answer["usage"] = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                               "total_tokens": usage.prompt_tokens + usage.completion_tokens}
        return orjson.dumps(answer)


class Frames:
    """Bytes from the upstream to the decoder's events, by the decoder's framing.

    "sse" and "ndjson" are split here; "raw" hands the bytes to `decoder.feed_bytes`
    for binary protocols (AWS's event stream).
    """

    def __init__(self, decoder) -> None:
        self.decoder = decoder
        self.parser = {"sse": SSEParser, "ndjson": LineParser}.get(decoder.framing, lambda: None)()

    def feed(self, chunk: bytes) -> list:
        if self.parser is None:
            return self.decoder.feed_bytes(chunk)
        events = []
        for event, data in self.parser.feed(chunk):
            if event != b":":  # keep-alive comments: our own stream keeps the connection busy enough
                events.extend(self.decoder.feed(event, data))
        return events

    def close(self) -> list:
        events = []
        if self.parser is not None:
            for event, data in self.parser.close():
                if event != b":":
                    events.extend(self.decoder.feed(event, data))
        events.extend(self.decoder.close())
        return events
