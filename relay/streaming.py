"""Server-sent events: split an upstream byte stream into events without buffering the answer."""

from __future__ import annotations

from collections.abc import Iterator

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
