"""A multipart/form-data body (RFC 7578) split into its parts as the bytes arrive.

The relay must know every field of an audio upload that it routes, prices or answers by, and the
upstream must receive exactly those: so the form is read part by part, by its delimiters, never by
searching the whole body for names (a file may hold any bytes, a field may come after the file).
Nothing is held beyond the part headers and a delimiter's length of lookahead.

It lives below the relay, with the adapters, because an adapter that re-sends the audio in its own shape
reads the form too (uploads.read_form); so its refusals are FormErrors, which the relay answers as its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_PART_HEADERS = 16 * 1024
_NAME = re.compile(rb';\s*name="([^"]*)"', re.I)
_FILENAME = re.compile(rb';\s*filename="([^"]*)"', re.I)
_CONTENT_TYPE = re.compile(rb"^content-type:\s*([^\r\n;]+)", re.I | re.M)


@dataclass(frozen=True)
class Part:
    """One part's headers: `start` is where its delimiter line begins in the body, `value_start` its
    first content byte."""

    name: str
    filename: str | None
    headers: bytes
    start: int
    value_start: int

    @property
    def is_file(self) -> bool:
        return self.filename is not None

    @property
    def content_type(self) -> str:
        """The part's own Content-Type, "" when it has none."""
        found = _CONTENT_TYPE.search(self.headers)
        return found.group(1).decode("latin-1").strip() if found else ""


class FormError(Exception):
    """What is wrong with the client's form, in the terms of OpenAI's error object. Raised below the relay
    (which may not be imported here); the relay answers it as its own error (relay.media.form_refused)."""

    def __init__(self, status: int, message: str, *, code: str, param: str | None = None,
                 type: str = "invalid_request_error"):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type


def malformed(why: str) -> FormError:
    return FormError(400, f"The multipart form is malformed: {why}.", code="invalid_multipart")


def _part(headers: bytes, *, start: int, value_start: int) -> Part:
    disposition = next((line for line in headers.split(b"\r\n")
                        if line.lower().startswith(b"content-disposition:")), None)
    name = _NAME.search(disposition) if disposition else None
    if name is None:
        raise malformed("a part has no Content-Disposition name")
    filename = _FILENAME.search(disposition)
    return Part(name=name.group(1).decode("utf-8", "replace"),
                filename=filename.group(1).decode("utf-8", "replace") if filename else None,
                headers=headers, start=start, value_start=value_start)


class FormScanner:
    """Feed the body's bytes in order; each feed returns what they completed, as events:
    ("part", Part) when a part's headers are whole; ("data", bytes) for its content, in pieces
    (a file's only while `file_data` is true); ("end", offset) where its content ends; ("done", None)
    at the closing delimiter. A malformed form is a 400."""

    def __init__(self, boundary: bytes) -> None:
        self.delimiter = b"\r\n--" + boundary
        self.buffer = bytearray(b"\r\n")  # the first delimiter begins the body, with no line break before it
        self.offset = -2  # where buffer[0] is in the body
        self.state = "preamble"
        self.part: Part | None = None
        self.file_data = True
        self._start = 0  # where the delimiter line of the part being read begins

    def _drop(self, count: int) -> None:
        del self.buffer[:count]
        self.offset += count

    def feed(self, data: bytes) -> list[tuple[str, object]]:
        self.buffer += data
        events: list[tuple[str, object]] = []
        while True:
            if self.state in ("preamble", "body"):
                at = self.buffer.find(self.delimiter)
                content = self.state == "body" and (self.file_data or not self.part.is_file)
                if at < 0:
                    # Keep what could be the start of a delimiter split across reads.
                    cut = max(0, len(self.buffer) - len(self.delimiter) + 1)
                    if content and cut:
                        events.append(("data", bytes(memoryview(self.buffer)[:cut])))
                    self._drop(cut)
                    return events
                if self.state == "body":
                    if content and at:
                        events.append(("data", bytes(memoryview(self.buffer)[:at])))
                    events.append(("end", self.offset + at))
                self._drop(at + 2)  # the line break belongs to the content before; the delimiter line starts here
                start = self.offset
                self._drop(len(self.delimiter) - 2)
                self.state, self.part = "delimiter", None
                self._start = start
            if self.state == "delimiter":
                if len(self.buffer) < 2:
                    return events
                if self.buffer[:2] == b"--":
                    self.state = "epilogue"
                    events.append(("done", None))
                    continue
                eol = self.buffer.find(b"\r\n")
                if eol < 0:
                    if len(self.buffer) > 256:
                        raise malformed("a delimiter line does not end")
                    return events
                if self.buffer[:eol].strip(b" \t"):  # RFC 2046 allows only blanks after a boundary
                    raise malformed("a delimiter is followed by other text")
                self._drop(eol + 2)
                self.state = "headers"
            if self.state == "headers":
                if self.buffer[:2] == b"\r\n":
                    end, skip = 0, 2  # a part without headers
                else:
                    end, skip = self.buffer.find(b"\r\n\r\n"), 4
                if end < 0:
                    if len(self.buffer) > MAX_PART_HEADERS:
                        raise malformed("a part's headers are too long")
                    return events
                headers = bytes(self.buffer[:end])
                self._drop(end + skip)
                self.part = _part(headers, start=self._start, value_start=self.offset)
                events.append(("part", self.part))
                self.state = "body"
                continue
            if self.state == "epilogue":
                self._drop(len(self.buffer))
                return events

    @property
    def done(self) -> bool:
        return self.state == "epilogue"
