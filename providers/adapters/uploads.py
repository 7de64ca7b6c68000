"""The client's multipart audio upload, as the relay routes it and as an adapter re-sends it.

The relay reads an upload just far enough to route it (read_upload): the file streams on to the upstream;
when the model comes after it, the form is read whole first, spooled to disk, never held whole in memory.
An adapter whose vendor takes the audio's bytes rather than a form reads it whole (read_form). Both live
here, below the relay, because the adapters may not import the relay: what is wrong with a form is a
FormError, which the relay answers as its own error (relay.media.form_refused).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass

from providers.adapters.multipart import FormError, FormScanner, Part, malformed

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?')
HEAD_LIMIT = 256 * 1024  # the form's fields, all together
# The fields the relay or an adapter routes, prices or answers by. They reach the upstream exactly as the
# relay read them: a field sent twice is refused, and while the file streams through (the model came
# before it) one of these after the file is refused too, as the relay has decided without it.
DECIDING_FIELDS = ("model", "response_format", "stream")
SPOOL_IN_MEMORY = 1024 * 1024  # a form read whole goes to a temporary file past this
SPOOL_CHUNK = 64 * 1024
MAX_AUDIO_FILE = 25 * 1024 * 1024  # OpenAI's limit for one audio file


def file_too_large(limit: int) -> FormError:
    return FormError(413, f"The audio file is larger than {limit // (1024 * 1024)} MB.", code="file_too_large",
                     param="file")


class _Shared:
    """What an upload and its relabelled copies (with_model) share: why its stream was refused."""

    refusal: FormError | None = None


class Upload:
    """A multipart upload: `head` (the form up to, and into, its file part), then the rest as it comes.

    read_upload makes one of two. When the model comes before the file, as every SDK sends it, the body
    streams through as the client sent it, watched part by part. When it comes after (curl -F file=@a.mp3
    -F model=..., as OpenAI's docs show), the form is read whole before it is routed, and is sent on with
    its fields before the file."""

    def __init__(self, content_type: str, head: bytes, fields: dict[str, str], rest: AsyncIterator[bytes], *,
                 model_at: tuple[int, int] | None = None, parts_at: int = 0, shared: _Shared | None = None,
                 has_file: bool = True):
        self.content_type = content_type
        self.head = head
        self.fields = fields
        self.has_file = has_file  # whether the form has a file part (read_upload stops at it)
        self._rest = rest
        self.model_at = model_at  # where the model field's value is in `head`, when the form has one
        self.parts_at = parts_at  # where the first part begins in `head`
        self._shared = shared or _Shared()

    @property
    def refusal(self) -> FormError | None:
        """Why the stream was cut off on its way upstream (a field it must not hold, the client gone)."""
        return self._shared.refusal

    def with_model(self, model: str) -> Upload:
        """The same upload asking for `model` (the channel's mapping; the default model when the form
        named none): the one model field the upstream receives."""
        value = model.encode()
        if self.model_at is not None:
            start, end = self.model_at
            if self.head[start:end] == value:
                return self
            head = self.head[:start] + value + self.head[end:]
        else:
            field = b"--" + self.boundary + b'\r\nContent-Disposition: form-data; name="model"\r\n\r\n'
            start = self.parts_at + len(field)
            head = self.head[:self.parts_at] + field + value + b"\r\n" + self.head[self.parts_at:]
        return Upload(self.content_type, head, {**self.fields, "model": model}, self._rest,
                      model_at=(start, start + len(value)), parts_at=self.parts_at, shared=self._shared,
                      has_file=self.has_file)

    @property
    def boundary(self) -> bytes:
        return _BOUNDARY.search(self.content_type).group(1).encode()

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self.head
        async for chunk in self._rest:
            yield chunk


class _FormReader:
    """The parts of an upload as they arrive: the fields read, and refused when sent twice; the file
    spooled when the form is read whole, else only watched. With `stream_file` false the form is always
    read whole (for read_form), its file bounded by `file_limit` (MAX_AUDIO_FILE when None)."""

    def __init__(self, boundary: bytes, *, stream_file: bool = True, file_limit: int | None = None) -> None:
        self.boundary = boundary
        self.stream_file = stream_file
        self.file_limit = file_limit
        self.scanner = FormScanner(boundary)
        self.fields: dict[str, str] = {}
        self.parts: list[tuple[Part, bytes]] = []  # every field, in order, with its value
        self.file: Part | None = None
        self.streaming = False  # decided at the file: whether the model came before it
        self.spool: tempfile.SpooledTemporaryFile | None = None
        self.parts_at: int | None = None
        self.model_at: tuple[int, int] | None = None
        self._names: set[str] = set()
        self._part: Part | None = None
        self._value = bytearray()
        self._field_bytes = self._file_bytes = 0

    def feed(self, chunk: bytes) -> None:
        for kind, value in self.scanner.feed(chunk):
            if kind == "part":
                self._start(value)
            elif kind == "data":
                self._take(value)
            elif kind == "end":
                self._end(value)

    def _start(self, part: Part) -> None:
        if self.parts_at is None:
            self.parts_at = part.start
        if part.is_file and self.file is not None:
            raise FormError(400, "Send one file per request.", code="duplicate_field", param=part.name)
        # Arrays (`timestamp_granularities[]`) are sent as one field per value.
        if part.name in self._names and not part.name.endswith("[]"):
            raise FormError(400, f"The form has more than one `{part.name}` field.", code="duplicate_field",
                            param=part.name)
        if self.streaming and not part.is_file and part.name in DECIDING_FIELDS:
            raise FormError(400, f"The form's `{part.name}` field comes after the file: send the fields first.",
                            code="field_after_file", param=part.name)
        self._names.add(part.name)
        self._part = part
        self._value.clear()
        if part.is_file:
            self.file = part
            self.streaming = self.stream_file and "model" in self.fields
            if self.streaming:
                self.scanner.file_data = False  # the file streams on as it came; only its end is looked for
            else:
                # Blocking writes, but to the page cache, a network read's worth at a time.
                self.spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)

    def _take(self, data: bytes) -> None:
        if self._part.is_file:
            if self.spool is not None:
                self._file_bytes += len(data)
                limit = self.file_limit or MAX_AUDIO_FILE
                if self._file_bytes > limit:
                    raise file_too_large(limit)
                self.spool.write(data)
        elif not self.streaming:  # fields after a streamed file pass through unread
            self._field_bytes += len(data)
            if self._field_bytes > HEAD_LIMIT:
                raise FormError(413, f"The form's fields are larger than {HEAD_LIMIT // 1024} KB.",
                                code="fields_too_large")
            self._value += data

    def _end(self, offset: int) -> None:
        part, self._part = self._part, None
        if part.is_file or self.streaming:  # the file itself, or a field after a streamed file: not read
            return
        value = bytes(self._value)
        self.parts.append((part, value))
        if not part.name.endswith("[]"):
            self.fields[part.name] = value.decode("utf-8", "replace")
        if part.name == "model":
            self.model_at = (part.value_start, offset)

    def rebuilt(self) -> tuple[bytes, tuple[int, int] | None]:
        """A form read whole, its fields first: the head to send, and where the model's value is in it."""
        head = bytearray()
        model_at = None
        for part, value in self.parts:
            head += b"--" + self.boundary + b"\r\n" + part.headers + b"\r\n\r\n"
            if part.name == "model":
                model_at = (len(head), len(head) + len(value))
            head += value + b"\r\n"
        head += b"--" + self.boundary + b"\r\n" + self.file.headers + b"\r\n\r\n"
        return bytes(head), model_at

    async def spooled(self) -> AsyncIterator[bytes]:
        """The file read whole, then the form's closing delimiter."""
        spool = self.spool
        try:
            spool.seek(0)
            while chunk := spool.read(SPOOL_CHUNK):
                yield chunk
            yield b"\r\n--" + self.boundary + b"--\r\n"
        finally:
            spool.close()


async def _next_chunk(receive) -> tuple[bytes, bool]:
    message = await receive()
    if message["type"] == "http.disconnect":
        raise FormError(499, "The client went away during the upload.", code="client_closed", type="one_api_error")
    return message.get("body", b""), message.get("more_body", False)


async def read_upload(receive, content_type: str) -> Upload:
    """Read the form up to its file part and parse the fields before it (model, ...); when the model is
    not among them, read the whole form first. A field sent twice is a 400: what the relay checks, routes
    and prices is what the upstream receives."""
    match = _BOUNDARY.search(content_type or "")
    if not (content_type or "").startswith("multipart/form-data") or not match:
        raise FormError(400, "Send the audio as multipart/form-data with a `file` field.", code="invalid_multipart")
    form = _FormReader(match.group(1).encode())
    head = bytearray()
    more = True
    while more and form.file is None:
        chunk, more = await _next_chunk(receive)
        head += chunk
        form.feed(chunk)
        if form.file is None and len(head) > HEAD_LIMIT:
            raise FormError(413, f"The form's fields before the file are larger than {HEAD_LIMIT // 1024} KB.",
                            code="fields_too_large")
    form.fields.setdefault("model", "")
    if form.file is None:  # no file: the relay refuses it as it stands
        return Upload(content_type, bytes(head), form.fields, _nothing(), has_file=False)
    if form.streaming:
        shared = _Shared()

        async def rest() -> AsyncIterator[bytes]:
            nonlocal more
            try:
                while more:
                    chunk, more = await _next_chunk(receive)
                    form.feed(chunk)  # before it goes on: a refused field never reaches the upstream whole
                    yield chunk
            except FormError as err:
                shared.refusal = err  # the upstream sees the connection cut; the client gets this
                raise

        return Upload(content_type, bytes(head), form.fields, rest(), model_at=form.model_at,
                      parts_at=form.parts_at or 0, shared=shared)
    del head
    try:
        while more and not form.scanner.done:  # what follows the closing delimiter means nothing
            chunk, more = await _next_chunk(receive)
            form.feed(chunk)
        if not form.scanner.done:
            raise malformed("it ends before its closing delimiter")
    except BaseException:
        form.spool.close()
        raise
    rebuilt, model_at = form.rebuilt()
    return Upload(content_type, rebuilt, form.fields, form.spooled(), model_at=model_at)


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield  # pragma: no cover - makes this an async generator


@dataclass(frozen=True)
class Form:
    """A multipart upload read whole: its plain fields (those after the file too) and its file."""

    fields: dict[str, str]
    file: bytes
    filename: str
    file_type: str  # the file part's Content-Type, "" when the client gave none


async def read_form(upload: Upload, *, limit: int | None = None) -> Form:
    """The whole upload, for a vendor that takes the audio's bytes instead of a form, read part by part
    as read_upload reads it. The file is held in memory, so it is read only up to `limit` bytes
    (MAX_AUDIO_FILE), else 413."""
    form = _FormReader(upload.boundary, stream_file=False, file_limit=limit)
    try:
        async for chunk in upload.chunks():
            form.feed(chunk)
        if form.file is None:
            raise FormError(400, "`file` is required: send the audio as a multipart file field.",
                            code="invalid_request", param="file")
        if not form.scanner.done:
            raise malformed("it ends before its closing delimiter")
        form.spool.seek(0)
        data = form.spool.read()
    finally:
        if form.spool is not None:
            form.spool.close()
    return Form(form.fields, data, form.file.filename or "", form.file.content_type)
