"""The Alibaba DashScope adapter (its native API: Qwen chat, text embeddings, Wanx images, Qwen-TTS speech,
Paraformer transcription), and Bailian's OpenAI-compatible mode.

This module holds the adapters: the URL, headers and conversion each mode takes. The DashScope APIs are
spoken in chat.py (text generation), wanx.py (image tasks), speech.py (Qwen-TTS) and asr.py (Paraformer over
WebSocket); their shared error and usage in envelope.py. Embeddings are small enough to live here:
https://help.aliyun.com/zh/model-studio/developer-reference/text-embedding-synchronous-api.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import orjson

from oneapi_site.lib.modes import TRANSCRIPT_MODES
from providers.adapters.ali import asr, chat, speech, wanx
from providers.adapters.ali.envelope import ali_error, invalid, usage_from
from providers.adapters.base import (
    Adapter,
    ChannelInfo,
    Opened,
    RequestContext,
    StreamDecoder,
    UpstreamError,
    UpstreamRequest,
    Usage,
    WholeAnswer,
    answer_object,
    check_answer,
    json_or_none,
)
from providers.adapters.openai import PATHS, OpenAIAdapter
from providers.adapters.openai_shapes import embedding, embeddings_list, transcript_content_type

EMBEDDINGS_PATH = "/api/v1/services/embeddings/text-embedding/text-embedding"


def embeddings_body(body: dict) -> dict:
    value = body.get("input")
    texts = value if isinstance(value, list) else [value]
    if not texts or not all(isinstance(t, str) for t in texts):
        raise invalid("DashScope embeddings take a string or a list of strings (not token ids).", "invalid_input")
    parameters: dict = {"text_type": "query"}
    if body.get("dimensions"):
        parameters["dimension"] = body["dimensions"]  # text-embedding-v3: 1024 (default), 768, 512...
    return {"model": body.get("model"), "input": {"texts": texts}, "parameters": parameters}


def embeddings_answer(payload: dict, output: dict, model: str) -> tuple[bytes, Usage | None]:
    usage = usage_from(payload.get("usage"))
    items = sorted((e for e in output.get("embeddings") or () if isinstance(e, dict)),
                   key=lambda e: e.get("text_index", 0))
    data = [embedding(e.get("text_index", i), e.get("embedding")) for i, e in enumerate(items)]
    return orjson.dumps(embeddings_list(data, model, usage.prompt_tokens if usage else 0)), usage


class AliAdapter(Adapter):
    channel_type: ClassVar[int] = 17
    label: ClassVar[str] = "Alibaba DashScope"
    default_base_url: ClassVar[str] = "https://dashscope.aliyuncs.com"
    config_fields: ClassVar[tuple[str, ...]] = ("plugin",)
    modes: ClassVar[tuple[str, ...]] = ("chat", "embeddings", "images", "speech", *TRANSCRIPT_MODES)
    # Wanx images are a task to submit and then poll, Qwen-TTS links to its audio, and Paraformer listens on a
    # WebSocket (translations only to be refused: Paraformer does not translate).
    complete_modes: ClassVar[tuple[str, ...]] = ("images", "speech", *TRANSCRIPT_MODES)

    def base_url(self, channel: ChannelInfo) -> str:
        return (channel.base_url or self.default_base_url).rstrip("/")

    def build_request(self, ctx: RequestContext) -> UpstreamRequest:
        channel, mode, body, stream = ctx.channel, ctx.mode, ctx.body, ctx.stream
        base = self.base_url(channel)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {channel.key.strip()}",
                   "Accept": "text/event-stream" if stream else "application/json"}
        plugin = (channel.config or {}).get("plugin")
        if plugin:
            headers["X-DashScope-Plugin"] = str(plugin)
        if mode == "embeddings":
            payload = embeddings_body(body)
            return UpstreamRequest("POST", base + EMBEDDINGS_PATH, headers, orjson.dumps(payload))
        if mode == "speech":
            return UpstreamRequest("POST", base + speech.SPEECH_PATH, headers, orjson.dumps(speech.speech_body(body)))
        if mode == "images":
            headers["X-DashScope-Async"] = "enable"  # the HTTP API makes images only as tasks
            return UpstreamRequest("POST", base + wanx.IMAGES_PATH, headers, orjson.dumps(wanx.image_body(body)))
        if mode != "chat":
            raise invalid(f"DashScope channels do not serve {mode}; use /v1/chat/completions.", "unsupported_mode")
        if stream:
            headers["X-DashScope-SSE"] = "enable"
        return UpstreamRequest("POST", base + chat.CHAT_PATH, headers, orjson.dumps(chat.chat_body(body, stream)))

    def task_request(self, ctx: RequestContext, task_id: str, action: str = "") -> UpstreamRequest:
        """A Wanx task's status query, or (action "cancel") its cancellation."""
        return wanx.task_request(ctx, task_id, base_url=self.base_url(ctx.channel), action=action)

    def parse_response(self, ctx: RequestContext, *, body: bytes) -> tuple[bytes, Usage | None]:
        payload = answer_object(body, "DashScope")
        if payload.get("code"):
            raise ali_error(payload, int(payload.get("status_code") or 200))
        output = payload.get("output")
        if ctx.mode == "embeddings":
            check_answer(output, "DashScope", "embeddings", what="embeddings")
            return embeddings_answer(payload, output, ctx.model)
        check_answer(output, "DashScope", "choices", "text", what="a chat answer")
        return chat.chat_answer(payload, output, ctx.model)

    async def open(self, ctx: RequestContext, *, session) -> Opened:
        """Chat and embeddings are one request; the other modes take more and are answered whole: a Wanx task
        submitted then polled, Qwen-TTS's synthesis then the audio it links to, Paraformer's socket."""
        if ctx.mode not in self.complete_modes:
            return await super().open(ctx, session=session)
        if ctx.mode == "speech":
            body, usage = await speech.synthesize(self, ctx, session=session)
        elif ctx.mode in TRANSCRIPT_MODES:
            body, usage = await asr.recognize(ctx, session=session, base_url=self.base_url(ctx.channel)), None
        else:
            body, usage = await wanx.generate(self, ctx, session=session), None
        return WholeAnswer(ctx, body, usage, self.answer_content_type(ctx))

    def answer_content_type(self, ctx: RequestContext) -> str:
        if ctx.mode == "speech":
            return speech.SPEECH_FORMATS[speech.speech_format(ctx.body)]
        if ctx.mode in TRANSCRIPT_MODES:
            return transcript_content_type(ctx.body)
        return "application/json"

    def stream_decoder(self, ctx: RequestContext) -> StreamDecoder:
        return chat.AliStreamDecoder(ctx.client_model)

    def parse_error(self, ctx: RequestContext, *, status: int, body: bytes,
                    headers: Mapping[str, str] | None = None) -> UpstreamError:
        payload = json_or_none(body)
        if isinstance(payload, dict) and isinstance(payload.get("code"), str) and payload.get("code"):
            return ali_error(payload, status)
        return super().parse_error(ctx, status=status, body=body, headers=headers)


class BailianAdapter(OpenAIAdapter):
    """Bailian (Model Studio) in OpenAI-compatible mode, on the same DashScope host and key."""

    channel_type = 49
    label = "Alibaba Bailian (OpenAI-compatible)"
    default_base_url = "https://dashscope.aliyuncs.com"
    modes: ClassVar[tuple[str, ...]] = ("chat", "completions", "embeddings")

    def base_url(self, channel: ChannelInfo) -> str:
        return super().base_url(channel).removesuffix("/compatible-mode/v1")  # accept the SDK-style base too

    def path(self, mode: str, model: str, channel: ChannelInfo) -> str:
        return "/compatible-mode" + PATHS[mode]

    def balance_requests(self, channel: ChannelInfo) -> list:
        return []  # billed through the Alibaba Cloud console; no balance endpoint
