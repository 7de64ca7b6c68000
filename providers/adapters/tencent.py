"""Tencent Hunyuan through Tencent Cloud API 3.0, version 2023-09-01.

Chat: ChatCompletions (https://cloud.tencent.com/document/api/1729/105701); embeddings: GetEmbedding
(`Input`, or `InputList` for a batch). Every call is a POST to `{base}/` with the action
in `X-TC-Action`, signed with TC3-HMAC-SHA256 (https://cloud.tencent.com/document/api/213/30654).
Hunyuan spells its fields in capitals (`Messages`, `Role`, `Content`) and answers errors as HTTP 200
with `Response.Error`, so parse_response raises them.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import orjson

from providers.adapters.base import (
    Adapter,
    RequestContext,
    StreamDecoder,
    StreamEvent,
    UpstreamError,
    UpstreamRequest,
    Usage,
    json_or_none,
    retryable_status,
)
from providers.adapters.inline_images import image_url
from providers.adapters.openai_shapes import (
    call_id,
    chat_chunk,
    chat_completion,
    count,
    delta_choice,
    embedding,
    embeddings_list,
    error_event,
    finish_reason,
    message_choice,
    tool_call,
    usage_event,
    usage_json,
)

SERVICE = "hunyuan"
API_VERSION = "2023-09-01"
ALGORITHM = "TC3-HMAC-SHA256"
SIGNED_HEADERS = "content-type;host"
CONTENT_TYPE = "application/json"  # signed as is: the header sent must be exactly this

FINISH_REASONS = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "sensitive": "content_filter"}

# Tencent Cloud API 3.0's common error codes and Hunyuan's own (its API doc's error code table), by prefix:
# (HTTP status for the client, OpenAI error type, whether another channel may answer).
ERROR_CLASSES: tuple[tuple[str, int, str, bool], ...] = (
    ("AuthFailure", 401, "authentication_error", False),
    ("UnauthorizedOperation", 403, "permission_error", False),
    ("RequestLimitExceeded", 429, "rate_limit_error", True),
    ("LimitExceeded", 429, "rate_limit_error", True),
    ("FailedOperation.EngineServerLimitExceeded", 429, "rate_limit_error", True),
    ("InternalError", 500, "upstream_error", True),
    ("FailedOperation.Engine", 503, "upstream_error", True),  # EngineServerError, EngineRequestTimeout
    ("ResourceUnavailable", 503, "upstream_error", True),
    ("ResourceInsufficient", 403, "insufficient_quota", False),
    ("FailedOperation.Service", 403, "permission_error", False),  # ServiceNotActivated, ServiceStop(Arrears)
    ("InvalidParameter", 400, "invalid_request_error", False),
    ("MissingParameter", 400, "invalid_request_error", False),
    ("UnknownParameter", 400, "invalid_request_error", False),
    ("InvalidAction", 400, "invalid_request_error", False),
    ("UnsupportedOperation", 400, "invalid_request_error", False),
    ("OperationDenied", 403, "permission_error", False),
    ("FailedOperation", 400, "invalid_request_error", False),
)


def bad_input(message: str, param: str = "messages", code: str = "invalid_request") -> UpstreamError:
    return UpstreamError(status=400, message=message, type="invalid_request_error", code=code, param=param)


# --- signing -------------------------------------------------------------------------------------


def credentials(key: str) -> tuple[str, str]:
    """SecretId and SecretKey from one-api's `AppId|SecretId|SecretKey` (the AppId is unused by API 3.0)
    or a bare `SecretId|SecretKey`."""
    parts = [p.strip() for p in key.strip().split("|")]
    if len(parts) == 3:
        parts = parts[1:]
    if len(parts) != 2 or not all(parts):
        # Never echo the key: its last part is the signing secret.
        raise UpstreamError(status=500, message="The Tencent Hunyuan channel key is malformed: it must be "
                                                "`AppId|SecretId|SecretKey` or `SecretId|SecretKey`.",
                            type="one_api_error", code="invalid_channel_key", retryable=False)
    return parts[0], parts[1]


def signing_host(url: str) -> str:
    """The Host header the HTTP client will send for `url`: the signature covers it."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    default = {"https": ":443", "http": ":80"}.get(parts.scheme, "")
    if default and netloc.endswith(default):
        netloc = netloc[: -len(default)]
    return netloc


def tc3_authorization(*, secret_id: str, secret_key: str, url: str, payload: bytes, timestamp: int,
                      service: str = SERVICE, content_type: str = CONTENT_TYPE) -> str:
    """The `Authorization` header of API 3.0's signature v3, step by step as the doc gives it."""
    parts = urlsplit(url)
    date = datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d")
    canonical_headers = f"content-type:{content_type}\nhost:{signing_host(url)}\n"
    canonical_request = "\n".join(["POST", parts.path or "/", parts.query, canonical_headers, SIGNED_HEADERS,
                                   hashlib.sha256(payload).hexdigest()])
    scope = f"{date}/{service}/tc3_request"
    string_to_sign = "\n".join([ALGORITHM, str(timestamp), scope,
                                hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()])

    def sign(key: bytes, message: str) -> bytes:
        return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()

    signing_key = sign(sign(sign(("TC3" + secret_key).encode("utf-8"), date), service), "tc3_request")
    signature = hmac.new(signing_key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{ALGORITHM} Credential={secret_id}/{scope}, SignedHeaders={SIGNED_HEADERS}, Signature={signature}"


# --- request -------------------------------------------------------------------------------------


def convert_content(content: Any) -> tuple[str, list[dict] | None]:
    """OpenAI content → Hunyuan's `Content` text, or `Contents` parts when images are present."""
    if content is None:
        return "", None
    if isinstance(content, str):
        return content, None
    parts: list[dict] = []
    texts: list[str] = []
    has_image = False
    for part in content if isinstance(content, list) else ():
        if isinstance(part, str):
            part = {"type": "text", "text": part}
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
            parts.append({"Type": "text", "Text": part["text"]})
        elif part.get("type") == "image_url":
            url = image_url(part) or ""
            # Hunyuan takes http(s) URLs and data: URLs alike (ChatCompletions, `Content.ImageUrl`).
            if not url.startswith(("http://", "https://", "data:")):
                raise bad_input("An image_url must be an http(s) or data: URL.", code="invalid_image_url")
            has_image = True
            parts.append({"Type": "image_url", "ImageUrl": {"Url": url}})
    return "\n".join(texts), parts if has_image else None


def convert_tool_calls(calls: Any) -> list[dict]:
    out = []
    for call in calls or ():
        if not isinstance(call, dict):
            continue
        fn = call.get("function") or {}
        out.append({"Id": call.get("id") or "", "Type": "function",
                    "Function": {"Name": fn.get("name") or "", "Arguments": fn.get("arguments") or "{}"}})
    return out


def convert_messages(messages: list) -> list[dict]:
    """Hunyuan wants one leading system message, then user (or tool) and assistant in turns: system
    messages are gathered on top and plain neighbours of one role are merged."""
    system: list[str] = []
    turns: list[dict] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        text, parts = convert_content(message.get("content"))
        if role in ("system", "developer"):
            if text:
                system.append(text)
            continue
        if role == "tool":
            turns.append({"Role": "tool", "Content": text, "ToolCallId": message.get("tool_call_id") or ""})
            continue
        converted: dict[str, Any] = {"Role": "assistant" if role == "assistant" else "user"}
        if parts is not None:
            converted["Contents"] = parts
        elif text:
            converted["Content"] = text
        if role == "assistant" and (calls := convert_tool_calls(message.get("tool_calls"))):
            converted["ToolCalls"] = calls
        previous = turns[-1] if turns else None
        if (previous and previous["Role"] == converted["Role"] and set(previous) == {"Role", "Content"}
                and set(converted) == {"Role", "Content"}):
            previous["Content"] += "\n" + converted["Content"]
        elif len(converted) > 1:
            turns.append(converted)
    if system:
        turns.insert(0, {"Role": "system", "Content": "\n".join(system)})
    return turns


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def convert_tools(body: dict, request: dict) -> None:
    tools = [t["function"] for t in body.get("tools") or () if isinstance(t, dict)
             and t.get("type", "function") == "function" and isinstance(t.get("function"), dict)]
    if not tools:
        return
    # Hunyuan takes the JSON schema as a string (`ToolFunction.Parameters`).
    request["Tools"] = [{"Type": "function", "Function": {
        "Name": fn.get("name") or "", "Description": fn.get("description") or "",
        "Parameters": orjson.dumps(fn.get("parameters") or {"type": "object", "properties": {}}).decode()}}
        for fn in tools]
    choice = body.get("tool_choice")
    named = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
    if choice == "required" and len(tools) == 1:
        named = tools[0].get("name")  # Hunyuan has no "any tool": forcing the only tool is the same thing
    if named:
        chosen = next((t for t in request["Tools"] if t["Function"]["Name"] == named), None)
        if chosen is None:
            raise bad_input(f"tool_choice names {named!r}, which is not among the tools.", param="tool_choice")
        request["ToolChoice"], request["CustomTool"] = "custom", chosen
    elif choice in ("none", "auto"):
        request["ToolChoice"] = choice


def to_chat_request(body: dict, stream: bool) -> dict:
    request: dict[str, Any] = {"Model": body.get("model"), "Messages": convert_messages(body.get("messages") or []),
                               "Stream": stream}
    # ChatCompletions has no output-length parameter: max_tokens / max_completion_tokens cannot be passed on.
    if (temperature := _number(body.get("temperature"))) is not None:
        request["Temperature"] = max(0.0, min(temperature, 2.0))  # Hunyuan's range is [0, 2]
    if (top_p := _number(body.get("top_p"))) is not None:
        request["TopP"] = max(0.0, min(top_p, 1.0))
    seed = body.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool) and seed > 0:
        request["Seed"] = seed
    stop = body.get("stop")
    if stop:
        request["Stop"] = [stop] if isinstance(stop, str) else [s for s in stop if isinstance(s, str)]
    convert_tools(body, request)
    return request


def to_embedding_request(body: dict) -> dict:
    value = body.get("input")
    if isinstance(value, str):
        return {"Input": value}
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return {"Input": value[0]} if len(value) == 1 else {"InputList": value}
    raise bad_input("Hunyuan embeddings take text: `input` must be a string or a list of strings.", param="input")


# --- answers -------------------------------------------------------------------------------------


def _cached(usage: dict) -> int:
    """`PromptTokensDetails.CachedTokens`, the prompt tokens read from Hunyuan's cache. Tencent's API schema
    types it as a string (tencentcloud-sdk hunyuan v20230901 PromptTokensDetails), so a numeric string counts."""
    details = usage.get("PromptTokensDetails")
    value = details.get("CachedTokens") if isinstance(details, dict) else None
    if isinstance(value, str):
        value = int(value) if value.strip().isdecimal() else 0
    return count(value)


def usage_from(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    prompt, completion = int(usage.get("PromptTokens") or 0), int(usage.get("CompletionTokens") or 0)
    if not prompt and not completion and usage.get("TotalTokens"):
        prompt = int(usage["TotalTokens"])  # embeddings report the input only
    return Usage(prompt_tokens=prompt, completion_tokens=completion, cached_tokens=min(_cached(usage), prompt))


def error_from(error: dict, request_id: Any = None) -> UpstreamError:
    """Tencent's `{"Code": "AuthFailure.SignatureFailure", "Message": ...}`, its message and code kept."""
    code = str(error.get("Code") or error.get("code") or "")
    message = str(error.get("Message") or error.get("Msg") or f"Tencent Hunyuan answered error {code}")
    if request_id:
        message += f" (request id: {request_id})"
    status, kind, retryable = 500, "upstream_error", False
    for prefix, status_, kind_, retryable_ in ERROR_CLASSES:
        if code.startswith(prefix):
            status, kind, retryable = status_, kind_, retryable_
            break
    return UpstreamError(status=status, message=message, type=kind, code=code or "upstream_error",
                         retryable=retryable,
                         error_body={"message": message, "type": kind, "param": None, "code": code or None})


def _response(body: bytes) -> dict:
    payload = json_or_none(body)
    response = payload.get("Response") if isinstance(payload, dict) else None
    if not isinstance(response, dict):
        raise UpstreamError(status=502, message="Tencent Hunyuan answered with something that is not an API "
                                                "3.0 response.", code="bad_response", retryable=True)
    if isinstance(response.get("Error"), dict):
        raise error_from(response["Error"], response.get("RequestId"))
    return response


def tool_calls_of(calls: Any) -> list[dict]:
    out = []
    for call in calls or ():
        fn = call.get("Function") or {}
        out.append(tool_call(call.get("Id") or call_id(), fn.get("Name") or "", fn.get("Arguments") or ""))
    return out


def to_chat_completion(response: dict) -> tuple[dict, Usage | None]:
    choices = []
    for position, choice in enumerate(response.get("Choices") or ()):
        message = choice.get("Message") or {}
        calls = tool_calls_of(message.get("ToolCalls"))
        out: dict[str, Any] = {"role": "assistant", "content": message.get("Content") or ("" if not calls else None)}
        if message.get("ReasoningContent"):
            out["reasoning_content"] = message["ReasoningContent"]
        if calls:
            out["tool_calls"] = calls
        finish = finish_reason(choice.get("FinishReason"), FINISH_REASONS, tool_calls=bool(calls))
        choices.append(message_choice(choice.get("Index", position), out, finish))
    usage = usage_from(response.get("Usage"))
    answer = chat_completion(
        id=f"chatcmpl-{response.get('Id') or response.get('RequestId') or uuid.uuid4().hex}",
        # Hunyuan does not echo the model, and parse_response is not told it.
        model="hunyuan", choices=choices, usage=usage_json(usage) if usage is not None else None,
        created=int(response.get("Created") or time.time()))
    return answer, usage


def to_embeddings(response: dict) -> tuple[dict, Usage | None]:
    data = [embedding(item.get("Index", i), item.get("Embedding") or [])
            for i, item in enumerate(response.get("Data") or ())]
    usage = usage_from(response.get("Usage"))
    return embeddings_list(data, "hunyuan-embedding", usage.prompt_tokens if usage else None), usage


class TencentAdapter(Adapter):
    channel_type: ClassVar[int] = 23
    label: ClassVar[str] = "Tencent Hunyuan"
    default_base_url: ClassVar[str] = "https://hunyuan.tencentcloudapi.com"
    config_fields: ClassVar[tuple[str, ...]] = ("region",)
    modes: ClassVar[tuple[str, ...]] = ("chat", "embeddings")
    default_models: ClassVar[tuple[str, ...]] = (
        "hunyuan-turbos-latest", "hunyuan-t1-latest", "hunyuan-turbo", "hunyuan-large", "hunyuan-standard",
        "hunyuan-standard-256K", "hunyuan-lite", "hunyuan-pro", "hunyuan-functioncall", "hunyuan-vision",
        "hunyuan-embedding",
    )

    signs_body: ClassVar[bool] = True

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock  # the signature covers the time: tests pin it

    def build_request(self, ctx: RequestContext) -> UpstreamRequest:
        channel = ctx.channel
        if ctx.mode == "chat":
            action, payload = "ChatCompletions", to_chat_request(ctx.body, ctx.stream)
        elif ctx.mode == "embeddings":
            action, payload = "GetEmbedding", to_embedding_request(ctx.body)
        else:
            raise bad_input(f"Tencent Hunyuan channels do not serve {ctx.mode}.", param="model")
        secret_id, secret_key = credentials(channel.key)
        url = (channel.base_url or self.default_base_url).rstrip("/") + "/"
        data = self.override_body(ctx, orjson.dumps(payload))  # before signing: the signature covers the body
        timestamp = int(self.clock())
        headers = {
            "Content-Type": CONTENT_TYPE,
            "X-TC-Action": action,
            "X-TC-Version": API_VERSION,
            "X-TC-Timestamp": str(timestamp),
            "Authorization": tc3_authorization(secret_id=secret_id, secret_key=secret_key, url=url, payload=data,
                                               timestamp=timestamp),
        }
        if region := str(channel.config.get("region") or "").strip():
            headers["X-TC-Region"] = region
        return UpstreamRequest("POST", url, headers, data)

    def parse_response(self, ctx: RequestContext, *, body: bytes) -> tuple[bytes, Usage | None]:
        response = _response(body)
        answer, usage = to_embeddings(response) if ctx.mode == "embeddings" else to_chat_completion(response)
        return orjson.dumps(answer), usage

    def stream_decoder(self, ctx: RequestContext) -> StreamDecoder:
        return HunyuanStreamDecoder(ctx.client_model)

    def parse_error(self, ctx: RequestContext, *, status: int, body: bytes,
                    headers: Mapping[str, str] | None = None) -> UpstreamError:
        payload = json_or_none(body)
        response = payload.get("Response") if isinstance(payload, dict) else None
        if isinstance(response, dict) and isinstance(response.get("Error"), dict):
            err = error_from(response["Error"], response.get("RequestId"))
            err.retryable = err.retryable or retryable_status(status)
            return err
        return super().parse_error(ctx, status=status, body=body, headers=headers)


class HunyuanStreamDecoder(StreamDecoder):
    """Hunyuan's SSE `data:` events (no event names) → OpenAI chunks.

    Every event repeats the cumulative `Usage`, so a cut stream is still billed by Hunyuan's counts;
    the usage chunk for the client is sent once, when the stream ends.
    """

    def __init__(self, model: str) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.model = model
        self.created = int(time.time())
        self.role_sent = False
        self.usage: Usage | None = None
        self.tools: dict[Any, int] = {}  # Hunyuan's call Index (or Id) → OpenAI tool call index

    def chunk(self, delta: dict, finish: str | None = None, index: int = 0) -> bytes:
        return chat_chunk(id=self.id, created=self.created, model=self.model,
                          choices=[delta_choice(delta, finish, index=index)])

    def tool_deltas(self, calls: Any) -> tuple[list[dict], str]:
        """Hunyuan streams a call in pieces to merge by its Id (newer answers also number them)."""
        out, text = [], ""
        for position, call in enumerate(calls or ()):
            if not isinstance(call, dict):
                continue
            key = call["Index"] if isinstance(call.get("Index"), int) else (call.get("Id") or position)
            fn = call.get("Function") or {}
            arguments = fn.get("Arguments") or ""
            if key not in self.tools:
                index = self.tools[key] = len(self.tools)
                name = fn.get("Name") or ""
                out.append(tool_call(call.get("Id") or call_id(), name, arguments, index=index))
                text += name + arguments
            elif arguments:
                out.append({"index": self.tools[key], "function": {"arguments": arguments}})
                text += arguments
        return out, text

    def feed(self, event: bytes, data: bytes) -> list[StreamEvent]:
        if data.strip() == b"[DONE]":
            return [StreamEvent(data=None, done=True)]
        payload = json_or_none(data)
        if not isinstance(payload, dict):
            return []  # a garbled event is dropped; the rest of the stream still counts
        if isinstance(payload.get("Response"), dict):
            payload = payload["Response"]
        error = payload.get("ErrorMsg") or payload.get("Error")
        if isinstance(error, dict) and (error.get("Msg") or error.get("Message") or error.get("Code")):
            return [error_event(error_from(error, payload.get("RequestId") or payload.get("Id")))]
        if payload.get("Id"):
            self.id = f"chatcmpl-{payload['Id']}"
        self.created = int(payload.get("Created") or self.created)
        out: list[StreamEvent] = []
        for position, choice in enumerate(payload.get("Choices") or ()):
            if not isinstance(choice, dict):
                continue
            delta = choice.get("Delta") or {}
            converted: dict[str, Any] = {}
            if not self.role_sent:
                converted["role"] = "assistant"
                self.role_sent = True
            text = ""
            if delta.get("ReasoningContent"):
                converted["reasoning_content"] = delta["ReasoningContent"]
                text += delta["ReasoningContent"]
            if delta.get("Content"):
                converted["content"] = delta["Content"]
                text += delta["Content"]
            calls, call_text = self.tool_deltas(delta.get("ToolCalls"))
            if calls:
                converted["tool_calls"] = calls
            reason = choice.get("FinishReason")
            finish = finish_reason(reason, FINISH_REASONS) if reason else None
            if converted or finish:
                out.append(StreamEvent(data=self.chunk(converted, finish, choice.get("Index", position)),
                                       text=text + call_text, reasoning="reasoning_content" in converted))
        usage = usage_from(payload.get("Usage"))
        if usage is not None:
            self.usage = usage
            if out:
                out[-1].usage = usage
            else:
                out.append(StreamEvent(data=None, usage=usage))
        return out

    def close(self) -> list[StreamEvent]:
        if self.usage is None:
            return []
        return [usage_event(id=self.id, created=self.created, model=self.model, usage=self.usage)]
