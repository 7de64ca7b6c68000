"""The rest of OpenAI's surface: images, speech, transcription, moderation, rerank.

What differs from chat lives here: how each body is checked, what a request
costs, and how an audio upload is read just far enough to route it (the file
itself streams to the upstream, never held whole in memory).
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import orjson

from relay.errors import RelayError, bad_request

ROUTES = {
    "/v1/images/generations": "images",
    "/v1/audio/speech": "speech",
    "/v1/audio/transcriptions": "transcriptions",
    "/v1/audio/translations": "translations",
    "/v1/moderations": "moderations",
    "/v1/rerank": "rerank",
}
UPLOAD_MODES = ("transcriptions", "translations")
# Answers passed through with the upstream's own content type (audio, subtitles, plain text).
RAW_MODES = ("speech", "transcriptions", "translations")
DEFAULT_MODELS = {"images": "dall-e-2", "speech": "tts-1", "transcriptions": "whisper-1",
                  "translations": "whisper-1", "moderations": "text-moderation-stable"}
MAX_SPEECH_INPUT = 4096  # OpenAI's own limit, in characters

DALLE_SIZES = {
    "dall-e-2": {"256x256": 1, "512x512": 1.125, "1024x1024": 1.25},
    "dall-e-3": {"1024x1024": 1, "1024x1792": 2, "1792x1024": 2},
}


def validate(mode: str, body: dict) -> None:
    """Refuse what the upstream would refuse, before any quota is held."""
    model = body.get("model")
    if mode == "images":
        if not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
            raise bad_request("`prompt` is required.", param="prompt")
        n = body.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 10:
            raise bad_request("`n` must be between 1 and 10.", param="n")
        if model == "dall-e-3" and n != 1:
            raise bad_request("dall-e-3 makes one image per request: `n` must be 1.", param="n")
        sizes = DALLE_SIZES.get(model)
        size = body.get("size", "1024x1024")
        if not isinstance(size, str):  # the price is looked up by it, for every image model
            raise bad_request("`size` must be a string such as 1024x1024.", param="size")
        if sizes is not None and size not in sizes:
            raise bad_request(f"`size` must be one of {', '.join(sizes)} for {model}.", param="size")
    elif mode == "speech":
        text = body.get("input")
        if not isinstance(text, str) or not text:
            raise bad_request("`input` is required.", param="input")
        if len(text) > MAX_SPEECH_INPUT:
            raise bad_request(f"`input` is longer than {MAX_SPEECH_INPUT} characters.", param="input")
        if not body.get("voice"):
            raise bad_request("`voice` is required.", param="voice")
    elif mode == "moderations":
        if body.get("input") in (None, "", []):
            raise bad_request("`input` is required.", param="input")
    elif mode == "rerank":
        if not isinstance(body.get("query"), str) or not body["query"]:
            raise bad_request("`query` is required.", param="query")
        if not isinstance(body.get("documents"), list) or not body["documents"]:
            raise bad_request("`documents` must be a non-empty array.", param="documents")


def _dec(value: float) -> Decimal:
    return Decimal(str(value))


def fixed_quota(mode: str, body: dict, *, model_ratio: float, group_ratio: float) -> int | None:
    """The cost known before the call (images by size and quality, speech by characters), else None."""
    if mode == "images":
        model = body.get("model")
        size_ratio = DALLE_SIZES.get(model, {}).get(body.get("size", "1024x1024"), 1)
        if model == "dall-e-3" and body.get("quality") == "hd":
            size_ratio *= 2 if body.get("size", "1024x1024") == "1024x1024" else 1.5
        # one-api's formula: ratio 1 is US$0.002 an image at the base size.
        per_image = int(_dec(model_ratio) * _dec(group_ratio) * _dec(size_ratio) * 1000)
        return per_image * body.get("n", 1)
    if mode == "speech":
        return math.ceil(len(body["input"]) * _dec(model_ratio) * _dec(group_ratio))
    return None


def images_delivered(answer: bytes) -> int | None:
    """How many images an images answer holds (None when it is not the shape OpenAI documents)."""
    try:
        payload = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return None
    data = payload.get("data") if isinstance(payload, dict) else None
    return len(data) if isinstance(data, list) else None


# --- Multipart uploads ---------------------------------------------------------

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?')
_FIELD = re.compile(rb'Content-Disposition:\s*form-data;\s*name="([^"]+)"(?:;\s*filename="[^"]*")?', re.I)
HEAD_LIMIT = 256 * 1024  # the small fields come before the file in every client we know


class Upload:
    """A multipart body read up to its first file part; the rest streams on untouched."""

    def __init__(self, content_type: str, head: bytes, fields: dict[str, str], rest: AsyncIterator[bytes]):
        self.content_type = content_type
        self.head = head
        self.fields = fields
        self._rest = rest

    def with_model(self, model: str) -> "Upload":
        """The same upload asking for another model (the channel's model mapping)."""
        old = self.fields.get("model", "")
        if model == old:
            return self
        pattern = re.compile(rb'(name="model"\r\n\r\n)' + re.escape(old.encode()) + rb"(\r\n)")
        head = pattern.sub(lambda m: m.group(1) + model.encode() + m.group(2), self.head, count=1)
        return Upload(self.content_type, head, {**self.fields, "model": model}, self._rest)

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self.head
        async for chunk in self._rest:
            yield chunk


async def read_upload(receive, content_type: str) -> Upload:
    """Read the form until its first file part and parse the plain fields before it (model, ...)."""
    match = _BOUNDARY.search(content_type or "")
    if not content_type.startswith("multipart/form-data") or not match:
        raise bad_request("Send the audio as multipart/form-data with a `file` field.", code="invalid_multipart")
    delimiter = b"--" + match.group(1).encode()
    head = b""
    more = True
    while more and len(head) < HEAD_LIMIT:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RelayError(499, "The client went away during the upload.", code="client_closed")
        head += message.get("body", b"")
        more = message.get("more_body", False)
        if b'filename="' in head:
            break
    fields: dict[str, str] = {}
    parts = head.split(delimiter)[1:]
    # A part is whole once the next delimiter follows it; the last one may still be arriving.
    for part in parts[:-1]:
        header, sep, value = part.partition(b"\r\n\r\n")
        field = _FIELD.search(header)
        if sep and field and b'filename="' not in header:
            fields[field.group(1).decode()] = value.removesuffix(b"\r\n").decode("utf-8", "replace")
    if "model" not in fields:
        fields["model"] = ""

    async def rest() -> AsyncIterator[bytes]:
        nonlocal more
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RelayError(499, "The client went away during the upload.", code="client_closed")
            more = message.get("more_body", False)
            yield message.get("body", b"")

    return Upload(content_type, head, fields, rest())


MAX_AUDIO_FILE = 25 * 1024 * 1024  # OpenAI's limit for one audio file
_FILENAME = re.compile(rb'filename="([^"]*)"')
_PART_TYPE = re.compile(rb"Content-Type:\s*([^\r\n;]+)", re.I)


@dataclass(frozen=True)
class Form:
    """A multipart upload read whole: its plain fields (those after the file too) and its file."""

    fields: dict[str, str]
    file: bytes
    filename: str
    file_type: str  # the file part's Content-Type, "" when the client gave none


async def read_form(upload: Upload, *, limit: int | None = None) -> Form:
    """The whole upload, for a vendor that takes the audio's bytes instead of a form. It is held in
    memory, so it is read only up to `limit` bytes of file (MAX_AUDIO_FILE) and room for the fields, else 413."""
    limit = limit or MAX_AUDIO_FILE
    too_large = RelayError(413, f"The audio file is larger than {limit // (1024 * 1024)} MB.",
                           type="invalid_request_error", code="file_too_large", param="file")
    buffer = bytearray()
    async for chunk in upload.chunks():
        buffer += chunk
        if len(buffer) > limit + HEAD_LIMIT:
            raise too_large
    body = bytes(buffer)
    del buffer
    delimiter = b"--" + _BOUNDARY.search(upload.content_type).group(1).encode()
    fields: dict[str, str] = {}
    file: tuple[bytes, str, str] | None = None
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):  # the closing delimiter
            break
        header, _, value = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        value = value.removesuffix(b"\r\n")
        field, filename = _FIELD.search(header), _FILENAME.search(header)
        if field is None:
            continue
        if filename is None:
            fields[field.group(1).decode()] = value.decode("utf-8", "replace")
        elif file is None:
            kind = _PART_TYPE.search(header)
            file = (value, filename.group(1).decode("utf-8", "replace"),
                    kind.group(1).decode("latin-1").strip() if kind else "")
    if file is None:
        raise bad_request("`file` is required: send the audio as a multipart file field.", param="file")
    if len(file[0]) > limit:
        raise too_large
    return Form(fields, *file)
