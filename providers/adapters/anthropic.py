"""Anthropic Claude through the Messages API (https://docs.anthropic.com/en/api/messages).

OpenAI chat requests become Messages requests (system prompt on top, strictly
alternating turns, tool calls as content blocks); answers and SSE streams come
back as OpenAI's chat.completion objects and chunks, with Anthropic's own usage.
"""

from __future__ import annotations

import base64
import re
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

import orjson

from providers.adapters.base import (
    Adapter,
    ChannelInfo,
    NativeStream,
    RequestContext,
    StreamDecoder,
    StreamEvent,
    UpstreamError,
    UpstreamRequest,
    Usage,
    check_answer,
    json_or_none,
    retryable_status,
)
from providers.adapters.openai_shapes import (
    MAX_COUNT,
    chat_chunk,
    chat_completion,
    count,
    delta_choice,
    error_event,
    finish_reason,
    message_choice,
    tool_call,
    usage_event,
    usage_json,
)

DEFAULT_VERSION = "2023-06-01"
# Anthropic requires max_tokens; one-api sends 4096 when the client gives none.
DEFAULT_MAX_TOKENS = 4096

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# OpenAI's reasoning_effort as a thinking budget, chosen so that the Messages ingress (which buckets a budget
# into an effort: up to 4096 low, up to 16384 medium) reads each back as the effort it came from.
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}
MIN_THINKING_BUDGET = 1024  # https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking
# Claude thinks from 3.7 on; the older models answer 400 to `thinking`, and clients such as Codex send an
# effort with every request, so for those it is dropped.
NO_THINKING = re.compile(r"claude-(?:instant|2|3-(?!7))")

THINKING_BLOCKS = ("thinking", "redacted_thinking")

# https://docs.anthropic.com/en/api/errors: these clear up by themselves, so another channel may answer.
RETRYABLE_ERRORS = {"overloaded_error", "rate_limit_error", "api_error", "timeout_error"}


def bad_input(message: str, param: str = "messages") -> UpstreamError:
    """A request we cannot express in Anthropic's format: the client's fault, never retried."""
    return UpstreamError(status=400, message=message, type="invalid_request_error", code="invalid_request",
                         param=param)


# --- request -------------------------------------------------------------------------------------


def image_block(url: str) -> dict:
    """OpenAI's image_url → Anthropic's image source: base64 for data: URLs, a URL source otherwise."""
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        if not sep:
            raise bad_input("An image data: URL has no data.")
        media_type, _, encoding = header.partition(";")
        if encoding != "base64":  # percent-encoded data URLs are rare but legal
            data = base64.b64encode(urllib.parse.unquote_to_bytes(data)).decode()
        return {"type": "image", "source": {"type": "base64", "media_type": media_type or "image/png", "data": data}}
    if url.startswith(("http://", "https://")):
        # Anthropic fetches URL images itself (source type "url"), so nothing is downloaded here.
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise bad_input("Images must be http(s) or data: URLs.")


def content_blocks(content: Any) -> list[dict]:
    """OpenAI message content (a string or parts) → Anthropic blocks; empty text is dropped (Anthropic
    rejects empty text blocks)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict] = []
    for part in content if isinstance(content, list) else ():
        if isinstance(part, str):
            part = {"type": "text", "text": part}
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and part.get("text"):
            blocks.append({"type": "text", "text": part["text"]})
        elif part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if isinstance(url, str):
                blocks.append(image_block(url))
    return blocks


def text_of(content: Any) -> str:
    return "".join(b["text"] for b in content_blocks(content) if b["type"] == "text")


def tool_use_blocks(tool_calls: Any) -> list[dict]:
    blocks = []
    for call in tool_calls or ():
        fn = call.get("function") or {}
        try:
            arguments = orjson.loads(fn.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            arguments = {}
        blocks.append({"type": "tool_use", "id": call.get("id") or "", "name": fn.get("name") or "",
                       "input": arguments if isinstance(arguments, dict) else {}})
    return blocks


def signed_blocks(value: Any) -> list[dict]:
    """The signed thinking blocks a chat message carries in `thinking_blocks` (LiteLLM's field for them,
    https://docs.litellm.ai/docs/reasoning_content), kept as Anthropic wants them back: a thinking block with
    its signature, or a redacted one with its data. Unsigned thinking is of no use to Anthropic and is left out."""
    blocks = []
    for block in value if isinstance(value, list) else ():
        if not isinstance(block, dict):
            continue
        if (block.get("type") == "thinking" and isinstance(block.get("thinking"), str)
                and isinstance(block.get("signature"), str) and block["signature"]):
            blocks.append({"type": "thinking", "thinking": block["thinking"], "signature": block["signature"]})
        elif block.get("type") == "redacted_thinking" and isinstance(block.get("data"), str) and block["data"]:
            blocks.append({"type": "redacted_thinking", "data": block["data"]})
    return blocks


def convert_messages(messages: list, *, signed: bool = False) -> tuple[str, list[dict]]:
    """The system prompt and the turns. Anthropic has no system role and wants user and assistant
    to alternate, so system messages go on top and neighbours of one role are merged. With `signed`, the
    assistant turns start with the signed thinking their messages carry (for a request that thinks)."""
    system: list[str] = []
    turns: list[dict] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role in ("system", "developer"):
            if text := text_of(message.get("content")):
                system.append(text)
            continue
        if role == "tool":
            # Tool results travel in a user turn: https://docs.anthropic.com/en/docs/build-with-claude/tool-use
            result = content_blocks(message.get("content"))
            role, blocks = "user", [{"type": "tool_result", "tool_use_id": message.get("tool_call_id") or "",
                                     "content": result}]
        elif role == "assistant":
            # Anthropic wants the signed thinking first, before the text and the calls it led to.
            thought = signed_blocks(message.get("thinking_blocks")) if signed else []
            blocks = thought + content_blocks(message.get("content")) + tool_use_blocks(message.get("tool_calls"))
        else:
            role, blocks = "user", content_blocks(message.get("content"))
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return "\n".join(system), turns


def convert_tool_choice(choice: Any, parallel: Any) -> dict | None:
    if choice in (None, "auto"):
        converted = {"type": "auto"}
    elif choice == "none":
        converted = {"type": "none"}
    elif choice == "required":
        converted = {"type": "any"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        converted = {"type": "tool", "name": choice["function"].get("name") or ""}
    else:
        return None
    if parallel is False and converted["type"] != "none":
        converted["disable_parallel_tool_use"] = True
    return converted


def thinking(effort: Any, max_tokens: Any, model: Any) -> dict | None:
    """Anthropic's `thinking` for a reasoning effort. The budget counts within max_tokens and must stay
    below it, as OpenAI's reasoning tokens count within max_completion_tokens: a client's limit too small
    to think in (under Anthropic's 1024) leaves thinking off."""
    budget = THINKING_BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is None or (isinstance(model, str) and NO_THINKING.search(model)):
        return None
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        budget = min(budget, max_tokens - 1)
    return {"type": "enabled", "budget_tokens": budget} if budget >= MIN_THINKING_BUDGET else None


def thinking_refused(body: dict, turns: list[dict]) -> bool:
    """Whether Anthropic would refuse thinking on this request
    (https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking): when a tool call is forced, and
    when tool results go back without the signed thinking block that came before the calls. The answers give
    that block to chat clients in `thinking_blocks`; a client that sends it back on every assistant turn keeps
    thinking in its tool loop, one that drops it (most do) gets answers without thinking, which Anthropic accepts."""
    choice = body.get("tool_choice")
    if body.get("tools") and (choice == "required" or isinstance(choice, dict)):
        return True
    returning = bool(turns) and turns[-1]["role"] == "user" and any(
        block.get("type") == "tool_result" for block in turns[-1]["content"])
    return returning and not all(turn["content"][0]["type"] in THINKING_BLOCKS
                                 for turn in turns if turn["role"] == "assistant")


def to_messages_request(body: dict, stream: bool) -> dict:
    system, turns = convert_messages(body.get("messages") or [], signed=True)
    asked_max = body.get("max_tokens") or body.get("max_completion_tokens")
    think = None if thinking_refused(body, turns) else thinking(body.get("reasoning_effort"), asked_max,
                                                                body.get("model"))
    if not think and any(turn["content"][0]["type"] in THINKING_BLOCKS for turn in turns):
        # Without thinking the history goes without it, as before signatures were kept: Anthropic refuses
        # thinking in a final (prefilled) assistant turn then, and models that do not think know no such block.
        system, turns = convert_messages(body.get("messages") or [])
    request: dict[str, Any] = {
        "model": body.get("model"),
        "messages": turns,
        # Without the client's limit, the answer gets one-api's default on top of the thinking.
        "max_tokens": asked_max or DEFAULT_MAX_TOKENS + (think["budget_tokens"] if think else 0),
    }
    if system:
        request["system"] = system
    if think:
        request["thinking"] = think
        # Anthropic refuses a temperature other than 1, top_k, and most top_p values while thinking.
        body = {k: v for k, v in body.items() if k not in ("temperature", "top_p", "top_k")}
    temperature = body.get("temperature")
    if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
        # OpenAI allows 0..2, Anthropic 0..1 and answers 400 above it.
        temperature = max(0.0, min(float(temperature), 1.0))
    if temperature is not None:
        request["temperature"] = temperature
    # Claude Sonnet 4.5 and later answer 400 "temperature and top_p cannot both be specified", and many
    # OpenAI clients send both by default: keep temperature, which Anthropic's docs suggest tuning instead.
    if body.get("top_p") is not None and temperature is None:
        request["top_p"] = body["top_p"]
    if body.get("top_k") is not None:
        request["top_k"] = body["top_k"]
    stop = body.get("stop")
    if stop:
        request["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if isinstance(body.get("user"), str) and body["user"]:
        request["metadata"] = {"user_id": body["user"]}
    tools = [t["function"] for t in body.get("tools") or () if isinstance(t, dict) and t.get("type") == "function"
             and isinstance(t.get("function"), dict)]
    if tools:
        request["tools"] = [{"name": fn.get("name") or "", "description": fn.get("description") or "",
                             "input_schema": fn.get("parameters") or {"type": "object", "properties": {}}}
                            for fn in tools]
        choice = convert_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice:
            request["tool_choice"] = choice
    if stream:
        request["stream"] = True
    return request


# --- answers -------------------------------------------------------------------------------------


def usage_from(usage: Any) -> Usage:
    """Anthropic's usage (https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching): input_tokens
    leave out the cache, which it counts as cache_read_input_tokens and cache_creation_input_tokens (the
    writes, split into ephemeral_5m_input_tokens and ephemeral_1h_input_tokens under `cache_creation`), so
    the prompt is all three, as OpenAI counts its own cached tokens in the prompt."""
    usage = usage if isinstance(usage, dict) else {}
    read = count(usage.get("cache_read_input_tokens"))
    split = usage.get("cache_creation") if isinstance(usage.get("cache_creation"), dict) else {}
    hour = count(split.get("ephemeral_1h_input_tokens"))
    # The total, or the split where only the split is given.
    written = max(count(usage.get("cache_creation_input_tokens")),
                  count(split.get("ephemeral_5m_input_tokens")) + hour)
    prompt = count(usage.get("input_tokens")) + read + written
    if prompt > MAX_COUNT:
        # Each part passed the cap, their sum does not: junk as a single count past it is, so the request is
        # counted locally instead of billed for billions of tokens nobody sent.
        return Usage()
    return Usage(prompt_tokens=prompt,
                 completion_tokens=count(usage.get("output_tokens")),
                 cached_tokens=read, cache_write_tokens=written, cache_write_1h_tokens=min(hour, written))


def prompt_usage_from(usage: Any) -> Usage | None:
    """message_start's usage, the prompt side only: its output_tokens is a placeholder, not the answer's."""
    if not isinstance(usage, dict):
        return None
    prompt = usage_from(usage)
    return replace(prompt, completion_tokens=0) if prompt.prompt_tokens else None


def error_from(status: int, error: Any) -> UpstreamError:
    """Anthropic's `{"type": "error", "error": {"type", "message"}}`, its type and message kept."""
    error = error if isinstance(error, dict) else {}
    kind = str(error.get("type") or "upstream_error")
    message = str(error.get("message") or f"Anthropic answered HTTP {status}")
    return UpstreamError(status=status, message=message, type=kind, code=kind,
                         retryable=retryable_status(status) or kind in RETRYABLE_ERRORS,
                         error_body={"type": kind, "message": message, "param": None, "code": kind})


def to_chat_completion(payload: dict) -> tuple[dict, Usage]:
    texts, thinking, calls = [], [], []
    content = payload.get("content") or ()
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "thinking":
            thinking.append(block.get("thinking") or "")
        elif kind == "tool_use":
            calls.append(tool_call(block.get("id"), block.get("name"), orjson.dumps(block.get("input") or {}).decode()))
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    if signed := signed_blocks(content if isinstance(content, list) else None):
        message["thinking_blocks"] = signed  # for the client to send back in a tool loop
    if calls:
        message["tool_calls"] = calls
    usage = usage_from(payload.get("usage"))
    answer = chat_completion(
        id=f"chatcmpl-{payload.get('id', '')}", model=payload.get("model"),
        choices=[message_choice(0, message, finish_reason(payload.get("stop_reason"), FINISH_REASONS))],
        usage=usage_json(usage, cached=True))
    return answer, usage


# --- the Messages API spoken natively (a Claude client's request, as it sent it) ------------------------

# The Anthropic headers a Claude client sends that shape its answer: forwarded on native calls.
NATIVE_HEADERS = ("anthropic-version", "anthropic-beta")
# The status an error event stands for, when it comes inside a stream (https://docs.anthropic.com/en/api/errors).
ERROR_STATUSES = {"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
                  "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
                  "rate_limit_error": 429, "api_error": 500, "timeout_error": 504, "overloaded_error": 529}


def native_body(body: dict, system_prompt: str) -> dict:
    """The client's Messages body for the vendor: the channel's system prompt, if it has one, in `system`
    (replacing the client's, as the channel's prompt replaces an OpenAI client's system message)."""
    return {**body, "system": system_prompt} if system_prompt else body


def native_headers(ctx: RequestContext, default_version: str | None = DEFAULT_VERSION) -> dict[str, str]:
    """The client's Anthropic headers, the channel's API version when the client gave none."""
    headers = {"Content-Type": "application/json"}
    for name, value in ctx.headers:
        if name in NATIVE_HEADERS:  # a header sent twice is one list (HTTP's rule for repeated headers)
            headers[name] = f"{headers[name]},{value}" if name in headers else value
    if default_version and "anthropic-version" not in headers:
        headers["anthropic-version"] = ctx.channel.config.get("api_version") or default_version
    return headers


def read_message(body: bytes) -> tuple[Usage | None, str]:
    """A Message as Anthropic answers it: its usage, and its words (text, thinking, tool input) to count
    when it has none. A 200 that is not a Message (an error object some proxies answer with) is raised."""
    payload = json_or_none(body)
    if isinstance(payload, dict) and payload.get("type") == "error":
        raise error_from(502, payload.get("error"))
    check_answer(payload, "Anthropic", "content", what="a message")
    words = []
    for block in payload["content"] if isinstance(payload["content"], list) else ():
        if isinstance(block, dict):
            words.append(str(block.get("text") or block.get("thinking") or ""))
            if block.get("type") == "tool_use":
                words.append(str(block.get("name") or "") + orjson.dumps(block.get("input") or {}).decode())
    usage = payload.get("usage")
    return (usage_from(usage) if isinstance(usage, dict) else None), "".join(words)


class MessageEvents(NativeStream):
    """Anthropic's stream events, read for the bill as they go by: the input (and cache) counts from
    message_start, the output from message_delta (cumulative; newer API versions repeat the input counts)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict = {}

    def read(self, event: bytes, data: bytes) -> None:
        payload = json_or_none(data)
        if not isinstance(payload, dict):
            return  # a garbled event is passed on; the rest of the stream still counts
        kind = payload.get("type")
        if kind == "error":
            error = payload.get("error") if isinstance(payload.get("error"), dict) else {}
            err = error_from(ERROR_STATUSES.get(str(error.get("type")), 502), error)
            self.error = self.error or err
            return
        self.answered = True
        if kind == "message_start":
            usage = (payload.get("message") or {}).get("usage")
            self.counts = dict(usage) if isinstance(usage, dict) else {}
            self.prompt_usage = prompt_usage_from(usage)
        elif kind == "content_block_start":
            self.begun = True
            block = payload.get("content_block") or {}
            self.texts.append(str(block.get("text") or block.get("name") or ""))
        elif kind == "content_block_delta":
            self.begun = True
            delta = payload.get("delta") or {}
            self.texts.append(str(delta.get("text") or delta.get("thinking") or delta.get("partial_json") or ""))
        elif kind == "message_delta":
            self.begun = True
            usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
            self.counts.update((k, v) for k, v in usage.items() if v is not None)
            self.usage = usage_from(self.counts)

    def interruption(self, message: str) -> bytes:
        return b"event: error\ndata: " + orjson.dumps(
            {"type": "error", "error": {"type": "api_error", "message": message}}) + b"\n\n"


class AnthropicAdapter(Adapter):
    channel_type: ClassVar[int] = 14
    label: ClassVar[str] = "Anthropic Claude"
    default_base_url: ClassVar[str] = "https://api.anthropic.com"
    config_fields: ClassVar[tuple[str, ...]] = ("api_version",)
    modes: ClassVar[tuple[str, ...]] = ("chat",)  # Anthropic has no embeddings API
    native_protocols: ClassVar[tuple[str, ...]] = ("anthropic",)
    default_models: ClassVar[tuple[str, ...]] = (
        "claude-opus-4-6", "claude-sonnet-4-6",
        "claude-opus-4-5-20251101", "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001",
        "claude-opus-4-1-20250805", "claude-opus-4-20250514", "claude-sonnet-4-20250514",
        "claude-3-7-sonnet-20250219", "claude-3-5-haiku-20241022", "claude-3-haiku-20240307",
    )

    def build_request(self, ctx: RequestContext) -> UpstreamRequest:
        if ctx.mode != "chat":
            raise bad_input(f"Anthropic channels serve chat only, not {ctx.mode}.", param="model")
        channel = ctx.channel
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if ctx.stream else "application/json",
            "x-api-key": channel.key,
            "anthropic-version": channel.config.get("api_version") or DEFAULT_VERSION,
        }
        url = (channel.base_url or self.default_base_url).rstrip("/") + "/v1/messages"
        return UpstreamRequest("POST", url, headers, orjson.dumps(to_messages_request(ctx.body, ctx.stream)))

    def model_list_request(self, channel: ChannelInfo) -> UpstreamRequest:
        # https://docs.anthropic.com/en/api/models-list: pages of 20 unless asked for up to 1000.
        headers = {"x-api-key": channel.key,
                   "anthropic-version": channel.config.get("api_version") or DEFAULT_VERSION}
        base = (channel.base_url or self.default_base_url).rstrip("/")
        return UpstreamRequest("GET", base + "/v1/models?limit=1000", headers)

    def speaks_natively(self, protocol: str, *, mode: str, model: str, channel=None) -> bool:
        return protocol == "anthropic" and mode in ("chat", "count_tokens")

    def build_native_request(self, ctx: RequestContext) -> UpstreamRequest:
        headers = native_headers(ctx)
        headers["x-api-key"] = ctx.channel.key
        base = (ctx.channel.base_url or self.default_base_url).rstrip("/")
        if ctx.mode == "count_tokens":  # https://docs.anthropic.com/en/api/messages-count-tokens
            return UpstreamRequest("POST", base + "/v1/messages/count_tokens", headers, orjson.dumps(ctx.body))
        headers["Accept"] = "text/event-stream" if ctx.stream else "application/json"
        body = native_body(ctx.body, ctx.channel.system_prompt)
        return UpstreamRequest("POST", base + "/v1/messages", headers, orjson.dumps(body))

    def read_native_answer(self, ctx: RequestContext, *, body: bytes) -> tuple[Usage | None, str]:
        if ctx.mode == "count_tokens":
            check_answer(json_or_none(body), "Anthropic", "input_tokens", what="a token count")
            return None, ""
        return read_message(body)

    def native_stream(self, ctx: RequestContext) -> NativeStream:
        return MessageEvents()

    def parse_response(self, ctx: RequestContext, *, body: bytes) -> tuple[bytes, Usage | None]:
        payload = json_or_none(body)
        if not isinstance(payload, dict):
            raise UpstreamError(status=502, message="Anthropic answered with something that is not a message.",
                                code="bad_response", retryable=True)
        if payload.get("type") == "error":
            raise error_from(502, payload.get("error"))
        check_answer(payload, "Anthropic", "content", what="a message")
        answer, usage = to_chat_completion(payload)
        return orjson.dumps(answer), usage

    def stream_decoder(self, ctx: RequestContext) -> StreamDecoder:
        return AnthropicStreamDecoder(ctx.client_model)

    def parse_error(self, ctx: RequestContext, *, status: int, body: bytes,
                    headers: Mapping[str, str] | None = None) -> UpstreamError:
        payload = json_or_none(body)
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            return error_from(status, payload["error"])
        return super().parse_error(ctx, status=status, body=body, headers=headers)


class AnthropicStreamDecoder(StreamDecoder):
    """Anthropic's typed SSE events → OpenAI chunks (https://docs.anthropic.com/en/docs/build-with-claude/streaming).

    Usage is reported once, at message_delta, with the input counted at message_start: a stream cut
    before then is billed for message_start's prompt count and its answer counted locally.
    """

    def __init__(self, model: str) -> None:
        self.id = "chatcmpl-anthropic"
        self.model = model
        self.created = int(time.time())
        self.input_usage: dict = {}
        self.tools: dict[int, int] = {}  # Anthropic content block index → OpenAI tool call index
        self.thoughts: dict[int, list[str]] = {}  # a thinking block's text so far, by content block index

    def chunk(self, delta: dict, finish: str | None = None) -> bytes:
        return chat_chunk(id=self.id, created=self.created, model=self.model, choices=[delta_choice(delta, finish)])

    def feed(self, event: bytes, data: bytes) -> list[StreamEvent]:
        payload = json_or_none(data)
        if not isinstance(payload, dict):
            return []  # a garbled event is dropped; the rest of the stream still counts
        kind = payload.get("type") or event.decode("utf-8", "replace")
        handler = getattr(self, f"on_{kind}", None)
        return handler(payload) if handler else []  # ping and future event types

    def on_message_start(self, payload: dict) -> list[StreamEvent]:
        message = payload.get("message") or {}
        self.id = f"chatcmpl-{message.get('id', '')}"
        self.model = message.get("model") or self.model
        self.input_usage = message.get("usage") or {}
        return [StreamEvent(data=self.chunk({"role": "assistant", "content": ""}),
                            prompt_usage=prompt_usage_from(self.input_usage))]

    def on_content_block_start(self, payload: dict) -> list[StreamEvent]:
        block = payload.get("content_block") or {}
        if block.get("type") == "tool_use":
            index = self.tools[payload.get("index", 0)] = len(self.tools)
            call = tool_call(block.get("id"), block.get("name"), "", index=index)
            return [StreamEvent(data=self.chunk({"tool_calls": [call]}), text=block.get("name") or "")]
        if block.get("type") == "text" and block.get("text"):
            return [StreamEvent(data=self.chunk({"content": block["text"]}), text=block["text"])]
        if block.get("type") == "redacted_thinking" and (signed := signed_blocks([block])):
            return [StreamEvent(data=self.chunk({"thinking_blocks": signed}))]
        return []

    def on_content_block_delta(self, payload: dict) -> list[StreamEvent]:
        delta = payload.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text") or ""
            return [StreamEvent(data=self.chunk({"content": text}), text=text)]
        if kind == "input_json_delta":
            index = self.tools.get(payload.get("index", 0))
            piece = delta.get("partial_json") or ""
            if index is None or not piece:
                return []
            call = {"index": index, "function": {"arguments": piece}}
            return [StreamEvent(data=self.chunk({"tool_calls": [call]}), text=piece)]
        if kind == "thinking_delta":
            text = delta.get("thinking") or ""
            self.thoughts.setdefault(payload.get("index", 0), []).append(text)
            return [StreamEvent(data=self.chunk({"reasoning_content": text}), text=text, reasoning=True)]
        if kind == "signature_delta":
            # The signature closes its thinking block: the whole signed block goes out in one delta, for a
            # client that keeps it to send back (its text already went out as reasoning_content).
            thought = "".join(self.thoughts.pop(payload.get("index", 0), ()))
            signed = signed_blocks([{"type": "thinking", "thinking": thought, "signature": delta.get("signature")}])
            return [StreamEvent(data=self.chunk({"thinking_blocks": signed}))] if signed else []
        return []  # citations_delta

    def on_message_delta(self, payload: dict) -> list[StreamEvent]:
        # message_delta's usage is cumulative; newer API versions repeat the input counts there too.
        raw = {**self.input_usage, **{k: v for k, v in (payload.get("usage") or {}).items() if v is not None}}
        usage = usage_from(raw)
        finish = finish_reason((payload.get("delta") or {}).get("stop_reason"), FINISH_REASONS)
        return [StreamEvent(data=self.chunk({}, finish)),
                usage_event(id=self.id, created=self.created, model=self.model, usage=usage,
                            as_json=usage_json(usage, cached=True))]

    def on_message_stop(self, payload: dict) -> list[StreamEvent]:
        return [StreamEvent(data=None, done=True)]

    def on_error(self, payload: dict) -> list[StreamEvent]:
        return [error_event(error_from(200, payload.get("error")))]
