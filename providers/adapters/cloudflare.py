"""Cloudflare Workers AI: chat and embeddings through its OpenAI-compatible endpoints; images, speech and
transcription through the native REST API.

Chat and embeddings: https://developers.cloudflare.com/workers-ai/configuration/open-ai-compatibility/: the
account's `/ai/v1/chat/completions` and `/ai/v1/embeddings`, with an API token as the Bearer key. A channel may
instead point at an AI Gateway (`https://gateway.ai.cloudflare.com/v1/{account}/{gateway}/workers-ai`), which
already names the account: one-api appends the OpenAI path to such a base as is.

Media: `POST /client/v4/accounts/{account}/ai/run/{model}` (on an AI Gateway base, `{base}/{model}`), each model
with the input and output its page documents (https://developers.cloudflare.com/workers-ai/models/), JSON
answers in the API's envelope `{"result": ..., "success": true, "errors": [], "messages": []}`:
- images: flux-1-schnell takes `{prompt, steps?, seed?}` and answers `{"image": base64 JPEG}`; the Stable
  Diffusion family (stable-diffusion-xl-base-1.0, stable-diffusion-xl-lightning, ...) takes `{prompt, width?,
  height?, num_steps?, negative_prompt?, guidance?, seed?}` and answers with the PNG itself. flux-1-schnell has no
  size: a `size` asked of it is not sent. One image a request, so `n` images are `n` requests, sent at once;
  those that fail are left out, and the relay bills per image delivered. Workers AI gives the image, never a
  link: `b64_json` unless the client asks for `url`, which gets a data: URL (openai_shapes.image_item, the same choice
  as for Google's images).
- transcriptions and translations: whisper (and whisper-tiny-en) take the audio's bytes as the body, with no
  task or language, and answer `{text, word_count, words, vtt}`; whisper-large-v3-turbo takes `{audio: base64,
  task, language?, initial_prompt?}` (OpenAI's `prompt` is its initial prompt) and answers `{transcription_info,
  text, word_count, segments, vtt}`. The upload is read whole (uploads.read_form, 25 MB at most) and the
  answer converted to the `response_format` asked for. Workers AI counts no tokens, so the relay bills the
  transcript's tokens at the model ratio, as it does for whisper-1.
- speech: melotts takes `{prompt, lang?}` and answers `{"audio": base64 MP3}`: mp3 only; the voice is not
  sent (MeloTTS has one voice a language; a client may name the language with a `lang` field).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import orjson

from oneapi_site.lib.modes import TRANSCRIPT_MODES
from providers.adapters import uploads
from providers.adapters.base import (
    ChannelInfo,
    Opened,
    RequestContext,
    UpstreamError,
    UpstreamRequest,
    Usage,
    WholeAnswer,
    fan_out,
    json_or_none,
)
from providers.adapters.openai import OpenAIAdapter
from providers.adapters.openai_shapes import (
    Transcript,
    image_item,
    images_answer,
    transcript_content_type,
    transcript_format,
)

TASKS = {"chat": "/v1/chat/completions", "embeddings": "/v1/embeddings"}
GATEWAY_PREFIX = "https://gateway.ai.cloudflare.com"
MEDIA_MODES = ("images", "speech", *TRANSCRIPT_MODES)
# Text-to-image models that take flux's input; any other takes Stable Diffusion's (width, height, num_steps).
FLUX_MODELS = ("@cf/black-forest-labs/flux-1-schnell",)
# The optional inputs each family documents, sent when the client gives them (extra fields of its body).
FLUX_FIELDS = ("steps", "seed")
DIFFUSION_FIELDS = ("negative_prompt", "num_steps", "guidance", "seed")
# Speech-to-text models whose input is the audio's bytes as the request body.
RAW_AUDIO_MODELS = ("@cf/openai/whisper", "@cf/openai/whisper-tiny-en")
_SIZE = re.compile(r"(\d+)x(\d+)")


def invalid(message: str, code: str, param: str | None = None) -> UpstreamError:
    return UpstreamError(status=400, message=message, type="invalid_request_error", code=code, param=param)


def malformed(what: str) -> UpstreamError:
    # Not retried: Workers AI did (and billed) the work; the client is charged nothing.
    return UpstreamError(status=502, message=f"Cloudflare Workers AI answered {what}.", code="bad_response_body",
                         retryable=False)


def _b64decode(value: Any) -> bytes | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def image_type(data: bytes | None) -> str | None:
    """The MIME type of an image's bytes, None when they are no image Workers AI makes."""
    if not data:
        return None
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def is_mp3(data: bytes | None) -> bool:
    """An ID3 tag or an MPEG audio frame's sync bits."""
    return bool(data) and (data.startswith(b"ID3") or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0))


class CloudflareAdapter(OpenAIAdapter):
    channel_type: ClassVar[int] = 37
    label: ClassVar[str] = "Cloudflare Workers AI"
    default_base_url: ClassVar[str] = "https://api.cloudflare.com"
    config_fields: ClassVar[tuple[str, ...]] = ("user_id",)  # the Account ID, under one-api's name
    modes: ClassVar[tuple[str, ...]] = ("chat", "embeddings", *MEDIA_MODES)
    # Media goes through /ai/run: n images are n requests, and an upload is read whole before it is sent.
    complete_modes: ClassVar[tuple[str, ...]] = MEDIA_MODES
    default_models: ClassVar[tuple[str, ...]] = (
        "@cf/meta/llama-3.3-70b-instruct-fp8-fast", "@cf/meta/llama-3.1-8b-instruct", "@cf/meta/llama-3.2-3b-instruct",
        "@cf/qwen/qwen2.5-coder-32b-instruct", "@cf/deepseek-ai/deepseek-r1-distill-qwen-32b",
        "@cf/mistralai/mistral-small-3.1-24b-instruct", "@cf/google/gemma-3-12b-it",
        "@cf/baai/bge-base-en-v1.5", "@cf/baai/bge-m3",
        "@cf/black-forest-labs/flux-1-schnell", "@cf/stabilityai/stable-diffusion-xl-base-1.0",
        "@cf/bytedance/stable-diffusion-xl-lightning", "@cf/openai/whisper", "@cf/openai/whisper-large-v3-turbo",
        "@cf/myshell-ai/melotts",
    )

    @staticmethod
    def is_gateway(base: str) -> bool:
        return base.startswith(GATEWAY_PREFIX)

    @staticmethod
    def account(channel: ChannelInfo) -> str:
        account = str(channel.config.get("user_id") or "").strip()
        if not account:
            raise UpstreamError(status=500, message="The Cloudflare channel has no Account ID: set `user_id` in "
                                                    "the channel's config (Workers AI URLs name the account).",
                                type="one_api_error", code="channel_misconfigured", retryable=False)
        return account

    def path(self, mode: str, model: str, channel: ChannelInfo) -> str:
        task = TASKS.get(mode)
        if task is None:
            raise invalid(f"Cloudflare Workers AI channels do not serve {mode}.", "invalid_request", "model")
        if self.is_gateway(self.base_url(channel)):
            return task
        return f"/client/v4/accounts/{self.account(channel)}/ai{task}"

    def run_url(self, channel: ChannelInfo, model: str) -> str:
        base, model = self.base_url(channel), quote(model, safe="@/")
        if self.is_gateway(base):
            return f"{base}/{model}"
        return f"{base}/client/v4/accounts/{self.account(channel)}/ai/run/{model}"

    def run(self, ctx: RequestContext, body: bytes, content_type: str = "application/json") -> UpstreamRequest:
        headers = {"Authorization": f"Bearer {ctx.channel.key}", "Content-Type": content_type}
        return UpstreamRequest("POST", self.run_url(ctx.channel, ctx.model), headers, body)

    def balance_requests(self, channel: ChannelInfo) -> list[UpstreamRequest]:
        return []  # Workers AI bills through the Cloudflare dashboard; there is no balance endpoint

    # --- requests ------------------------------------------------------------------------------------

    def build_request(self, ctx: RequestContext) -> UpstreamRequest:
        if ctx.mode == "images":
            return self.image_request(ctx)
        if ctx.mode == "speech":
            return self.speech_request(ctx)
        return super().build_request(ctx)

    def image_request(self, ctx: RequestContext) -> UpstreamRequest:
        body = ctx.body
        payload: dict[str, Any] = {"prompt": body["prompt"]}
        extra = FLUX_FIELDS
        if ctx.model not in FLUX_MODELS:
            extra = DIFFUSION_FIELDS
            size = body.get("size")
            if size not in (None, "", "auto"):
                match = _SIZE.fullmatch(size) if isinstance(size, str) else None
                if match is None:
                    raise invalid("`size` must be WIDTHxHEIGHT in pixels, as 1024x1024.", "invalid_size", "size")
                payload["width"], payload["height"] = int(match[1]), int(match[2])
        payload.update({name: body[name] for name in extra if name in body})
        return self.run(ctx, orjson.dumps(payload))

    def speech_request(self, ctx: RequestContext) -> UpstreamRequest:
        fmt = ctx.body.get("response_format") or "mp3"
        if fmt != "mp3":
            raise invalid(f"Cloudflare Workers AI speech makes mp3 only: `response_format` must be mp3, not {fmt}.",
                          "unsupported_response_format", "response_format")
        payload = {"prompt": ctx.body["input"]}
        if isinstance(ctx.body.get("lang"), str) and ctx.body["lang"]:
            payload["lang"] = ctx.body["lang"]
        return self.run(ctx, orjson.dumps(payload))

    def transcript_format(self, ctx: RequestContext) -> str:
        """The response_format asked for, refused (before the upload is read) when it cannot be made."""
        fmt = transcript_format(ctx.body)
        if ctx.mode == "translations" and ctx.model in RAW_AUDIO_MODELS:
            raise invalid(f"{ctx.model} only transcribes: translate with @cf/openai/whisper-large-v3-turbo.",
                          "unsupported_model", "model")
        return fmt

    def transcription_request(self, ctx: RequestContext, form: uploads.Form) -> UpstreamRequest:
        if ctx.model in RAW_AUDIO_MODELS:
            return self.run(ctx, form.file, form.file_type or "application/octet-stream")
        fields = {**form.fields, **ctx.body}  # fields sent after the file are in the form only
        payload = {"audio": base64.b64encode(form.file).decode(),
                   "task": "translate" if ctx.mode == "translations" else "transcribe"}
        if fields.get("language"):
            payload["language"] = fields["language"]
        if fields.get("prompt"):
            payload["initial_prompt"] = fields["prompt"]
        return self.run(ctx, orjson.dumps(payload))

    # --- answers -------------------------------------------------------------------------------------

    async def open(self, ctx: RequestContext, *, session) -> Opened:
        """Chat and embeddings are one request; media goes through /ai/run and is answered whole."""
        if ctx.mode not in self.complete_modes:
            return await super().open(ctx, session=session)
        if ctx.mode == "images":
            return WholeAnswer(ctx, await self.images(ctx, session=session))
        if ctx.mode == "speech":
            return await self.answer_whole(ctx, session=session)
        self.transcript_format(ctx)
        form = await uploads.read_form(ctx.upload)
        raw = await self.send(ctx, self.transcription_request(ctx, form), session=session)
        body, usage = self.parse_response(ctx, body=raw)
        return WholeAnswer(ctx, body, usage, self.answer_content_type(ctx))

    async def images(self, ctx: RequestContext, *, session) -> bytes:
        request = self.build_request(ctx)

        async def one() -> dict:
            return self.image(ctx, await self.send(ctx, request, session=session))

        return images_answer(await fan_out(ctx.body.get("n", 1), one))

    def parse_response(self, ctx: RequestContext, *, body: bytes) -> tuple[bytes, Usage | None]:
        if ctx.mode == "images":
            return images_answer([self.image(ctx, body)]), None
        if ctx.mode == "speech":
            return self.speech(ctx, body), None
        if ctx.mode in TRANSCRIPT_MODES:
            return self.transcript(ctx, body), None
        return super().parse_response(ctx, body=body)

    def result(self, ctx: RequestContext, body: bytes) -> dict | None:
        """The `result` of a JSON answer ({} when it has none), None for an answer that is not JSON (the
        models that answer with the image or audio itself)."""
        payload = json_or_none(body)
        if payload is None:
            return None
        if not isinstance(payload, dict):
            raise malformed("with JSON that is not its envelope")
        if payload.get("success") is False:
            err = self.parse_error(ctx, status=502, body=body)
            err.retryable = False
            raise err
        result = payload.get("result")
        return result if isinstance(result, dict) else {}

    def image(self, ctx: RequestContext, body: bytes) -> dict:
        result = self.result(ctx, body)
        data = body if result is None else _b64decode(result.get("image"))
        mime = image_type(data)
        if mime is None:
            raise malformed("an image request without an image")
        encoded = result["image"] if result is not None else base64.b64encode(data).decode()
        return image_item(mime, encoded, ctx.body)

    def speech(self, ctx: RequestContext, body: bytes) -> bytes:
        result = self.result(ctx, body)
        audio = body if result is None else _b64decode(result.get("audio"))
        if not is_mp3(audio):
            raise malformed("a speech request without MP3 audio")
        return audio

    def transcript(self, ctx: RequestContext, body: bytes) -> bytes:
        result = self.result(ctx, body)
        if not result or not isinstance(result.get("text"), str):
            raise malformed("a transcription request without a transcript")
        task = "translate" if ctx.mode == "translations" else "transcribe"
        return Transcript(result).answer(self.transcript_format(ctx), task=task,
                                         language=str(ctx.body.get("language") or ""))

    def answer_content_type(self, ctx: RequestContext) -> str:
        if ctx.mode == "speech":
            return "audio/mpeg"
        if ctx.mode in TRANSCRIPT_MODES:
            return transcript_content_type(ctx.body)
        return "application/json"

    def parse_error(self, ctx: RequestContext, *, status: int, body: bytes,
                    headers: Mapping[str, str] | None = None) -> UpstreamError:
        """Cloudflare's API envelope `{"success": false, "errors": [{"code", "message"}]}`, else OpenAI's."""
        payload = json_or_none(body)
        errors = payload.get("errors") if isinstance(payload, dict) else None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict) and errors[0].get("message"):
            err = super().parse_error(ctx, status=status, body=b"")
            first = errors[0]
            err.message = "; ".join(str(e.get("message")) for e in errors if isinstance(e, dict) and e.get("message"))
            err.code = str(first.get("code") or err.code)
            err.type = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                        404: "not_found_error", 429: "rate_limit_error"}.get(status, "upstream_error")
            err.error_body = {"message": err.message, "type": err.type, "param": None, "code": err.code}
            return err
        return super().parse_error(ctx, status=status, body=body, headers=headers)
