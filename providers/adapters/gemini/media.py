"""Gemini's own image and speech models, which answer through generateContent with the picture or the sound
as inlineData parts: https://ai.google.dev/gemini-api/docs/image-generation and
https://ai.google.dev/gemini-api/docs/speech-generation. Imagen's `:predict` lives in imagen.py (Vertex AI
shares it).
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import wave
from typing import Any

from providers.adapters.base import UpstreamError, Usage
from providers.adapters.gemini.answers import blocked_error, blocked_message, usage_from
from providers.adapters.gemini.convert import invalid
from providers.adapters.gemini.imagen import aspect_ratio, filtered_error
from providers.adapters.openai_shapes import image_item, images_answer

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
    return images_answer(data), usage_from(payload.get("usageMetadata"))


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
