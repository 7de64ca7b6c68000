"""Xunfei Spark over its WebSocket API (channel type 18): one socket per question, answers as frames.

Docs: https://www.xfyun.cn/doc/spark/Web.html (URL, signed query, request and answer frames, error
codes). The key is one-api's `APPID|APISecret|APIKey`. The socket URL carries the auth: `host`, `date`
(RFC 1123) and `authorization`, an HMAC-SHA256 of "host: ...\\ndate: ...\\nGET <path> HTTP/1.1" with
the APISecret. Spark answers with frames whose `header.status` goes 0 → 1 → 2; the last one carries
the usage. A failure is a frame with a non-zero `header.code` (or a refused handshake).
The WebSocket API has no top_p, stop, tool_choice or images: those are left out (images refused).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

import aiohttp
import orjson

from providers.adapters.base import (
    Adapter,
    ChannelInfo,
    EventAnswer,
    Opened,
    RequestContext,
    StreamEvent,
    UpstreamError,
    Usage,
    ws_open,
)
from providers.adapters.openai_shapes import call_id, chat_chunk, delta_choice, tool_call, usage_event

DEFAULT_HOST = "wss://spark-api.xf-yun.com"
# one-api's model names → API version (relay/adaptor/xunfei/main.go); the version gives the path and domain.
MODEL_VERSIONS = {
    "Spark-Lite": "v1.1", "Spark-Pro": "v3.1", "Spark-Pro-128K": "v3.1-128K",
    "Spark-Max": "v3.5", "Spark-Max-32K": "v3.5-32K", "Spark-4.0-Ultra": "v4.0",
}
DOMAINS = {
    "v1.1": "lite", "v2.1": "generalv2", "v3.1": "generalv3", "v3.1-128K": "pro-128k",
    "v3.5": "generalv3.5", "v3.5-32K": "max-32k", "v4.0": "4.0Ultra",
}
# Pro-128K and Max-32K live outside the /{version}/chat pattern (Web.html, "接口地址").
PATHS = {"v3.1-128K": "/chat/pro-128k", "v3.5-32K": "/chat/max-32k"}
RECEIVE_TIMEOUT = 120  # seconds between frames before we give up on a silent socket

# Error codes (Web.html, "错误码"): (status, type, code, retryable).
_BAD_REQUEST = (400, "invalid_request_error", "invalid_request", False)
_BUSY = (429, "rate_limit_error", "rate_limit_exceeded", True)
_ENGINE = (503, "upstream_error", "upstream_unavailable", True)
_FILTER = (400, "invalid_request_error", "content_filter", False)
ERROR_CODES: dict[int, tuple[int, str, str, bool]] = {
    10003: _BAD_REQUEST, 10004: _BAD_REQUEST, 10005: _BAD_REQUEST, 10009: _BAD_REQUEST, 10163: _BAD_REQUEST,
    10006: _BUSY, 10007: _BUSY,  # one connection per user at a time; the previous answer is still running
    10008: _ENGINE, 10010: _ENGINE, 10011: _ENGINE, 10012: _ENGINE, 10110: _ENGINE, 10222: _ENGINE, 10223: _ENGINE,
    10013: _FILTER, 10014: _FILTER, 10019: _FILTER,  # input / output / conversation judged sensitive
    10907: (400, "invalid_request_error", "context_length_exceeded", False),
    10015: (403, "permission_error", "permission_denied", False),  # app id blacklisted
    10016: (403, "permission_error", "permission_denied", False),  # version not enabled, tokens used up
    11200: (401, "authentication_error", "invalid_api_key", False),  # no licence for this app id
    11201: (429, "insufficient_quota", "insufficient_quota", True),  # daily limit: another channel may serve
    11202: _BUSY, 11203: _BUSY,  # per-second / concurrency limits
}


def spark_error(header: dict) -> UpstreamError:
    try:
        code = int(header.get("code"))
    except (TypeError, ValueError):
        code = -1
    message = str(header.get("message") or f"Spark error {header.get('code')}")
    status, type_, mapped, retryable = ERROR_CODES.get(code, (500, "upstream_error", str(code), False))
    body = {"message": message, "type": type_, "param": None, "code": mapped, "spark_code": code}
    if header.get("sid"):
        body["sid"] = header["sid"]
    return UpstreamError(status=status, message=message, type=type_, code=mapped, retryable=retryable,
                         error_body=body)


def version_for(model: str, config: dict) -> str:
    return MODEL_VERSIONS.get(model) or str(config.get("api_version") or "").strip() or "v1.1"


def domain_for(version: str) -> str:
    return DOMAINS.get(version, "general" + version)  # one-api's fallback for unknown versions


def rfc1123(now: float) -> str:
    return format_datetime(datetime.fromtimestamp(now, tz=UTC), usegmt=True)


def signed_url(base_url: str, path: str, api_key: str, api_secret: str, now: float) -> str:
    """The socket URL with Spark's auth query (Web.html, "鉴权说明")."""
    base = (base_url or DEFAULT_HOST).rstrip("/")
    if base.startswith("http://") or base.startswith("https://"):
        base = "ws" + base[4:]
    parts = urlsplit(base + path)
    date = rfc1123(now)
    origin = f"host: {parts.netloc}\ndate: {date}\nGET {parts.path} HTTP/1.1"
    signature = base64.b64encode(hmac.new(api_secret.encode(), origin.encode(), hashlib.sha256).digest()).decode()
    authorization = (f'api_key="{api_key}", algorithm="hmac-sha256", headers="host date request-line", '
                     f'signature="{signature}"')
    query = urlencode({"authorization": base64.b64encode(authorization.encode()).decode(),
                       "date": date, "host": parts.netloc})
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{query}"


def split_key(key: str) -> tuple[str, str, str]:
    parts = [p.strip() for p in (key or "").split("|")]
    if len(parts) != 3 or not all(parts):
        raise UpstreamError(status=401, message="The Xunfei Spark channel key must be APPID|APISecret|APIKey.",
                            type="authentication_error", code="invalid_api_key")
    return parts[0], parts[1], parts[2]


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for part in content if isinstance(content, list) else ():
        if isinstance(part, dict) and part.get("type") == "text":
            texts.append(str(part.get("text") or ""))
        elif isinstance(part, dict) and part.get("type") == "image_url":
            # Image understanding is a separate Spark API (spark-api.cn-huabei-1.xf-yun.com/v2.1/image).
            raise UpstreamError(status=400, message="Xunfei Spark chat does not accept images.",
                                type="invalid_request_error", code="unsupported_content", param="messages")
    return "".join(texts)


def spark_messages(messages: list) -> list[dict]:
    """OpenAI messages → Spark's text list. Spark knows only system/user/assistant, so a tool result
    goes back as a user turn and an assistant's tool call as its JSON (the function-call docs show no
    role for results)."""
    out: list[dict] = []
    for message in messages or ():
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        content = _text_of(message.get("content"))
        if role in ("system", "developer"):
            out.append({"role": "system", "content": content})
        elif role == "assistant":
            calls = message.get("tool_calls") or []
            if message.get("function_call"):
                calls = [*calls, {"function": message["function_call"]}]
            for call in calls:
                fn = call.get("function") or {}
                content += orjson.dumps({"function_call": {"name": fn.get("name"),
                                                           "arguments": fn.get("arguments")}}).decode()
            out.append({"role": "assistant", "content": content})
        elif role in ("tool", "function"):
            name = message.get("name") or message.get("tool_call_id") or "function"
            out.append({"role": "user", "content": f"Result of {name}: {content}"})
        else:
            out.append({"role": "user", "content": content})
    return out


def request_frame(body: dict, app_id: str, domain: str) -> dict:
    chat: dict[str, Any] = {"domain": domain}
    if body.get("temperature") is not None:
        chat["temperature"] = body["temperature"]
    max_tokens = body.get("max_tokens") if body.get("max_tokens") is not None else body.get("max_completion_tokens")
    if max_tokens is not None:
        chat["max_tokens"] = max_tokens
    if body.get("top_k") is not None:
        chat["top_k"] = body["top_k"]
    payload: dict[str, Any] = {"message": {"text": spark_messages(body.get("messages") or [])}}
    functions = [t.get("function") or {} for t in body.get("tools") or () if t.get("type", "function") == "function"]
    functions += [f for f in body.get("functions") or () if isinstance(f, dict)]
    if functions and body.get("tool_choice") != "none":
        payload["functions"] = {"text": [{"name": f.get("name"), "description": f.get("description", ""),
                                          "parameters": f.get("parameters") or {"type": "object", "properties": {}}}
                                         for f in functions]}
    uid = str(body.get("user") or "oneapi")[:32]  # Spark caps uid at 32 characters
    return {"header": {"app_id": app_id, "uid": uid}, "parameter": {"chat": chat}, "payload": payload}


class FrameConverter:
    """Spark's answer frames → OpenAI chunks, one answer's state (id, role sent, tool call seen)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.started = False
        self.called = False
        self.finished = False
        self.usage: Usage | None = None

    def _delta(self, delta: dict, finish: str | None = None) -> bytes:
        if not self.started:
            delta = {"role": "assistant", **delta}
            self.started = True
        return chat_chunk(id=self.id, created=self.created, model=self.model, choices=[delta_choice(delta, finish)])

    def feed(self, frame: bytes | str) -> list[StreamEvent]:
        """One frame's events; raises UpstreamError for a failure frame. A broken frame is skipped."""
        try:
            payload = orjson.loads(frame)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(payload, dict):
            return []
        header = payload.get("header") if isinstance(payload.get("header"), dict) else {}
        if header.get("code") not in (None, 0, "0"):
            raise spark_error(header)
        if header.get("sid"):
            self.id = f"chatcmpl-{header['sid']}"
        body = payload.get("payload") if isinstance(payload.get("payload"), dict) else {}
        choices = body.get("choices") if isinstance(body.get("choices"), dict) else {}
        events: list[StreamEvent] = []
        for item in choices.get("text") or ():
            if not isinstance(item, dict):
                continue
            content = item.get("content")
            if isinstance(content, str) and content:
                events.append(StreamEvent(data=self._delta({"content": content}), text=content))
            call = item.get("function_call")
            if isinstance(call, dict) and call.get("name"):
                self.called = True
                arguments = call.get("arguments")
                if not isinstance(arguments, str):
                    arguments = orjson.dumps(arguments or {}).decode()
                delta = {"tool_calls": [tool_call(call_id(), call["name"], arguments, index=0)]}
                events.append(StreamEvent(data=self._delta(delta), text=call["name"] + arguments))
        text_usage = (body.get("usage") or {}).get("text") if isinstance(body.get("usage"), dict) else None
        if isinstance(text_usage, dict):
            # prompt_tokens counts the whole history; question_tokens only the last question.
            self.usage = Usage(int(text_usage.get("prompt_tokens") or 0), int(text_usage.get("completion_tokens") or 0))
        if header.get("status") == 2 or choices.get("status") == 2:
            events.extend(self.finish("tool_calls" if self.called else "stop"))
        return events

    def finish(self, reason: str) -> list[StreamEvent]:
        if self.finished:
            return []
        self.finished = True
        events = [StreamEvent(data=self._delta({}, reason))]
        if self.usage is not None:
            events.append(usage_event(id=self.id, created=self.created, model=self.model, usage=self.usage))
        return events


class XunfeiSparkAdapter(Adapter):
    channel_type = 18
    label = "Xunfei Spark"
    default_base_url = DEFAULT_HOST
    config_fields: ClassVar[tuple[str, ...]] = ("api_version",)
    modes: ClassVar[tuple[str, ...]] = ("chat",)
    stream_only = True  # the socket answers in frames, gathered for a client that did not ask to stream
    clock: Callable[[], float] = staticmethod(time.time)  # tests pin it to recompute the signature

    def url_for(self, channel: ChannelInfo, model: str) -> tuple[str, str]:
        """The signed socket URL and the domain for this model."""
        _, api_secret, api_key = split_key(channel.key)
        version = version_for(model, channel.config or {})
        path = PATHS.get(version, f"/{version}/chat")
        return signed_url(channel.base_url, path, api_key, api_secret, self.clock()), domain_for(version)

    async def open(self, ctx: RequestContext, *, session) -> Opened:
        """The answer is the socket's frames as OpenAI chunks: the socket opens when they are first read."""
        return EventAnswer(ctx, self.answer_events(ctx, session=session))

    async def answer_events(self, ctx: RequestContext, *, session) -> AsyncIterator[StreamEvent]:
        if ctx.mode != "chat":
            raise UpstreamError(status=400, message=f"Xunfei Spark does not serve {ctx.mode}.",
                                type="invalid_request_error", code="unsupported_mode")
        app_id = split_key(ctx.channel.key)[0]
        url, domain = self.url_for(ctx.channel, ctx.model)
        frame = orjson.dumps(request_frame(ctx.body, app_id, domain)).decode()  # written before connecting
        converter = FrameConverter(ctx.model)
        # A refused signature is a 401/403 handshake ("HMAC signature cannot be verified").
        ws = await ws_open(session, url, vendor="Xunfei Spark", refused="signature")
        async with ws:
            await ws.send_str(frame)
            while not converter.finished:
                message = await ws.receive(timeout=RECEIVE_TIMEOUT)
                if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    try:
                        events = converter.feed(message.data)
                    except UpstreamError as err:
                        if converter.started and err.code == "content_filter":
                            # Output judged sensitive mid-answer (10014): end the answer as OpenAI does.
                            for event in converter.finish("content_filter"):
                                yield event
                            return
                        raise
                    for event in events:
                        yield event
                else:  # closed or broken before the last frame
                    raise UpstreamError(status=502, message="Xunfei Spark closed the connection mid-answer.",
                                        code="do_request_failed", retryable=True)
