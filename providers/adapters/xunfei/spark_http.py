"""Xunfei Spark over HTTP (spark-api-open.xf-yun.com): OpenAI's request, a Spark-flavoured answer.

Docs: https://www.xfyun.cn/doc/spark/HTTP%E8%B0%83%E7%94%A8%E6%96%87%E6%A1%A3.html. The key is the
console's APIPassword, sent as a Bearer token. Answers carry `code`/`message`/`sid` beside OpenAI's
fields but lack `object`, `model` and often `finish_reason`; a failure can come as HTTP 200 with a
non-zero `code` (https://www.xfyun.cn/doc/spark/%E6%8E%A5%E5%8F%A3%E8%AF%B4%E6%98%8E.html, error codes).
The WebSocket API (channel type 18) is spark_ws.py's.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import ClassVar

import orjson

from providers.adapters.base import (
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
)
from providers.adapters.openai import OpenAIAdapter, has_reasoning
from providers.adapters.openai_shapes import error_event, usage_event, usage_from

RATE_LIMITED = {10012, 11202, 11203}  # busy, QPS over the limit, concurrency over the limit
QUOTA = {11201}  # daily call limit
AUTH = {11200}  # no licence for this function, or the licence is used up
CONTENT = {10013, 10014, 10019}  # the input / output / reply was judged sensitive
TOO_LONG = {10907}  # history plus question over the model's context
SPARK_FIELDS = ("code", "message", "sid")

def spark_error(payload: dict) -> UpstreamError:
    try:
        code = int(payload.get("code"))
    except (TypeError, ValueError):
        code = -1
    message = str(payload.get("message") or f"Spark error {payload.get('code')}")
    status, type_, mapped, retryable = 500, "upstream_error", str(code), False
    if code in RATE_LIMITED:
        status, type_, mapped, retryable = 429, "rate_limit_error", "rate_limit_exceeded", True
    elif code in QUOTA:
        status, type_, mapped = 429, "insufficient_quota", "insufficient_quota"
    elif code in AUTH:
        status, type_, mapped = 403, "permission_error", "permission_denied"
    elif code in CONTENT:
        status, type_, mapped = 400, "invalid_request_error", "content_filter"
    elif code in TOO_LONG:
        status, type_, mapped = 400, "invalid_request_error", "context_length_exceeded"
    elif 10000 <= code < 10100:
        retryable = True  # 100xx: Spark's own system errors (engine busy, internal failure)
    body = {"message": message, "type": type_, "param": None, "code": mapped, "spark_code": code}
    if payload.get("sid"):
        body["sid"] = payload["sid"]
    return UpstreamError(status=status, message=message, type=type_, code=mapped, retryable=retryable,
                         error_body=body)


def _failed(payload) -> bool:
    return isinstance(payload, dict) and payload.get("code") not in (None, 0, "0") and not payload.get("choices")


class XunfeiAdapter(OpenAIAdapter):
    channel_type = 48
    label = "Xunfei Spark (HTTP)"
    default_base_url = "https://spark-api-open.xf-yun.com"
    modes: ClassVar[tuple[str, ...]] = ("chat",)

    def build_request(self, ctx: RequestContext) -> UpstreamRequest:
        if ctx.mode != "chat":
            raise UpstreamError(status=400, message=f"Xunfei Spark does not serve {ctx.mode}.",
                                type="invalid_request_error", code="unsupported_mode")
        # Spark documents a closed parameter list; the usage comes in its last chunk unasked.
        body = {k: v for k, v in ctx.body.items() if k != "stream_options"}
        if body.get("max_tokens") is None and body.get("max_completion_tokens") is not None:
            body["max_tokens"] = body.pop("max_completion_tokens")
        request = super().build_request(dataclasses.replace(ctx, body=body))
        if ctx.stream and request.body:
            payload = orjson.loads(request.body)
            payload.pop("stream_options", None)
            request.body = orjson.dumps(payload)
        return request

    def balance_requests(self, channel: ChannelInfo) -> list:
        return []

    def parse_response(self, ctx: RequestContext, *, body: bytes) -> tuple[bytes, Usage | None]:
        payload = answer_object(body, "Spark")
        if _failed(payload):
            raise spark_error(payload)  # HTTP 200, nothing sent to the client yet: failover still possible
        check_answer(payload, "Spark", "choices", what="a chat answer")
        answer = {k: v for k, v in payload.items() if k not in SPARK_FIELDS}
        answer.setdefault("id", f"chatcmpl-{payload.get('sid') or int(time.time())}")
        answer["object"] = "chat.completion"
        answer.setdefault("created", int(time.time()))
        answer.setdefault("model", ctx.model)
        for i, choice in enumerate(answer.get("choices") or ()):
            if isinstance(choice, dict):
                choice.setdefault("index", i)
                message = choice.get("message") or {}
                if not choice.get("finish_reason"):
                    choice["finish_reason"] = "tool_calls" if message.get("tool_calls") else "stop"
        return orjson.dumps(answer), usage_from(answer)

    def parse_error(self, ctx: RequestContext, *, status: int, body: bytes,
                    headers: Mapping[str, str] | None = None) -> UpstreamError:
        payload = json_or_none(body)
        if _failed(payload) and not isinstance(payload.get("error"), dict):
            err = spark_error(payload)
            if status == 401:
                err.status, err.type, err.code, err.retryable = 401, "authentication_error", "invalid_api_key", False
            return err
        return super().parse_error(ctx, status=status, body=body, headers=headers)

    def stream_decoder(self, ctx: RequestContext) -> StreamDecoder:
        return XunfeiStreamDecoder(ctx.client_model)


class XunfeiStreamDecoder(StreamDecoder):
    """Spark's chunks made OpenAI's: `object`, `model` and a finish reason added, Spark's own fields
    dropped, and the usage in the last chunk split into a usage chunk of its own (hidden from clients
    that did not ask for it)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.called = False
        self.finished = False

    def feed(self, event: bytes, data: bytes) -> list[StreamEvent]:
        if data.strip() == b"[DONE]":
            return [StreamEvent(data=None, done=True)]
        payload = json_or_none(data)
        if not isinstance(payload, dict):
            return []  # a broken event is skipped; the stream goes on
        if _failed(payload):
            err = spark_error(payload)
            return [error_event(err, err.error_body)]
        usage = usage_from(payload)
        if usage is None and "choices" not in payload:
            return []  # not a Spark chunk: skipped, as a broken one is
        chunk = {k: v for k, v in payload.items() if k not in SPARK_FIELDS and k != "usage"}
        chunk.setdefault("id", f"chatcmpl-{payload.get('sid') or int(time.time())}")
        chunk["object"] = "chat.completion.chunk"
        chunk.setdefault("created", int(time.time()))
        chunk["model"] = chunk.get("model") or self.model
        text = ""
        reasoning = False
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") or {}
            reasoning = reasoning or has_reasoning(delta)  # Spark X1 thinks in `reasoning_content`
            if isinstance(delta.get("content"), str):
                text += delta["content"]
            for call in delta.get("tool_calls") or ():
                self.called = True
                fn = call.get("function") or {}
                text += (fn.get("name") or "") + (fn.get("arguments") or "")
            if choice.get("finish_reason"):
                self.finished = True
            elif usage is not None and not self.finished:
                # Spark's last chunk carries the usage and often no finish reason.
                choice["finish_reason"] = "tool_calls" if self.called else "stop"
                self.finished = True
        events = []
        if chunk.get("choices") or usage is None:
            events.append(StreamEvent(data=orjson.dumps(chunk), text=text, reasoning=reasoning))
        if usage is not None:
            events.append(usage_event(id=chunk["id"], created=chunk["created"], model=chunk["model"], usage=usage))
        return events
