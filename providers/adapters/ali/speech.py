"""DashScope speech (Qwen-TTS): the request's voice and format, and the WAV DashScope links to, as the format
the client asked for.

Docs: https://help.aliyun.com/zh/model-studio/qwen-tts (HTTP API): POST
/api/v1/services/aigc/multimodal-generation/generation with `{model, input: {text, voice}}`; the non-streamed
answer links to the audio, `output.audio.url` (a WAV on DashScope's OSS host, kept 24 hours), and gives
`output.audio.data` (base64) only when streamed, which the relay does not ask for.
"""

from __future__ import annotations

import io
import wave

from providers.adapters.ali.envelope import ali_error, invalid, usage_from
from providers.adapters.base import Adapter, RequestContext, UpstreamError, Usage, json_or_none
from providers.adapters.fetch import vendor_audio

SPEECH_PATH = "/api/v1/services/aigc/multimodal-generation/generation"
# OpenAI's voices as qwen-tts's four (Cherry, Serena, Ethan, Chelsie), each chosen by the character the voice
# list gives it: Cherry sunny, Serena gentle, Ethan warm, Chelsie lively. Any other name (Dylan, Jada, Sunny,
# qwen3-tts-flash's Nofish, Jennifer, ...) passes as it is and DashScope judges it: each model has its own list.
OPENAI_VOICES = {
    "alloy": "Cherry", "coral": "Cherry", "marin": "Cherry",
    "fable": "Serena", "sage": "Serena", "shimmer": "Serena",
    "nova": "Chelsie",
    "ash": "Ethan", "ballad": "Ethan", "cedar": "Ethan", "echo": "Ethan", "onyx": "Ethan", "verse": "Ethan",
}
# Qwen-TTS makes WAV only. OpenAI's `pcm` is its samples without the header; mp3, opus, aac and flac would
# need an encoder the gateway does not carry. No format named means WAV, as for Gemini's speech: the SDKs
# send none unless told, and a refusal would break the simplest call.
SPEECH_FORMATS = {"wav": "audio/wav", "pcm": "audio/pcm"}
DEFAULT_SPEECH_FORMAT = "wav"


def malformed(what: str) -> UpstreamError:
    # Not retried: DashScope made (and billed) the audio; the client is charged nothing.
    return UpstreamError(status=502, message=f"DashScope answered the speech request {what}.",
                         code="bad_response_body", retryable=False)


def speech_format(body: dict) -> str:
    chosen = body.get("response_format") or DEFAULT_SPEECH_FORMAT
    if chosen not in SPEECH_FORMATS:
        raise invalid(f"Qwen-TTS speech comes as WAV: `response_format` must be wav or pcm on this channel, not "
                      f"{chosen} (mp3, opus, aac and flac need an encoder the gateway does not have).",
                      "unsupported_response_format", "response_format")
    return chosen


def speech_body(body: dict) -> dict:
    """The Qwen-TTS request; `speed` has no counterpart and is not sent."""
    speech_format(body)  # refused here, before DashScope is paid for audio the client could not use
    voice = body.get("voice")
    if not isinstance(voice, str) or not voice.strip():
        raise invalid("`voice` must be an OpenAI voice or a Qwen-TTS one (Cherry, Serena, Ethan, Chelsie, ...).",
                      "invalid_voice", "voice")
    voice = OPENAI_VOICES.get(voice.strip().lower(), voice.strip())
    return {"model": body.get("model"), "input": {"text": body.get("input"), "voice": voice}}


def audio_url(output: dict) -> str:
    """The link to the answer's audio, "" when there is none (a streamed answer's `data` is never asked for)."""
    audio = output.get("audio") if isinstance(output.get("audio"), dict) else {}
    url = audio.get("url")
    return url if isinstance(url, str) else ""


def speech_answer(audio: bytes, body: dict) -> bytes:
    """The WAV as asked for: itself, or (pcm) its samples. The header is read, not skipped by size, as a WAV
    may carry chunks other than `fmt ` and `data`."""
    try:
        with wave.open(io.BytesIO(audio)) as wav:
            samples = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError):
        raise malformed("with audio that is not WAV") from None
    return samples if speech_format(body) == "pcm" else audio


async def synthesize(adapter: Adapter, ctx: RequestContext, *, session) -> tuple[bytes, Usage | None]:
    """The synthesis (the adapter's build_request, sent by the adapter), then the WAV it links to, as the
    format asked for. The relay bills speech by characters; DashScope's own counts (tokens, or characters for
    qwen3-tts-flash) are only logged."""
    payload = json_or_none(await adapter.send(ctx, adapter.build_request(ctx), session=session))
    if not isinstance(payload, dict):
        raise malformed("with a body that is not JSON")
    if payload.get("code"):
        raise ali_error(payload)
    output = payload.get("output") if isinstance(payload.get("output"), dict) else {}
    url = audio_url(output)
    if not url:
        reason = output.get("finish_reason")
        raise malformed("without audio" + (f" (finish_reason {reason})" if reason else ""))
    return speech_answer(await vendor_audio(session, url), ctx.body), usage_from(payload.get("usage"))
