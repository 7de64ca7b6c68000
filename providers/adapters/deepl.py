"""DeepL (type 38): translation served as chat, as one-api serves it (relay/adaptor/deepl).

The model names the target language: `deepl-zh` translates into Chinese, `deepl-en-us` into American English
(DeepL's target_lang codes, https://developers.deepl.com/docs/api-reference/translate); a bare `deepl` is
Chinese, one-api's default. The last user message is the text; the answer is its translation as an assistant
message, or one chunk when a stream was asked for (DeepL answers whole). DeepL bills by character, so the
prompt is counted in characters and there is no completion, as one-api counts it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import ClassVar

import orjson

from providers.adapters.base import (
    Adapter,
    EventAnswer,
    Opened,
    RequestContext,
    StreamEvent,
    UpstreamError,
    UpstreamRequest,
    Usage,
    answer_object,
    text_only,
)
from providers.adapters.openai_shapes import (
    chat_chunk,
    chat_completion,
    delta_choice,
    message_choice,
    usage_event,
    usage_json,
)

DEFAULT_LANGUAGE = "ZH"
PRO_URL = "https://api.deepl.com"


def target_language(model: str) -> str:
    """DeepL's target_lang for a model name: what follows `deepl-`, upper-cased; ZH for a bare name."""
    _, _, language = model.partition("-")
    return language.upper() or DEFAULT_LANGUAGE


def source_text(body: dict) -> str:
    """The text to translate: the last user message's."""
    for message in reversed(body.get("messages") or ()):
        if isinstance(message, dict) and message.get("role") == "user":
            return text_only(message.get("content"), "DeepL translates text only, not {kind} parts.")
    raise UpstreamError(status=400, message="DeepL translates the last user message; the request has none.",
                        type="invalid_request_error", code="invalid_request")


class DeepLAdapter(Adapter):
    channel_type: ClassVar[int] = 38
    label: ClassVar[str] = "DeepL"
    default_base_url: ClassVar[str] = "https://api-free.deepl.com"
    modes: ClassVar[tuple[str, ...]] = ("chat",)
    default_models: ClassVar[tuple[str, ...]] = ("deepl-zh", "deepl-en", "deepl-ja")

    def default_host(self, key: str) -> str:
        """Without a base URL, the API the key belongs to: DeepL's free keys end in ":fx" and work only on
        api-free.deepl.com, its paid ones only on api.deepl.com (one-api sends every key to the free one)."""
        return self.default_base_url if key.strip().endswith(":fx") else PRO_URL

    def build_request(self, ctx: RequestContext) -> UpstreamRequest:
        base = (ctx.channel.base_url or self.default_host(ctx.channel.key)).rstrip("/")
        body = {"text": [source_text(ctx.body)], "target_lang": target_language(ctx.model)}
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "Authorization": f"DeepL-Auth-Key {ctx.channel.key}"}
        return UpstreamRequest("POST", f"{base}/v2/translate", headers, orjson.dumps(body))

    def translation(self, body: bytes) -> str:
        payload = answer_object(body, self.label)
        translations = payload.get("translations")
        if not isinstance(translations, list) or not translations or not isinstance(translations[0], dict):
            raise UpstreamError(status=502, message="DeepL answered without a translation.",
                                code="bad_response_body", retryable=True)
        return str(translations[0].get("text") or "")

    def usage(self, ctx: RequestContext) -> Usage:
        return Usage(prompt_tokens=len(source_text(ctx.body)))

    def parse_response(self, ctx: RequestContext, *, body: bytes) -> tuple[bytes, Usage | None]:
        text = self.translation(body)
        usage = self.usage(ctx)
        answer = chat_completion(id=f"chatcmpl-{uuid.uuid4().hex}", model=ctx.client_model,
                                 choices=[message_choice(0, {"role": "assistant", "content": text}, "stop")],
                                 usage=usage_json(usage))
        return orjson.dumps(answer), usage

    async def open(self, ctx: RequestContext, *, session) -> Opened:
        if not ctx.stream:
            return await super().open(ctx, session=session)
        return EventAnswer(ctx, self.stream_events(ctx, session=session))

    async def stream_events(self, ctx: RequestContext, *, session) -> AsyncIterator[StreamEvent]:
        """DeepL answers whole: the translation is one chunk, then the usage."""
        text = self.translation(await self.send(ctx, self.build_request(ctx), session=session))
        id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        delta = {"role": "assistant", "content": text}
        yield StreamEvent(data=chat_chunk(id=id, created=created, model=ctx.client_model,
                                          choices=[delta_choice(delta, "stop")]), text=text)
        yield usage_event(id=id, created=created, model=ctx.client_model, usage=self.usage(ctx))
