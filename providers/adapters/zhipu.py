"""Zhipu GLM (open.bigmodel.cn), API v4: OpenAI-shaped JSON behind a signed token.

Docs: https://open.bigmodel.cn/dev/api/normal-model/glm-4 (chat),
https://open.bigmodel.cn/dev/api/vector/embedding-3 (embeddings) and
https://open.bigmodel.cn/dev/api/image-model/cogview (CogView images). The channel key
is Zhipu's `id.secret`; every call carries a short-lived HS256 JWT built from it
(https://open.bigmodel.cn/dev/api/http-call/http-auth). Only the `glm-*` family on
v4 is spoken; one-api's v3 `model-api/{model}/invoke` path (chatglm_turbo & co.) is
retired upstream and left out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import ClassVar

import orjson

from providers.adapters.base import (
    ChannelInfo,
    Opened,
    RequestContext,
    StreamDecoder,
    StreamEvent,
    UpstreamError,
    UpstreamRequest,
    Usage,
    WholeAnswer,
    check_answer,
    fan_out,
    json_or_none,
    retryable_status,
)
from providers.adapters.fetch import vendor_images_b64
from providers.adapters.openai import OpenAIAdapter, has_reasoning, parse_chunk
from providers.adapters.openai_shapes import usage_from, usage_json

API_PREFIX = "/api/paas/v4"
PATHS = {"embeddings": "/embeddings", "images": "/images/generations"}  # under API_PREFIX; chat otherwise
TOKEN_TTL = 3600  # seconds a signed token is valid
TOKEN_RENEW_BEFORE = 300  # re-sign this long before it expires, so no request carries a dying token
_tokens: dict[str, tuple[str, float]] = {}  # channel key -> (jwt, expiry in epoch seconds)
_TOKENS_MAX = 1024  # keys rotate rarely; a bound keeps a long-lived process from hoarding stale ones

# OpenAI request fields Zhipu's v4 chat does not document: dropped rather than risk a 400 (code 1214).
DROPPED = ("stream_options", "max_completion_tokens", "n", "logprobs", "top_logprobs", "logit_bias",
           "parallel_tool_calls", "service_tier", "store", "metadata", "seed", "presence_penalty",
           "frequency_penalty", "functions", "function_call", "user", "modalities", "audio", "prediction",
           "reasoning_effort")

# Zhipu's finish reasons beyond OpenAI's: "sensitive" (the safety filter cut the answer) and
# "network_error" (inference failed mid-way). OpenAI clients only know the four.
FINISH = {"sensitive": "content_filter", "network_error": "stop"}

# https://open.bigmodel.cn/dev/api/error-code/service-error : the business codes come with HTTP 4xx/429.
RATE_LIMITED = {"1302", "1303", "1305"}  # concurrency, frequency, rate limit: another channel may answer
AUTH_FAILED = {"1000", "1001", "1002", "1003", "1004"}
ACCOUNT = {"1100", "1110", "1111", "1112", "1113", "1120", "1121"}  # account locked, missing, in arrears...


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def zhipu_token(key: str, *, now: float | None = None) -> str:
    """The JWT for a channel key, signed once and reused until shortly before it expires."""
    now = time.time() if now is None else now
    cached = _tokens.get(key)
    if cached is not None and cached[1] - TOKEN_RENEW_BEFORE > now:
        return cached[0]
    key_id, dot, secret = key.strip().partition(".")
    if not dot or not key_id or not secret:
        # Never echo the key: the half after the dot is the signing secret.
        raise UpstreamError(status=500, message="The Zhipu channel key is malformed: it must be `id.secret` "
                                                "as shown in the Zhipu console.",
                            type="one_api_error", code="invalid_channel_key", retryable=False)
    now_ms = int(now * 1000)
    # Header and claims as Zhipu's auth doc shows them; times are in milliseconds, not JWT's usual seconds.
    header = {"alg": "HS256", "sign_type": "SIGN"}
    claims = {"api_key": key_id, "exp": now_ms + TOKEN_TTL * 1000, "timestamp": now_ms}
    signing_input = f"{_b64url(orjson.dumps(header))}.{_b64url(orjson.dumps(claims))}"
    signature = hmac.new(secret.encode("utf-8"), signing_input.encode("ascii"), hashlib.sha256).digest()
    token = f"{signing_input}.{_b64url(signature)}"
    if len(_tokens) >= _TOKENS_MAX:
        _tokens.clear()
    _tokens[key] = (token, now + TOKEN_TTL)
    return token


def _clamp(value, low: float, high: float):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return min(max(value, low), high)


def _message(message: dict) -> dict:
    """GLM-4V takes `image_url.url` as an http(s) URL or bare base64: a `data:` URL is refused with
    "图片输入格式/解析错误" (see QuantumNous/new-api#136), so the prefix goes."""
    content = message.get("content")
    if not isinstance(content, list):
        return message
    parts = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if isinstance(url, str) and url.startswith("data:") and "," in url:
                image = {**image, "url": url.split(",", 1)[1]} if isinstance(image, dict) else {"url": url}
                part = {**part, "image_url": image}
        parts.append(part)
    return {**message, "content": parts}


def chat_body(body: dict, stream: bool) -> dict:
    out = {k: v for k, v in body.items() if k not in DROPPED}
    out["stream"] = stream
    if out.get("max_tokens") is None and body.get("max_completion_tokens") is not None:
        out["max_tokens"] = body["max_completion_tokens"]
    out["messages"] = [_message(m) if isinstance(m, dict) else m for m in body.get("messages") or ()]
    # temperature is (0, 1] and top_p (0, 1) in Zhipu's chat doc; values on the edges are refused (1214).
    temperature = body.get("temperature")
    if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
        if temperature <= 0:
            out["do_sample"] = False  # Zhipu's switch for greedy decoding, what temperature 0 asks for
        out["temperature"] = _clamp(temperature, 0.01, 1.0)
    if "top_p" in out:
        out["top_p"] = _clamp(out["top_p"], 0.01, 0.99)
    stop = out.pop("stop", None)
    if isinstance(stop, str) and stop:
        out["stop"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop"] = stop[:1]  # "目前仅支持单个stop词"
    if body.get("user") and not out.get("user_id"):
        out["user_id"] = str(body["user"])[:128]
    if body.get("functions") and not out.get("tools"):  # the legacy OpenAI form
        out["tools"] = [{"type": "function", "function": f} for f in body["functions"]]
    # Zhipu's tool_choice is "auto" only: "none" means no tools at all; a forced choice falls back to auto.
    choice = out.pop("tool_choice", None)
    if choice == "none":
        out.pop("tools", None)
    elif out.get("tools"):
        out["tool_choice"] = "auto"
    return out


def image_body(body: dict) -> dict:
    """CogView's request: `model`, `prompt`, and `size`, `quality`, `user_id` when given. CogView makes one
    image a request and takes no `n`: `open` sends `n` of these (one-api sends one and charges for `n`)."""
    out = {"model": body.get("model"), "prompt": body.get("prompt")}
    size = body.get("size")
    if isinstance(size, str) and size and size != "auto":
        out["size"] = size.replace("*", "x")  # "1024x1024", as OpenAI writes it; custom sizes pass as given
    if body.get("quality") in ("standard", "hd"):  # OpenAI's names are CogView's (cogview-4-250304)
        out["quality"] = body["quality"]
    if body.get("user"):
        out["user_id"] = str(body["user"])[:128]
    return out


def image_answer(body: bytes) -> dict:
    """CogView's {created, data: [{url}], content_filter} as OpenAI's {created, data: [{url}]}."""
    payload = json_or_none(body)
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise UpstreamError(status=502, message="Zhipu answered the image request with an unexpected body.",
                            code="bad_response_body", retryable=False)
    data = [{"url": item["url"]} for item in payload["data"] if isinstance(item, dict) and item.get("url")]
    return {"created": payload.get("created") or int(time.time()), "data": data}


def _finish(choice: dict) -> None:
    reason = choice.get("finish_reason")
    if reason in FINISH:
        choice["finish_reason"] = FINISH[reason]


class ZhipuAdapter(OpenAIAdapter):
    channel_type: ClassVar[int] = 16
    label: ClassVar[str] = "Zhipu GLM"
    default_base_url: ClassVar[str] = "https://open.bigmodel.cn"
    modes: ClassVar[tuple[str, ...]] = ("chat", "embeddings", "images")
    # CogView makes one image a request, and answers with links only: `n` images are `n` requests, and a
    # client asking for `b64_json` needs the links fetched (open).
    complete_modes: ClassVar[tuple[str, ...]] = ("images",)

    def base_url(self, channel: ChannelInfo) -> str:
        # Accept an SDK-style base (".../api/paas/v4", also z.ai's) as well as the bare host.
        return super().base_url(channel).removesuffix(API_PREFIX)

    def path(self, mode: str, model: str, channel: ChannelInfo) -> str:
        return API_PREFIX + PATHS.get(mode, "/chat/completions")

    def auth_headers(self, channel: ChannelInfo) -> dict[str, str]:
        return {"Authorization": f"Bearer {zhipu_token(channel.key)}"}

    def build_request(self, ctx: RequestContext) -> UpstreamRequest:
        channel, mode, body, stream = ctx.channel, ctx.mode, ctx.body, ctx.stream
        if mode not in self.modes:
            raise UpstreamError(status=400, message=f"Zhipu does not serve {mode}.", type="invalid_request_error",
                                code="unsupported_mode")
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
        headers.update(self.auth_headers(channel))
        if mode == "embeddings":
            # embedding-2 takes one string; embedding-3 also a list (up to 64): the input goes as sent.
            # Zhipu answers floats only, so `encoding_format` is not forwarded.
            payload = {k: v for k, v in body.items() if k in ("model", "input", "dimensions")}
        elif mode == "images":
            payload = image_body(body)
        else:
            payload = chat_body(body, stream)
        url = self.base_url(channel) + self.path(mode, body.get("model", ""), channel)
        return UpstreamRequest("POST", url, headers, orjson.dumps(payload))

    def parse_response(self, ctx: RequestContext, *, body: bytes) -> tuple[bytes, Usage | None]:
        if ctx.mode == "images":
            return orjson.dumps(image_answer(body)), None
        payload = json_or_none(body)
        check_answer(payload, self.label, "choices" if ctx.mode == "chat" else "data",
                     what=f"an OpenAI {ctx.mode} answer", error=lambda found: self.error_in_answer(ctx, found, body))
        # Zhipu omits `object`; OpenAI clients read it.
        if ctx.mode == "chat":
            payload.setdefault("object", "chat.completion")
            for choice in payload.get("choices") or ():
                if isinstance(choice, dict):
                    _finish(choice)
        else:
            payload.setdefault("object", "list")
        return orjson.dumps(payload), usage_from(payload)

    async def open(self, ctx: RequestContext, *, session) -> Opened:
        """Chat and embeddings are one request; images are answered whole: `n` CogView requests at once (one
        image each), the links fetched for a client asking `b64_json`."""
        if ctx.mode not in self.complete_modes:
            return await super().open(ctx, session=session)
        request = self.build_request(ctx)

        async def one() -> dict:
            return image_answer(await self.send(ctx, request, session=session))

        answers = await fan_out(ctx.body.get("n", 1), one)
        answer = {"created": answers[0]["created"], "data": [item for a in answers for item in a["data"]]}
        if ctx.body.get("response_format") == "b64_json":
            images = await vendor_images_b64(session, [item["url"] for item in answer["data"]])
            answer["data"] = [{"b64_json": image} for image in images]
        return WholeAnswer(ctx, orjson.dumps(answer))

    def stream_decoder(self, ctx: RequestContext) -> StreamDecoder:
        return ZhipuStreamDecoder()

    def parse_error(self, ctx: RequestContext, *, status: int, body: bytes,
                    headers: Mapping[str, str] | None = None) -> UpstreamError:
        err = super().parse_error(ctx, status=status, body=body, headers=headers)
        vendor = err.error_body or {}
        code = str(vendor.get("code") or "")
        if not code:
            return err
        type_, mapped, retryable = "upstream_error", code, retryable_status(status)
        if code in RATE_LIMITED:
            type_, mapped, retryable = "rate_limit_error", "rate_limit_exceeded", True
        elif code in AUTH_FAILED:
            type_, mapped, retryable = "authentication_error", "invalid_api_key", False
        elif code in ACCOUNT:
            type_, mapped, retryable = "insufficient_quota", "insufficient_quota", False
        elif code == "1301":
            type_, mapped, retryable = "invalid_request_error", "content_filter", False
        elif code == "1211":
            type_, mapped, retryable = "invalid_request_error", "model_not_found", False
        elif (code.startswith("12") and code != "1234") or code == "1304":
            retryable = False  # bad parameters, prompt too long, daily quota: the same answer everywhere
        # The vendor's own code stays visible beside the OpenAI-style one.
        error_body = {"message": err.message, "type": type_, "param": None, "code": mapped, "zhipu_code": code}
        return UpstreamError(status=status, message=err.message, type=type_, code=mapped, param=None,
                             retryable=retryable, error_body=error_body)


class ZhipuStreamDecoder(StreamDecoder):
    """Zhipu's chunks are OpenAI's without `object`; its last chunk carries usage beside the finish
    reason (one-api#1006 lost it). The usage moves into a chunk of its own, as OpenAI sends it, so a
    client that did not ask for usage does not see it, and the bill uses it either way."""

    def feed(self, event: bytes, data: bytes) -> list[StreamEvent]:
        if data.strip() == b"[DONE]":
            return [StreamEvent(data=None, done=True)]
        payload = json_or_none(data)
        if not isinstance(payload, dict):
            return [StreamEvent(data=data, malformed=True)]  # as the OpenAI adapter does: forwarded, not fatal
        if "error" in payload and not payload.get("choices"):
            return [parse_chunk(data)]  # OpenAI's error object, read as the OpenAI adapter reads it
        usage = usage_from(payload)
        if usage is None and "choices" not in payload:
            return [StreamEvent(data=data, malformed=True)]
        payload.setdefault("object", "chat.completion.chunk")
        raw_usage = payload.pop("usage", None)
        text = ""
        reasoning = False
        for choice in payload.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            _finish(choice)
            delta = choice.get("delta") or {}
            reasoning = reasoning or has_reasoning(delta)
            if isinstance(delta.get("content"), str):
                text += delta["content"]
            for call in delta.get("tool_calls") or ():
                fn = call.get("function") or {}
                text += (fn.get("name") or "") + (fn.get("arguments") or "")
        events = []
        if payload.get("choices") or usage is None:
            events.append(StreamEvent(data=orjson.dumps(payload), text=text, reasoning=reasoning))
        if usage is not None:
            usage_chunk = {k: payload[k] for k in ("id", "object", "created", "model") if k in payload}
            usage_chunk["choices"] = []
            usage_chunk["usage"] = {**raw_usage, **usage_json(usage)}  # Zhipu's own details kept
            events.append(StreamEvent(data=orjson.dumps(usage_chunk), usage=usage, usage_only=True))
        return events
