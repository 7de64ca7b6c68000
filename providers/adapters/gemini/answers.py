"""Google Gemini: the native generateContent API (type 24) and its OpenAI-compatible endpoint (type 51).

Native API reference: https://ai.google.dev/api/generate-content and https://ai.google.dev/api/embeddings.
The request conversion lives in `gemini_convert.py`; this module holds the adapters, the answer
conversion and the stream decoder.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import secrets
import struct
import time
import wave
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from providers.adapters.base import (
    Adapter,
    ChannelInfo,
    RequestContext,
    StreamDecoder,
    StreamEvent,
    UpstreamError,
    UpstreamRequest,
    Usage,
    answer_object,
    check_answer,
    json_or_none,
    retryable_status,
)
from providers.adapters.gemini.convert import chat_request, embeddings_request, inline_remote_images, invalid
from providers.adapters.gemini.imagen import aspect_ratio, filtered_error, image_item, imagen_answer, imagen_request, is_imagen
from providers.adapters.openai import PATHS, OpenAIAdapter

DEFAULT_MODELS = (
    "gemini-3-pro-preview", "gemini-3-flash-preview",
    "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite",
    "gemini-2.0-flash", "gemini-2.0-flash-lite",
    "gemini-embedding-001", "text-embedding-004",
    "imagen-4.0-generate-001", "imagen-4.0-ultra-generate-001", "imagen-4.0-fast-generate-001",
    "gemini-2.5-flash-image", "gemini-2.5-flash-preview-tts", "gemini-2.5-pro-preview-tts",
)

FINISH_REASONS = {
    "STOP": "stop", "MAX_TOKENS": "length",
    "SAFETY": "content_filter", "RECITATION": "content_filter", "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter", "IMAGE_SAFETY": "content_filter",
}

# google.rpc.Code names Gemini puts in error.status (https://ai.google.dev/gemini-api/docs/troubleshooting).
RETRYABLE_STATUSES = {"RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED"}
REQUEST_STATUSES = {"INVALID_ARGUMENT", "FAILED_PRECONDITION", "NOT_FOUND", "OUT_OF_RANGE"}

def usage_from(metadata: Any) -> Usage | None:
    """usageMetadata: thinking tokens are billed as output, tool-use prompt tokens as input."""
    if not isinstance(metadata, dict):
        return None
    prompt = int(metadata.get("promptTokenCount") or 0) + int(metadata.get("toolUsePromptTokenCount") or 0)
    completion = int(metadata.get("candidatesTokenCount") or 0) + int(metadata.get("thoughtsTokenCount") or 0)
    return Usage(prompt_tokens=prompt, completion_tokens=completion)


def usage_json(usage: Usage, metadata: dict) -> dict:
    answer: dict[str, Any] = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                              "total_tokens": usage.total_tokens}
    if metadata.get("thoughtsTokenCount"):
        answer["completion_tokens_details"] = {"reasoning_tokens": int(metadata["thoughtsTokenCount"])}
    if metadata.get("cachedContentTokenCount"):
        answer["prompt_tokens_details"] = {"cached_tokens": int(metadata["cachedContentTokenCount"])}
    return answer


def new_call_id() -> str:
    # Gemini's functionCall has no id on most models: make one unique across turns, so a client that
    # keys tool results by id never sees two calls share one.
    return f"call_{secrets.token_hex(12)}"


def tool_call(part: dict, index: int) -> dict:
    call = part["functionCall"]
    answer: dict[str, Any] = {
        "index": index, "id": call.get("id") or new_call_id(), "type": "function",
        "function": {"name": call.get("name") or "", "arguments": orjson.dumps(call.get("args") or {}).decode()},
    }
    if part.get("thoughtSignature"):
        # Gemini 3 wants the signature back with the call; Google's own OpenAI endpoint carries it here.
        answer["extra_content"] = {"google": {"thought_signature": part["thoughtSignature"]}}
    return answer


def blocked_message(payload: dict) -> str | None:
    feedback = payload.get("promptFeedback")
    if payload.get("candidates") or not isinstance(feedback, dict) or not feedback.get("blockReason"):
        return None
    message = f"Gemini refused the prompt (blockReason {feedback['blockReason']})"
    if feedback.get("blockReasonMessage"):
        message += f": {feedback['blockReasonMessage']}"
    return message


def blocked_error(message: str) -> UpstreamError:
    body = {"message": message, "type": "invalid_request_error", "code": "content_filter", "param": None}
    return UpstreamError(status=400, message=message, type="invalid_request_error", code="content_filter",
                         error_body=body)


def candidate_choice(candidate: dict, position: int) -> dict:
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict] = []
    for part in (candidate.get("content") or {}).get("parts") or ():
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("functionCall"), dict):
            calls.append(tool_call(part, len(calls)))
        elif isinstance(part.get("text"), str):
            (thoughts if part.get("thought") else texts).append(part["text"])
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    if calls:
        message["tool_calls"] = [{k: v for k, v in call.items() if k != "index"} for call in calls]
    reason = candidate.get("finishReason")
    finish = "tool_calls" if calls else FINISH_REASONS.get(reason, "stop" if reason else None)
    return {"index": candidate.get("index", position), "message": message, "logprobs": None,
            "finish_reason": finish or "stop"}


def error_payload(payload: Any) -> dict | None:
    """Gemini's error object; the OpenAI-compatible endpoint wraps it in a one-item list."""
    if isinstance(payload, list) and payload and isinstance(payload[0], dict):
        payload = payload[0]
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        return payload["error"]
    return None


def gemini_error(status: int, body: bytes) -> UpstreamError | None:
    error = error_payload(json_or_none(body))
    if error is None or not error.get("message"):
        return None
    message = str(error["message"])
    grpc_status = str(error.get("status") or "")
    reasons = {d.get("reason") for d in error.get("details") or () if isinstance(d, dict)}
    bad_key = "API_KEY_INVALID" in reasons or "API key not valid" in message or "API key expired" in message
    # These take the channel out of rotation (providers/health.py): a dead or leaked key will not recover.
    if bad_key or grpc_status == "UNAUTHENTICATED":
        kind, code, retryable = "authentication_error", "invalid_api_key" if bad_key else "unauthenticated", False
    elif grpc_status == "PERMISSION_DENIED":
        kind, code, retryable = "permission_error", "permission_denied", False
    elif grpc_status in RETRYABLE_STATUSES:
        kind, code, retryable = "upstream_error", grpc_status.lower(), True
    elif grpc_status in REQUEST_STATUSES:
        kind, code, retryable = "invalid_request_error", grpc_status.lower(), False
    else:
        kind, code = "upstream_error", grpc_status.lower() or "bad_response_status_code"
        retryable = retryable_status(status)
    body_out = {"message": message, "type": kind, "code": code, "param": None}
    return UpstreamError(status=status, message=message, type=kind, code=code, retryable=retryable,
                         error_body=body_out)


class GeminiAdapter(Adapter):
    channel_type: ClassVar[int] = 24
    label: ClassVar[str] = "Google Gemini"
    default_base_url: ClassVar[str] = "https://generativelanguage.googleapis.com"
    config_fields: ClassVar[tuple[str, ...]] = ("api_version",)
    modes: ClassVar[tuple[str, ...]] = ("chat", "embeddings", "images", "speech")
    # Speech comes back as JSON holding base64 PCM, which this adapter turns into the audio the client
    # gets; the relay passes other vendors' speech through as it arrives.
    complete_modes: ClassVar[tuple[str, ...]] = ("speech",)
    default_models: ClassVar[tuple[str, ...]] = DEFAULT_MODELS
    # one-api defaults to v1 except for 1.5/2.0; today's models need v1beta for functions and
    # systemInstruction, so v1beta is the default and `api_version` the override.
    DEFAULT_API_VERSION: ClassVar[str] = "v1beta"

    async def prepare(self, *, channel: ChannelInfo, mode: str, body: dict, session) -> dict:
        if mode != "chat":
            return body
        return await inline_remote_images(body, session)

    def build_request(self, ctx: RequestContext) -> UpstreamRequest:
        channel = ctx.channel
        model = ctx.model.removeprefix("models/")
        version = (channel.config or {}).get("api_version") or self.DEFAULT_API_VERSION
        base = f"{(channel.base_url or self.default_base_url).rstrip('/')}/{version}/models/{model}"
        # The key goes in a header, never in the URL (`?key=`), so it cannot leak into access logs.
        headers = {"Content-Type": "application/json", "x-goog-api-key": channel.key}
        if ctx.mode == "embeddings":
            payload = embeddings_request(ctx.body, model)
            return UpstreamRequest("POST", f"{base}:batchEmbedContents", headers, orjson.dumps(payload))
        if ctx.mode == "images" and is_imagen(model):
            return UpstreamRequest("POST", f"{base}:predict", headers, orjson.dumps(imagen_request(ctx.body)))
        if ctx.mode == "images":
            return UpstreamRequest("POST", f"{base}:generateContent", headers, orjson.dumps(image_request(ctx.body)))
        if ctx.mode == "speech":
            return UpstreamRequest("POST", f"{base}:generateContent", headers, orjson.dumps(speech_request(ctx.body)))
        if ctx.mode != "chat":
            raise invalid("Gemini has no text-completions API; use /v1/chat/completions.", "unsupported_endpoint")
        payload = chat_request(ctx.body, model)
        if ctx.stream:
            headers["Accept"] = "text/event-stream"
            return UpstreamRequest("POST", f"{base}:streamGenerateContent?alt=sse", headers, orjson.dumps(payload))
        return UpstreamRequest("POST", f"{base}:generateContent", headers, orjson.dumps(payload))

    def parse_response(self, ctx: RequestContext, *, body: bytes) -> tuple[bytes, Usage | None]:
        payload = answer_object(body, "Gemini")
        if ctx.mode == "embeddings":
            check_answer(payload, "Gemini", "embeddings", what="embeddings")
        elif ctx.mode == "images" and is_imagen(ctx.model):
            check_answer(payload, "Imagen", "predictions", what="predictions")
        else:  # an answer has candidates, or says why it has none
            check_answer(payload, "Gemini", "candidates", "promptFeedback", what="a GenerateContentResponse")
        if ctx.mode == "embeddings":
            # A batchEmbedContents answer names neither the model nor the inputs, and the client's
            # `encoding_format` decides its shape: the request tells them.
            return embeddings_answer(payload, ctx.body), None  # Gemini reports no usage for embeddings
        if ctx.mode == "images" and is_imagen(ctx.model):
            return imagen_answer(payload, ctx.body), None  # priced per image: Imagen reports no usage
        if ctx.mode == "images":
            return image_answer(payload, ctx.body)
        if ctx.mode == "speech":
            return speech_answer(payload, ctx.body)
        message = blocked_message(payload)
        if message:
            raise blocked_error(message)
        usage = usage_from(payload.get("usageMetadata"))
        answer = {
            "id": f"chatcmpl-{payload.get('responseId') or secrets.token_hex(12)}",
            "object": "chat.completion", "created": int(time.time()),
            "model": payload.get("modelVersion") or ctx.model or "gemini",
            "choices": [candidate_choice(c, i) for i, c in enumerate(payload.get("candidates") or ())
                        if isinstance(c, dict)],
        }
        if usage is not None:
            answer["usage"] = usage_json(usage, payload["usageMetadata"])
        return orjson.dumps(answer), usage

    def answer_content_type(self, ctx: RequestContext) -> str:
        return SPEECH_FORMATS[speech_format(ctx.body)] if ctx.mode == "speech" else "application/json"

    def stream_decoder(self, ctx: RequestContext) -> StreamDecoder:
        return GeminiStreamDecoder(ctx.client_model)

    def parse_error(self, ctx: RequestContext, *, status: int, body: bytes,
                    headers: Mapping[str, str] | None = None) -> UpstreamError:
        return gemini_error(status, body) or super().parse_error(ctx, status=status, body=body, headers=headers)


def embeddings_answer(payload: dict, request: dict) -> bytes:
    """OpenAI's embeddings list from Gemini's, shaped by the request: its model, input and encoding."""
    data = []
    for index, item in enumerate(payload.get("embeddings") or ()):
        values = (item or {}).get("values") or []
        if request.get("encoding_format") == "base64":
            # OpenAI's base64 form: little-endian float32, which the official SDKs ask for by default.
            vector: Any = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        else:
            vector = values
        data.append({"object": "embedding", "index": index, "embedding": vector})
    answer: dict[str, Any] = {"object": "list", "data": data, "model": request.get("model") or "gemini-embedding"}
    if request.get("input") is not None:
        # What the relay bills (it counts the input locally); clients' SDKs expect the field.
        from relay import tokenizer

        tokens = tokenizer.count_input(request["input"], str(request.get("model") or ""))
        answer["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return orjson.dumps(answer)


# --- images and speech ---------------------------------------------------------------------------
# Imagen's `:predict` lives in imagen.py (Vertex AI shares it). Gemini's own image models and its
# speech models answer through generateContent, with the picture or the sound as inlineData parts:
# https://ai.google.dev/gemini-api/docs/image-generation and
# https://ai.google.dev/gemini-api/docs/speech-generation

# The aspect ratios Gemini's image models document (generationConfig.imageConfig.aspectRatio).
IMAGE_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
# Finish reasons that mean the image or the audio was withheld: the prompt's fault, not the channel's.
WITHHELD = {"SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT", "BLOCKLIST", "SPII",
            "RECITATION", "IMAGE_RECITATION"}


def image_request(body: dict) -> dict:
    if body.get("n", 1) != 1:
        raise invalid("Gemini's image models make one image per request: `n` must be 1.", "invalid_value", param="n")
    config: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"]}  # the 2.0 preview model wants both
    ratio = aspect_ratio(body.get("size"), IMAGE_RATIOS, "Gemini")
    if ratio:
        config["imageConfig"] = {"aspectRatio": ratio}
    return {"contents": [{"role": "user", "parts": [{"text": body.get("prompt")}]}], "generationConfig": config}


def inline_parts(payload: dict, kind: str) -> tuple[list[dict], list[str]]:
    """The first candidate's inlineData of one kind ("image/", "audio/") and its text, thoughts left out
    (Gemini 3's image models draft images as thoughts before the one they answer with)."""
    blobs: list[dict] = []
    texts: list[str] = []
    candidates = payload.get("candidates") or [{}]
    content = candidates[0].get("content") if isinstance(candidates[0], dict) else None
    for part in (content or {}).get("parts") or ():
        if not isinstance(part, dict) or part.get("thought"):
            continue
        blob = part.get("inlineData")
        if isinstance(blob, dict) and str(blob.get("mimeType") or "").startswith(kind) and blob.get("data"):
            blobs.append(blob)
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
    return blobs, texts


def withheld_error(payload: dict, what: str, texts: list[str]) -> UpstreamError:
    """An answer without the image or audio asked for, with whatever Gemini said about it."""
    message = blocked_message(payload)
    if message:
        return blocked_error(message)
    candidates = payload.get("candidates") or [{}]
    reason = str(candidates[0].get("finishReason") or "") if isinstance(candidates[0], dict) else ""
    said = " ".join(t.strip() for t in texts if t.strip())
    if reason in WITHHELD:
        return filtered_error([f"finishReason {reason}" + (f": {said}" if said else "")], "Gemini")
    detail = f"finishReason {reason or 'missing'}" + (f"; it said: {said[:300]}" if said else "")
    return UpstreamError(status=502, message=f"Gemini answered without {what} ({detail}).", code="bad_response_body",
                         retryable=False)


def image_answer(payload: dict, body: dict) -> tuple[bytes, Usage | None]:
    images, texts = inline_parts(payload, "image/")
    if not images:
        raise withheld_error(payload, "an image", texts)
    data = [image_item(str(blob["mimeType"]), str(blob["data"]), body) for blob in images]
    return orjson.dumps({"created": int(time.time()), "data": data}), usage_from(payload.get("usageMetadata"))


# OpenAI's voices as Gemini's prebuilt ones, each chosen by the character Google's voice list gives it
# (https://ai.google.dev/gemini-api/docs/speech-generation#voices). A Gemini voice name passes as it is.
OPENAI_VOICES = {
    "alloy": "Zephyr",  # bright
    "ash": "Orus",  # firm
    "ballad": "Algieba",  # smooth
    "coral": "Aoede",  # breezy
    "echo": "Charon",  # informative
    "fable": "Puck",  # upbeat
    "onyx": "Algenib",  # gravelly
    "nova": "Leda",  # youthful
    "sage": "Sadaltager",  # knowledgeable
    "shimmer": "Achernar",  # soft
    "verse": "Enceladus",  # breathy
    "marin": "Sulafat",  # warm
    "cedar": "Iapetus",  # clear
}
GEMINI_VOICES = (
    "Zephyr", "Puck", "Charon", "Kore", "Fenrir", "Leda", "Orus", "Aoede", "Callirrhoe", "Autonoe",
    "Enceladus", "Iapetus", "Umbriel", "Algieba", "Despina", "Erinome", "Algenib", "Rasalgethi", "Laomedeia",
    "Achernar", "Alnilam", "Schedar", "Gacrux", "Pulcherrima", "Achird", "Zubenelgenubi", "Vindemiatrix",
    "Sadachbia", "Sadaltager", "Sulafat",
)
_VOICES = {**{name.lower(): name for name in GEMINI_VOICES}, **OPENAI_VOICES}
# Gemini speaks 24 kHz 16-bit mono PCM only. OpenAI's `pcm` is exactly that, and `wav` is it behind a
# header; mp3, opus, aac and flac would need an encoder the gateway does not carry.
SPEECH_FORMATS = {"wav": "audio/wav", "pcm": "audio/pcm"}
# A client that names no format gets WAV rather than a refusal: OpenAI's default is mp3, but the SDKs
# send no format unless told, players read WAV as readily, and a refusal would break the simplest call.
DEFAULT_SPEECH_FORMAT = "wav"
PCM_RATE = 24000
_RATE = re.compile(r"rate=(\d+)")


def speech_format(body: dict) -> str:
    chosen = body.get("response_format") or DEFAULT_SPEECH_FORMAT
    if chosen not in SPEECH_FORMATS:
        raise invalid(f"Gemini speech comes as 24 kHz 16-bit mono PCM: `response_format` must be wav or pcm on "
                      f"this channel, not {chosen} (mp3, opus, aac and flac need an encoder the gateway does not "
                      f"have).", "unsupported_response_format", param="response_format")
    return chosen


def speech_voice(voice: Any) -> str:
    name = _VOICES.get(voice.strip().lower()) if isinstance(voice, str) else None
    if name is None:
        raise invalid(f"`voice` {voice!s} is neither an OpenAI voice ({', '.join(OPENAI_VOICES)}) nor one of "
                      f"Gemini's ({', '.join(GEMINI_VOICES)}).", "invalid_voice", param="voice")
    return name


def speech_request(body: dict) -> dict:
    speech_format(body)  # refused here, before Gemini is paid for audio the client could not use
    # `speed` has no Gemini counterpart (the text itself may ask for a pace) and is not sent.
    config = {"responseModalities": ["AUDIO"],
              "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": speech_voice(body.get("voice"))}}}}
    return {"contents": [{"parts": [{"text": body.get("input")}]}], "generationConfig": config}


def speech_answer(payload: dict, body: dict) -> tuple[bytes, Usage | None]:
    """The audio parts (base64 of `audio/L16;codec=pcm;rate=24000`) as the format asked for. Despite the
    L16 name (big-endian in RFC 2586) the samples are little-endian: Google's own example writes them
    into a WAV file unchanged."""
    blobs, texts = inline_parts(payload, "audio/")
    if not blobs:
        raise withheld_error(payload, "audio", texts)
    try:
        pcm = b"".join(base64.b64decode(str(blob["data"]), validate=True) for blob in blobs)
    except (binascii.Error, ValueError):
        raise UpstreamError(status=502, message="Gemini answered with audio that is not base64.",
                            code="bad_response_body", retryable=False) from None
    usage = usage_from(payload.get("usageMetadata"))
    if speech_format(body) == "pcm":
        return pcm, usage
    rate = _RATE.search(str(blobs[0].get("mimeType")))
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(int(rate[1]) if rate else PCM_RATE)
        wav.writeframes(pcm)
    return out.getvalue(), usage


class GeminiStreamDecoder(StreamDecoder):
    """`streamGenerateContent?alt=sse`: each `data:` is a whole GenerateContentResponse holding the
    next piece of text or a complete function call; the last carries finishReason, and usageMetadata
    is cumulative, so the latest one is the bill."""

    framing: ClassVar[str] = "sse"

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = f"chatcmpl-{secrets.token_hex(12)}"
        self.created = int(time.time())
        self.started: set[int] = set()
        self.calls: dict[int, int] = {}  # candidate index -> tool calls sent
        self.usage: Usage | None = None
        self.metadata: dict = {}

    def _chunk(self, choices: list[dict]) -> bytes:
        return orjson.dumps({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                             "model": self.model, "choices": choices})

    def feed(self, event: bytes, data: bytes) -> list[StreamEvent]:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            return []  # a malformed event is dropped: the rest of the answer still arrives
        error = error_payload(payload)
        if error is not None:
            body = {"error": {"message": str(error.get("message") or "Gemini reported an error mid-stream"),
                              "type": "upstream_error", "code": str(error.get("status") or "").lower() or None,
                              "param": None}}
            # Its kind as an HTTP answer would tell it (a refused key is no reason to try another channel's).
            err = gemini_error(502, orjson.dumps({"error": {**error, "message": body["error"]["message"]}}))
            return [StreamEvent(data=orjson.dumps(body), error=err)]
        if not isinstance(payload, dict):
            return []
        if isinstance(payload.get("usageMetadata"), dict):
            self.metadata = payload["usageMetadata"]
            self.usage = usage_from(self.metadata)
        message = blocked_message(payload)
        if message:
            body = {"error": {"message": message, "type": "invalid_request_error", "code": "content_filter",
                              "param": None}}
            return [StreamEvent(data=orjson.dumps(body), error=blocked_error(message))]
        choices: list[dict] = []
        text = ""
        for position, candidate in enumerate(payload.get("candidates") or ()):
            if not isinstance(candidate, dict):
                continue
            choice, piece = self._choice(candidate, position)
            if choice is not None:
                choices.append(choice)
                text += piece
        if not choices:
            return []
        reasoning = any("reasoning_content" in choice["delta"] for choice in choices)  # `thought` parts
        return [StreamEvent(data=self._chunk(choices), text=text, reasoning=reasoning)]

    def _choice(self, candidate: dict, position: int) -> tuple[dict | None, str]:
        index = candidate.get("index", position)
        delta: dict[str, Any] = {}
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[dict] = []
        for part in (candidate.get("content") or {}).get("parts") or ():
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("functionCall"), dict):
                calls.append(tool_call(part, self.calls.get(index, 0) + len(calls)))
            elif isinstance(part.get("text"), str):
                (thoughts if part.get("thought") else texts).append(part["text"])
        reason = candidate.get("finishReason")
        if not texts and not thoughts and not calls and not reason:
            return None, ""
        if index not in self.started:
            self.started.add(index)
            delta["role"] = "assistant"
        if texts or not calls:
            delta["content"] = "".join(texts)
        if thoughts:
            delta["reasoning_content"] = "".join(thoughts)
        if calls:
            delta["tool_calls"] = calls
            self.calls[index] = self.calls.get(index, 0) + len(calls)
        finish = None
        if reason:
            finish = "tool_calls" if self.calls.get(index) else FINISH_REASONS.get(reason, "stop")
        piece = "".join(texts) + "".join(c["function"]["name"] + c["function"]["arguments"] for c in calls)
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}, piece

    def close(self) -> list[StreamEvent]:
        if self.usage is None:
            return []
        chunk = orjson.dumps({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                              "model": self.model, "choices": [], "usage": usage_json(self.usage, self.metadata)})
        return [StreamEvent(data=chunk, usage=self.usage, usage_only=True)]


class GeminiOpenAIAdapter(OpenAIAdapter):
    """Type 51: Gemini's OpenAI-compatible endpoint (https://ai.google.dev/gemini-api/docs/openai).
    The base is SDK-style, so paths lose their /v1. Besides chat and embeddings, Google documents
    images/generations there for Imagen (paid tier): OpenAI's request and answer, images as `b64_json`,
    passed through and billed per image delivered like any OpenAI images answer."""

    channel_type = 51
    label = "Google Gemini (OpenAI-compatible)"
    default_base_url = "https://generativelanguage.googleapis.com/v1beta/openai"
    modes = ("chat", "embeddings", "images")
    default_models = DEFAULT_MODELS

    def path(self, mode: str, model: str, channel: ChannelInfo) -> str:
        return PATHS[mode].removeprefix("/v1")

    def parse_error(self, ctx: RequestContext, *, status: int, body: bytes,
                    headers: Mapping[str, str] | None = None) -> UpstreamError:
        # This endpoint answers errors in Gemini's shape, wrapped in a list: [{"error": {...}}].
        return gemini_error(status, body) or super().parse_error(ctx, status=status, body=body, headers=headers)
