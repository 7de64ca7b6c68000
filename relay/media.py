"""The rest of OpenAI's surface: images, speech, transcription, moderation, rerank.

What differs from chat lives here: how each body is checked (what it costs is
billing/pricing.py's to say), and what is wrong with an audio upload answered as
the relay's error (the form itself is read by providers/adapters/uploads.py:
the adapters read it too, so it may not import the relay).
"""

from __future__ import annotations

import orjson

from billing.pricing import DALLE_SIZES, DEFAULT_IMAGE_SIZE
from oneapi_site.lib.modes import TRANSCRIPT_MODES
from providers.adapters import uploads
from providers.adapters.multipart import FormError
from relay.errors import RelayError, bad_request

ROUTES = {
    "/v1/images/generations": "images",
    "/v1/audio/speech": "speech",
    "/v1/audio/transcriptions": "transcriptions",
    "/v1/audio/translations": "translations",
    "/v1/moderations": "moderations",
    "/v1/rerank": "rerank",
}
# Answers passed through with the upstream's own content type (audio, subtitles, plain text).
RAW_MODES = ("speech", *TRANSCRIPT_MODES)
DEFAULT_MODELS = {"images": "dall-e-2", "speech": "tts-1", "transcriptions": "whisper-1",
                  "translations": "whisper-1", "moderations": "text-moderation-stable"}
MAX_SPEECH_INPUT = 4096  # OpenAI's own limit, in characters


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
        size = body.get("size", DEFAULT_IMAGE_SIZE)
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


def images_delivered(answer: bytes) -> int | None:
    """How many images an images answer holds (None when it is not the shape OpenAI documents)."""
    try:
        payload = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return None
    data = payload.get("data") if isinstance(payload, dict) else None
    return len(data) if isinstance(data, list) else None


def form_refused(err: FormError) -> RelayError:
    """The relay's answer to a bad form, with the status, message, code and param the form reader gave."""
    return RelayError(err.status, err.message, type=err.type, code=err.code, param=err.param)


async def read_upload(receive, content_type: str) -> uploads.Upload:
    """The client's upload, read as far as routing it needs (uploads.read_upload); a bad form is refused
    with the relay's error."""
    try:
        return await uploads.read_upload(receive, content_type)
    except FormError as err:
        raise form_refused(err) from None
