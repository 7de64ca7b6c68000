"""The AWS event stream binary framing (`application/vnd.amazon.eventstream`).

Bedrock's InvokeModelWithResponseStream answers in this format rather than SSE
(https://docs.aws.amazon.com/transcribe/latest/dg/event-stream.html describes the frame):

    total length (4, big-endian) | headers length (4) | prelude CRC32 (4)
    headers: name length (1) | name | value type (1) | value
    payload | message CRC32 (4, over everything before it)

The parser takes bytes as they arrive, in any chunking, and returns complete messages.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass

PRELUDE = 12  # total length, headers length, prelude CRC
MINIMUM = PRELUDE + 4  # an empty message: prelude and the message CRC
# AWS caps a payload at 16 MiB and headers at 128 KiB: a larger length means the framing is lost.
MAXIMUM = 16 * 1024 * 1024 + 128 * 1024 + MINIMUM

STRING = 7


class EventStreamError(ValueError):
    """The bytes are not a valid event stream: a CRC mismatch or an impossible length."""


@dataclass(frozen=True, slots=True)
class Message:
    headers: dict[str, object]
    payload: bytes


def _crc(data: bytes, start: int = 0) -> int:
    return zlib.crc32(data, start) & 0xFFFFFFFF


def encode_message(headers: dict[str, str | bytes], payload: bytes) -> bytes:
    """One frame with string (type 7) or byte-array (type 6) headers: what a test server needs."""
    raw = b""
    for name, value in headers.items():
        key = name.encode()
        kind, data = (STRING, value.encode()) if isinstance(value, str) else (6, bytes(value))
        raw += struct.pack(">B", len(key)) + key + struct.pack(">BH", kind, len(data)) + data
    total = MINIMUM + len(raw) + len(payload)
    prelude = struct.pack(">II", total, len(raw))
    prelude += struct.pack(">I", _crc(prelude))
    message = prelude + raw + payload
    return message + struct.pack(">I", _crc(message))


def decode_headers(raw: bytes) -> dict[str, object]:
    headers: dict[str, object] = {}
    i = 0
    try:
        while i < len(raw):
            size = raw[i]
            name = raw[i + 1:i + 1 + size].decode()
            i += 1 + size
            kind = raw[i]
            i += 1
            if kind in (0, 1):  # booleans carry no value bytes
                value: object = kind == 0
            elif kind in (2, 3, 4, 5, 8):  # byte, short, int, long, timestamp (ms)
                fmt = {2: ">b", 3: ">h", 4: ">i", 5: ">q", 8: ">q"}[kind]
                value = struct.unpack_from(fmt, raw, i)[0]
                i += struct.calcsize(fmt)
            elif kind in (6, STRING):
                (length,) = struct.unpack_from(">H", raw, i)
                data = raw[i + 2:i + 2 + length]
                if len(data) != length:
                    raise EventStreamError("an event stream header runs past its block")
                value = data.decode("utf-8", "replace") if kind == STRING else data
                i += 2 + length
            elif kind == 9:
                value = uuid.UUID(bytes=raw[i:i + 16])
                i += 16
            else:
                raise EventStreamError(f"unknown event stream header type {kind}")
            headers[name] = value
    except (IndexError, struct.error, ValueError) as exc:
        if isinstance(exc, EventStreamError):
            raise
        raise EventStreamError("malformed event stream headers") from None
    return headers


class EventStreamParser:
    """Feed raw bytes; get complete messages. A bad CRC or length raises EventStreamError: the frame
    boundaries are lost, so nothing after it can be trusted."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of an incomplete message still waiting for the rest (non-zero when a stream is cut)."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[Message]:
        self._buffer += chunk
        messages: list[Message] = []
        while len(self._buffer) >= PRELUDE:
            total, headers_length, prelude_crc = struct.unpack_from(">III", self._buffer)
            if _crc(bytes(self._buffer[:8])) != prelude_crc:
                raise EventStreamError("event stream prelude CRC mismatch")
            if not MINIMUM <= total <= MAXIMUM or headers_length > total - MINIMUM:
                raise EventStreamError(f"impossible event stream message length {total}")
            if len(self._buffer) < total:
                break
            frame = bytes(self._buffer[:total])
            del self._buffer[:total]
            (message_crc,) = struct.unpack_from(">I", frame, total - 4)
            if _crc(frame[:-4]) != message_crc:
                raise EventStreamError("event stream message CRC mismatch")
            headers = decode_headers(frame[PRELUDE:PRELUDE + headers_length])
            messages.append(Message(headers, frame[PRELUDE + headers_length:-4]))
        return messages
