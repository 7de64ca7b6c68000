"""The Google Gemini adapters: the native generateContent API (type 24) and its OpenAI-compatible endpoint
(type 51).

Native API reference: https://ai.google.dev/api/generate-content and https://ai.google.dev/api/embeddings.
This module holds the adapters (URLs, headers, which conversion a mode takes); the requests are made in
convert.py, the answers and streams read in answers.py, images and speech in media.py and Imagen in imagen.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

import orjson

from providers.adapters.base import (
    Adapter,
    ChannelInfo,
    NativeStream,
    Opened,
    RequestContext,
    StreamDecoder,
    UpstreamError,
    UpstreamRequest,
    Usage,
    answer_object,
    check_answer,
)
from providers.adapters.gemini.answers import GeminiStreamDecoder, chat_answer, embeddings_answer, gemini_error
from providers.adapters.gemini.convert import chat_request, embeddings_request, inline_remote_images, invalid
from providers.adapters.gemini.imagen import imagen_answer, imagen_request, is_imagen
from providers.adapters.gemini.media import (
    SPEECH_FORMATS,
    image_answer,
    image_request,
    speech_answer,
    speech_format,
    speech_request,
)
from providers.adapters.gemini.native import GenerateEvents, method, native_body, read_answer
from providers.adapters.openai import PATHS, OpenAIAdapter

DEFAULT_MODELS = (
    "gemini-3-pro-preview", "gemini-3-flash-preview",
    "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite",
    "gemini-2.0-flash", "gemini-2.0-flash-lite",
    "gemini-embedding-001", "text-embedding-004",
    "imagen-4.0-generate-001", "imagen-4.0-ultra-generate-001", "imagen-4.0-fast-generate-001",
    "gemini-2.5-flash-image", "gemini-2.5-flash-preview-tts", "gemini-2.5-pro-preview-tts",
)



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
    # A Gemini client's own request goes as it is (gemini/native.py).
    native_protocols: ClassVar[tuple[str, ...]] = ("gemini",)

    async def open(self, ctx: RequestContext, *, session) -> Opened:
        """A chat's remote images inlined first; speech answered whole (converted into audio)."""
        if ctx.mode == "chat" and ctx.protocol == "openai":
            ctx = dataclasses.replace(ctx, body=await inline_remote_images(ctx.body, session))
        if ctx.mode in self.complete_modes:
            return await self.answer_whole(ctx, session=session)
        return await super().open(ctx, session=session)

    def model_url(self, channel: ChannelInfo, model: str) -> str:
        version = (channel.config or {}).get("api_version") or self.DEFAULT_API_VERSION
        return f"{(channel.base_url or self.default_base_url).rstrip('/')}/{version}/models/{model}"

    def build_request(self, ctx: RequestContext) -> UpstreamRequest:
        channel = ctx.channel
        model = ctx.model.removeprefix("models/")
        base = self.model_url(channel, model)
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

    def model_list_request(self, channel: ChannelInfo) -> UpstreamRequest:
        # https://ai.google.dev/api/models#method:-models.list; the key in its header, as for requests.
        url = self.model_url(channel, "").removesuffix("/") + "?pageSize=1000"
        return UpstreamRequest("GET", url, {"x-goog-api-key": channel.key})

    def parse_model_list(self, body: bytes) -> list[str]:
        # {"models": [{"name": "models/gemini-2.5-pro", ...}]}: clients ask for the name without "models/".
        return [str(item["name"]).removeprefix("models/") for item in orjson.loads(body).get("models") or ()]

    def speaks_natively(self, protocol: str, *, mode: str, model: str, channel=None) -> bool:
        return protocol == "gemini" and mode in ("chat", "count_tokens", "embeddings") and not is_imagen(model)

    def build_native_request(self, ctx: RequestContext) -> UpstreamRequest:
        model = ctx.model.removeprefix("models/")
        headers = {"Content-Type": "application/json", "x-goog-api-key": ctx.channel.key}
        if ctx.stream:
            headers["Accept"] = "text/event-stream"
        url = f"{self.model_url(ctx.channel, model)}:{method(ctx)}"
        return UpstreamRequest("POST", url, headers, orjson.dumps(native_body(ctx, model)))

    def read_native_answer(self, ctx: RequestContext, *, body: bytes) -> tuple[Usage | None, str]:
        return read_answer(ctx, body, "Gemini")

    def native_stream(self, ctx: RequestContext) -> NativeStream:
        return GenerateEvents()

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
        return chat_answer(payload, ctx.model)

    def answer_content_type(self, ctx: RequestContext) -> str:
        return SPEECH_FORMATS[speech_format(ctx.body)] if ctx.mode == "speech" else "application/json"

    def stream_decoder(self, ctx: RequestContext) -> StreamDecoder:
        return GeminiStreamDecoder(ctx.client_model)

    def parse_error(self, ctx: RequestContext, *, status: int, body: bytes,
                    headers: Mapping[str, str] | None = None) -> UpstreamError:
        return gemini_error(status, body) or super().parse_error(ctx, status=status, body=body, headers=headers)


class PaLMAdapter(GeminiAdapter):
    """Type 11, one-api's PaLM: served by Gemini's API. one-api's adaptor speaks PaLM's generateMessage
    (v1beta2, chat-bison-001), which Google has shut down; a PaLM key is a Google AI Studio key of the same
    service (generativelanguage.googleapis.com, `x-goog-api-key`), and that key and base URL serve Gemini's
    generateContent. So a PaLM channel routes as a Gemini one; its models must be Gemini's (PaLM-2 is gone)."""

    channel_type = 11
    label = "Google PaLM (via Gemini)"


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
