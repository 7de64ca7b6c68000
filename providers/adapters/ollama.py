"""Ollama's native API: `/api/chat` (NDJSON streams) and `/api/embed`.

Docs: https://github.com/ollama/ollama/blob/main/docs/api.md. Messages carry images as bare
base64 strings beside the text, sampling settings live under `options`, tool calls come back
with their arguments as an object and without ids, and a stream is one JSON object per line,
the last with `done: true` and the token counts.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar

import orjson

from providers.adapters.base import (
    Adapter,
    ChannelInfo,
    Opened,
    RequestContext,
    StreamDecoder,
    StreamEvent,
    UpstreamError,
    UpstreamRequest,
    Usage,
    answer_object,
    check_answer,
)
from providers.adapters.inline_images import image_url, inline_images
from providers.adapters.openai_shapes import (
    call_id,
    chat_chunk,
    chat_completion,
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

MAX_IMAGE_BYTES = 20 * 1024 * 1024  # a remote image is fetched into memory: bounded
FINISH = {"stop": "stop", "length": "length"}  # "load"/"unload" answers carry no text: "stop"


def _new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def _created(value) -> int:
    """Ollama's `created_at` is RFC 3339 with up to nine fraction digits; Python takes six."""
    if isinstance(value, str) and value:
        head, dot, rest = value.partition(".")
        if dot:
            digits = rest.rstrip("Z")
            tz = rest[len(digits):]
            zone = ""
            for sign in ("+", "-"):
                if sign in digits:
                    digits, _, offset = digits.partition(sign)
                    zone = sign + offset
            value = f"{head}.{digits[:6]}{zone or tz}"
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
        except ValueError:
            pass
    return int(time.time())


def _arguments(raw) -> dict:
    """OpenAI sends tool arguments as a JSON string; Ollama wants the object."""
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str) and raw.strip():
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def convert_messages(messages: list) -> list[dict]:
    tool_names: dict[str, str] = {}  # OpenAI's tool_call_id -> function name, for Ollama's `tool_name`
    out: list[dict] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role") or "user"
        content = message.get("content")
        converted: dict = {"role": role}
        images: list[str] = []
        if isinstance(content, list):
            texts = []
            for part in content:
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "text" and isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif part.get("type") == "image_url":
                    url = image_url(part) or ""
                    if not url.startswith("data:") or "," not in url:
                        # open() inlines http(s) images; anything else is not an image we can send.
                        raise UpstreamError(status=400, message="An image_url must be a data: URL or an "
                                            "http(s) URL.", type="invalid_request_error", code="invalid_image_url")
                    images.append(url.split(",", 1)[1])
            converted["content"] = "\n".join(texts)
        else:
            converted["content"] = content if isinstance(content, str) else ("" if content is None else str(content))
        if images:
            converted["images"] = images
        if role == "assistant" and message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                fn = call.get("function") or {}
                if call.get("id"):
                    tool_names[call["id"]] = fn.get("name") or ""
                calls.append({"function": {"name": fn.get("name") or "", "arguments": _arguments(fn.get("arguments"))}})
            converted["tool_calls"] = calls
        if role == "tool":
            name = message.get("name") or tool_names.get(message.get("tool_call_id") or "")
            if name:
                converted["tool_name"] = name
        out.append(converted)
    return out


def chat_body(body: dict, stream: bool, channel: ChannelInfo) -> dict:
    options: dict = {}
    for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p"), ("seed", "seed"),
                         ("frequency_penalty", "frequency_penalty"), ("presence_penalty", "presence_penalty"),
                         ("top_k", "top_k")):
        if body.get(ours) is not None:
            options[theirs] = body[ours]
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    stop = body.get("stop")
    if stop:
        options["stop"] = [stop] if isinstance(stop, str) else list(stop)
    # one-api's request carries `num_ctx` (Ollama's context window, default 2048 and easily too small);
    # a channel may set a default for every request in its config.
    num_ctx = body.get("num_ctx") or channel.config.get("num_ctx")
    if num_ctx:
        options["num_ctx"] = int(num_ctx)
    if isinstance(body.get("options"), dict):  # a client speaking Ollama's own options wins
        options.update(body["options"])
    payload: dict = {"model": body["model"], "messages": convert_messages(body.get("messages") or []),
                     "stream": stream}
    if options:
        payload["options"] = options
    tools = body.get("tools")
    if not tools and body.get("functions"):
        tools = [{"type": "function", "function": f} for f in body["functions"]]
    if tools and body.get("tool_choice") != "none":  # Ollama has no tool_choice: "none" means no tools
        payload["tools"] = tools
    fmt = body.get("response_format")
    if isinstance(fmt, dict):
        if fmt.get("type") == "json_object":
            payload["format"] = "json"
        elif fmt.get("type") == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema")
            payload["format"] = schema if isinstance(schema, dict) else "json"
    for passthrough in ("keep_alive", "think"):
        if passthrough in body:
            payload[passthrough] = body[passthrough]
    return payload


def tool_calls_from(message: dict, start: int = 0) -> list[dict]:
    calls = []
    for offset, call in enumerate(message.get("tool_calls") or ()):
        fn = call.get("function") or {}
        arguments = fn.get("arguments")
        calls.append(tool_call(call.get("id") or call_id(), fn.get("name") or "",
                               arguments if isinstance(arguments, str) else orjson.dumps(arguments or {}).decode(),
                               index=start + offset))
    return calls


def usage_from(payload: dict) -> Usage | None:
    if "prompt_eval_count" not in payload and "eval_count" not in payload:
        return None
    # prompt_eval_count is left out when the whole prompt came from Ollama's cache.
    return Usage(prompt_tokens=int(payload.get("prompt_eval_count") or 0),
                 completion_tokens=int(payload.get("eval_count") or 0))


class OllamaAdapter(Adapter):
    channel_type: ClassVar[int] = 30
    label: ClassVar[str] = "Ollama"
    default_base_url: ClassVar[str] = "http://localhost:11434"
    config_fields: ClassVar[tuple[str, ...]] = ("num_ctx",)
    modes: ClassVar[tuple[str, ...]] = ("chat", "embeddings")

    async def open(self, ctx: RequestContext, *, session) -> Opened:
        """Ollama takes images only inline: a chat's http(s) images are fetched first
        (providers/adapters/inline_images.py)."""
        if ctx.mode == "chat":
            ctx = dataclasses.replace(ctx, body=await inline_images(ctx.body, session, limit=MAX_IMAGE_BYTES))
        return await super().open(ctx, session=session)

    def base_url(self, channel: ChannelInfo) -> str:
        return (channel.base_url or self.default_base_url).rstrip("/")

    def model_list_request(self, channel: ChannelInfo) -> UpstreamRequest:
        # https://github.com/ollama/ollama/blob/main/docs/api.md#list-local-models
        headers = {"Authorization": f"Bearer {channel.key.strip()}"} if channel.key.strip() else {}
        return UpstreamRequest("GET", self.base_url(channel) + "/api/tags", headers)

    def parse_model_list(self, body: bytes) -> list[str]:
        return [str(item["name"]) for item in orjson.loads(body).get("models") or ()]

    def build_request(self, ctx: RequestContext) -> UpstreamRequest:
        channel, mode, body, stream = ctx.channel, ctx.mode, ctx.body, ctx.stream
        headers = {"Content-Type": "application/json"}
        if channel.key.strip():  # a bare Ollama has no auth; a proxy in front of it may want a bearer key
            headers["Authorization"] = f"Bearer {channel.key.strip()}"
        if mode == "embeddings":
            payload = {"model": body["model"], "input": body.get("input")}
            if body.get("dimensions"):
                payload["dimensions"] = body["dimensions"]
            return UpstreamRequest("POST", self.base_url(channel) + "/api/embed", headers, orjson.dumps(payload))
        if mode != "chat":
            raise UpstreamError(status=400, message=f"Ollama channels do not serve {mode}.",
                                type="invalid_request_error", code="unsupported_mode")
        headers["Accept"] = "application/x-ndjson" if stream else "application/json"
        return UpstreamRequest("POST", self.base_url(channel) + "/api/chat", headers,
                               orjson.dumps(chat_body(body, stream, channel)))

    def parse_response(self, ctx: RequestContext, *, body: bytes) -> tuple[bytes, Usage | None]:
        payload = answer_object(body, "Ollama", code="bad_response")
        if ctx.mode == "embeddings":
            check_answer(payload, "Ollama", "embeddings", what="embeddings")
        else:
            check_answer(payload, "Ollama", "message", what="a chat answer")
        if ctx.mode == "embeddings":
            vectors = payload.get("embeddings") or []
            tokens = int(payload.get("prompt_eval_count") or 0)
            answer = embeddings_list([embedding(i, v) for i, v in enumerate(vectors)], payload.get("model"), tokens)
            return orjson.dumps(answer), Usage(prompt_tokens=tokens) if tokens else None
        message = payload.get("message") or {}
        out: dict = {"role": "assistant", "content": message.get("content") or ""}
        if message.get("thinking"):
            out["reasoning_content"] = message["thinking"]
        calls = tool_calls_from(message)
        if calls:
            out["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
        finish = "tool_calls" if calls else finish_reason(payload.get("done_reason"), FINISH)
        usage = usage_from(payload)
        answer = chat_completion(id=_new_id("chatcmpl-"), model=payload.get("model"),
                                 choices=[message_choice(0, out, finish)],
                                 usage=usage_json(usage) if usage is not None else None,
                                 created=_created(payload.get("created_at")))
        return orjson.dumps(answer), usage

    def stream_decoder(self, ctx: RequestContext) -> StreamDecoder:
        return OllamaStreamDecoder(ctx.client_model)

    def parse_error(self, ctx: RequestContext, *, status: int, body: bytes,
                    headers: Mapping[str, str] | None = None) -> UpstreamError:
        # The base finds Ollama's {"error": "..."} string.
        err = super().parse_error(ctx, status=status, body=body, headers=headers)
        if status == 404:
            err.type, err.code = "invalid_request_error", "model_not_found"
        elif status == 400:
            err.type, err.code = "invalid_request_error", "invalid_request"
        return err


class OllamaStreamDecoder(StreamDecoder):
    """One JSON object per line: text pieces, tool calls whole, then `done` with the counts."""

    framing: ClassVar[str] = "ndjson"

    def __init__(self, model: str) -> None:
        self.id = _new_id("chatcmpl-")
        self.model = model
        self.created = int(time.time())
        self.role_sent = False
        self.tool_calls = 0
        self.finished = False

    def _chunk(self, delta: dict, finish: str | None = None) -> bytes:
        return chat_chunk(id=self.id, created=self.created, model=self.model, choices=[delta_choice(delta, finish)])

    def feed(self, event: bytes, data: bytes) -> list[StreamEvent]:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            return []  # a garbled line is skipped: the rest of the answer still counts
        if not isinstance(payload, dict) or self.finished:
            return []
        if payload.get("error"):
            # Ollama reports a failure mid-stream as a line {"error": "..."}.
            self.finished = True
            error = {"message": str(payload["error"]), "type": "upstream_error", "code": "stream_error", "param": None}
            return [error_event(UpstreamError(status=502, message=error["message"], code="stream_error",
                                              retryable=True, error_body=error), error)]
        if "message" not in payload and "done" not in payload:
            return []  # not an Ollama line: skipped, as a garbled one is
        if payload.get("model"):
            self.model = payload["model"]
        message = payload.get("message") or {}
        delta: dict = {}
        if not self.role_sent:
            delta["role"] = "assistant"
        text = message.get("content") or ""
        if text or not self.role_sent:
            delta["content"] = text
        if message.get("thinking"):
            delta["reasoning_content"] = message["thinking"]
        calls = tool_calls_from(message, self.tool_calls)
        if calls:
            delta["tool_calls"] = calls
            self.tool_calls += len(calls)
            text += "".join(c["function"]["name"] + c["function"]["arguments"] for c in calls)
        events = []
        done = bool(payload.get("done"))
        finish = None
        if done:
            self.finished = True
            finish = "tool_calls" if self.tool_calls else finish_reason(payload.get("done_reason"), FINISH)
        if delta or finish:
            self.role_sent = True
            events.append(StreamEvent(data=self._chunk(delta, finish), text=text,
                                      reasoning="reasoning_content" in delta))
        if done:
            usage = usage_from(payload)
            if usage is not None:
                events.append(usage_event(id=self.id, created=self.created, model=self.model, usage=usage))
        return events
