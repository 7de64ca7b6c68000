"""Cohere through its v2 APIs: Chat (https://docs.cohere.com/reference/chat) and Embed
(https://docs.cohere.com/reference/embed).

v2 messages are close to OpenAI's (roles system/user/assistant/tool, `tool_calls` with string
arguments, `tool_call_id` on results); the answer's content is a list of typed blocks and its
usage counts both billed and actual tokens. Streams are SSE events named by `type`
(https://docs.cohere.com/docs/streaming).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from providers.adapters.base import (
    Adapter,
    Opened,
    RequestContext,
    StreamDecoder,
    StreamEvent,
    UpstreamError,
    UpstreamRequest,
    Usage,
    check_answer,
    json_or_none,
)
from providers.adapters.inline_images import inline_images
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

FINISH_REASONS = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
    "ERROR": "stop",
    "TIMEOUT": "length",
}
# https://docs.cohere.com/reference/errors: status → OpenAI error type.
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "insufficient_quota",
               403: "permission_error", 404: "not_found_error", 422: "invalid_request_error",
               429: "rate_limit_error", 498: "authentication_error", 499: "upstream_error"}
MAX_IMAGE_BYTES = 20 * 1024 * 1024


def bad_input(message: str, param: str = "messages", code: str = "invalid_request") -> UpstreamError:
    return UpstreamError(status=400, message=message, type="invalid_request_error", code=code, param=param)


# --- request -------------------------------------------------------------------------------------


def model_name(model: str) -> str:
    # one-api maps an `-internet` suffix to v1's web-search connector; v2 has no connectors, so the suffix
    # is dropped and the base model answers without search.
    return model.removesuffix("-internet")


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for part in content if isinstance(content, list) else ():
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
    return "\n".join(texts)


def user_content(content: Any) -> str | list[dict]:
    """A string, or v2's text and image_url blocks when images are present."""
    if not isinstance(content, list) or not any(isinstance(p, dict) and p.get("type") == "image_url"
                                                for p in content):
        return text_of(content)
    blocks: list[dict] = []
    for part in content:
        if isinstance(part, str):
            part = {"type": "text", "text": part}
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            blocks.append({"type": "text", "text": part["text"]})
        elif part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url.startswith("data:"):
                # open() inlines http(s) images; anything else is not an image we can send.
                raise bad_input("An image_url must be an http(s) or data: URL.", code="invalid_image_url")
            block: dict[str, Any] = {"url": url}
            if isinstance(image, dict) and image.get("detail") in ("auto", "low", "high"):
                block["detail"] = image["detail"]
            blocks.append({"type": "image_url", "image_url": block})
    return blocks


def convert_messages(messages: list) -> list[dict]:
    out: list[dict] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role in ("system", "developer"):
            out.append({"role": "system", "content": text_of(message.get("content"))})
        elif role == "tool":
            out.append({"role": "tool", "tool_call_id": message.get("tool_call_id") or "",
                        "content": text_of(message.get("content"))})
        elif role == "assistant":
            converted: dict[str, Any] = {"role": "assistant"}
            text = text_of(message.get("content"))
            calls = [{"id": c.get("id") or "", "type": "function",
                      "function": {"name": (c.get("function") or {}).get("name") or "",
                                   "arguments": (c.get("function") or {}).get("arguments") or "{}"}}
                     for c in message.get("tool_calls") or () if isinstance(c, dict)]
            if calls:
                converted["tool_calls"] = calls
                if text:
                    converted["tool_plan"] = text  # v2 puts the text that precedes tool calls in tool_plan
            elif text:
                converted["content"] = text
            else:
                continue
            out.append(converted)
        else:
            out.append({"role": "user", "content": user_content(message.get("content"))})
    return out


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def convert_tools(body: dict, request: dict) -> None:
    tools = []
    for tool in body.get("tools") or ():
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict):
            continue
        converted = {"name": fn.get("name") or "",
                     "parameters": fn.get("parameters") or {"type": "object", "properties": {}}}
        if fn.get("description"):
            converted["description"] = fn["description"]
        tools.append({"type": "function", "function": converted})
    if not tools:
        return
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        # v2's tool_choice is only REQUIRED or NONE: a named function is forced by offering only it.
        name = (choice.get("function") or {}).get("name")
        tools = [t for t in tools if t["function"]["name"] == name]
        if not tools:
            raise bad_input(f"tool_choice names {name!r}, which is not among the tools.", param="tool_choice")
        request["tool_choice"] = "REQUIRED"
    elif choice == "required":
        request["tool_choice"] = "REQUIRED"
    elif choice == "none":
        request["tool_choice"] = "NONE"
    request["tools"] = tools


def convert_response_format(value: Any) -> dict | None:
    if not isinstance(value, dict):
        return None
    if value.get("type") == "json_object":
        return {"type": "json_object"}
    if value.get("type") == "json_schema":
        schema = (value.get("json_schema") or {}).get("schema")
        return {"type": "json_object", **({"json_schema": schema} if schema else {})}
    return None


def to_chat_request(body: dict, stream: bool) -> dict:
    request: dict[str, Any] = {"model": model_name(str(body.get("model") or "")),
                               "messages": convert_messages(body.get("messages") or []), "stream": stream}
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
    if max_tokens:
        request["max_tokens"] = max_tokens
    if (temperature := _number(body.get("temperature"))) is not None:
        request["temperature"] = temperature
    if (top_p := _number(body.get("top_p"))) is not None:
        request["p"] = max(0.01, min(top_p, 0.99))  # v2 accepts p in [0.01, 0.99]
    if isinstance(body.get("top_k"), int):
        request["k"] = body["top_k"]
    for name in ("seed", "frequency_penalty", "presence_penalty"):
        if body.get(name) is not None:
            request[name] = body[name]
    stop = body.get("stop")
    if stop:
        request["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if fmt := convert_response_format(body.get("response_format")):
        request["response_format"] = fmt
    convert_tools(body, request)
    return request


def to_embed_request(body: dict) -> dict:
    value = body.get("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise bad_input("Cohere embeddings take text: `input` must be a string or a list of strings.",
                        param="input")
    # input_type is required by v3+ embed models; OpenAI has no such field, so documents are assumed
    # unless the client names one.
    request: dict[str, Any] = {"model": body.get("model"), "texts": texts,
                               "input_type": body.get("input_type") or "search_document",
                               "embedding_types": ["float"]}
    if isinstance(body.get("dimensions"), int):
        request["output_dimension"] = body["dimensions"]
    return request


# --- answers -------------------------------------------------------------------------------------


def usage_from(usage: Any) -> Usage | None:
    """Actual tokens (`tokens`), else the billed ones; `cached_tokens` beside them counts the prompt tokens
    that hit Cohere's inference cache (a number, sent as a float: cohere-python's v2 Usage)."""
    if not isinstance(usage, dict):
        return None
    counts = usage.get("tokens") if isinstance(usage.get("tokens"), dict) else usage.get("billed_units")
    if not isinstance(counts, dict):
        return None
    prompt = int(counts.get("input_tokens") or 0)
    return Usage(prompt_tokens=prompt, completion_tokens=int(counts.get("output_tokens") or 0),
                 cached_tokens=min(count(usage.get("cached_tokens")), prompt))


def _json(body: bytes) -> dict:
    payload = json_or_none(body)
    if not isinstance(payload, dict):
        raise UpstreamError(status=502, message="Cohere answered with something that is not a JSON object.",
                            code="bad_response", retryable=True)
    return payload


def to_chat_completion(payload: dict) -> tuple[dict, Usage | None]:
    message = payload.get("message") or {}
    texts, thinking = [], []
    for block in message.get("content") or ():
        if isinstance(block, dict) and block.get("type") == "text":
            texts.append(block.get("text") or "")
        elif isinstance(block, dict) and block.get("type") == "thinking":
            thinking.append(block.get("thinking") or "")
    calls = [tool_call(c.get("id") or call_id(), (c.get("function") or {}).get("name") or "",
                       (c.get("function") or {}).get("arguments") or "{}")
             for c in message.get("tool_calls") or () if isinstance(c, dict)]
    reason = payload.get("finish_reason")
    if reason == "ERROR" and not texts and not calls:
        raise UpstreamError(status=502, message="Cohere ended the answer with an error.", code="ERROR",
                            retryable=True)
    out: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if thinking:
        out["reasoning_content"] = "".join(thinking)
    if calls:
        out["tool_calls"] = calls
    usage = usage_from(payload.get("usage"))
    answer = chat_completion(
        # v2 answers do not name the model, and parse_response is not told it.
        id=f"chatcmpl-{payload.get('id') or uuid.uuid4().hex}", model="cohere",
        choices=[message_choice(0, out, finish_reason(reason, FINISH_REASONS, tool_calls=bool(calls)))],
        usage=usage_json(usage) if usage is not None else None)
    return answer, usage


def to_embeddings(payload: dict) -> tuple[dict, Usage | None]:
    embeddings = payload.get("embeddings")
    vectors = embeddings.get("float") if isinstance(embeddings, dict) else embeddings  # v1's plain list
    data = [embedding(i, v) for i, v in enumerate(vectors or ())]
    billed = ((payload.get("meta") or {}).get("billed_units") or {}).get("input_tokens")
    usage = Usage(prompt_tokens=int(billed)) if billed else None
    return embeddings_list(data, "cohere", usage.prompt_tokens if usage else None), usage


def to_rerank_request(body: dict) -> dict:
    """Jina/Cohere-style rerank bodies; documents may be strings or {"text": ...} objects."""
    documents = [d if isinstance(d, str) else str((d or {}).get("text", "")) for d in body.get("documents") or ()]
    payload: dict[str, Any] = {"model": body["model"], "query": body["query"], "documents": documents}
    if body.get("top_n") is not None:
        payload["top_n"] = body["top_n"]
    if body.get("max_tokens_per_doc") is not None:
        payload["max_tokens_per_doc"] = body["max_tokens_per_doc"]
    return payload


def to_rerank(payload: dict) -> dict:
    """Cohere v2's answer keeps its own shape (results[index, relevance_score]), as rerank clients expect."""
    return {"id": payload.get("id"), "results": [{"index": r.get("index"), "relevance_score": r.get("relevance_score")}
                                                 for r in payload.get("results") or ()],
            "meta": payload.get("meta") or {}}


class CohereAdapter(Adapter):
    channel_type: ClassVar[int] = 35
    label: ClassVar[str] = "Cohere"
    default_base_url: ClassVar[str] = "https://api.cohere.ai"
    modes: ClassVar[tuple[str, ...]] = ("chat", "embeddings", "rerank")
    default_models: ClassVar[tuple[str, ...]] = (
        "command-a-03-2025", "command-a-reasoning-08-2025", "command-a-vision-07-2025", "command-r7b-12-2024",
        "command-r-plus-08-2024", "command-r-08-2024", "command-r-plus", "command-r", "command",
        "command-light", "embed-v4.0", "embed-english-v3.0", "embed-multilingual-v3.0",
    )

    async def open(self, ctx: RequestContext, *, session) -> Opened:
        """A chat's http(s) images inlined as data: URLs first (Cohere's docs only show those)."""
        if ctx.mode == "chat":
            ctx = dataclasses.replace(ctx, body=await inline_images(ctx.body, session, limit=MAX_IMAGE_BYTES))
        return await super().open(ctx, session=session)

    def build_request(self, ctx: RequestContext) -> UpstreamRequest:
        if ctx.mode == "chat":
            path, payload = "/v2/chat", to_chat_request(ctx.body, ctx.stream)
        elif ctx.mode == "embeddings":
            path, payload = "/v2/embed", to_embed_request(ctx.body)
        elif ctx.mode == "rerank":
            path, payload = "/v2/rerank", to_rerank_request(ctx.body)
        else:
            raise bad_input(f"Cohere channels do not serve {ctx.mode}.", param="model")
        headers = {"Content-Type": "application/json",
                   "Accept": "text/event-stream" if ctx.stream else "application/json",
                   "Authorization": f"Bearer {ctx.channel.key.strip()}"}
        url = (ctx.channel.base_url or self.default_base_url).rstrip("/") + path
        return UpstreamRequest("POST", url, headers, orjson.dumps(payload))

    def parse_response(self, ctx: RequestContext, *, body: bytes) -> tuple[bytes, Usage | None]:
        payload = _json(body)
        check_answer(payload, "Cohere", *{"rerank": ("results",), "embeddings": ("embeddings",)}.get(
            ctx.mode, ("message",)), what=f"a {ctx.mode} answer")
        if ctx.mode == "rerank":
            return orjson.dumps(to_rerank(payload)), None  # billed in search units: the relay counts tokens
        answer, usage = to_embeddings(payload) if ctx.mode == "embeddings" else to_chat_completion(payload)
        return orjson.dumps(answer), usage

    def stream_decoder(self, ctx: RequestContext) -> StreamDecoder:
        return CohereStreamDecoder(ctx.client_model)

    def parse_error(self, ctx: RequestContext, *, status: int, body: bytes,
                    headers: Mapping[str, str] | None = None) -> UpstreamError:
        # The base finds Cohere's {"message": ...}.
        err = super().parse_error(ctx, status=status, body=body, headers=headers)
        if err.error_body is None:
            err.type = ERROR_TYPES.get(status, "upstream_error")
            err.code = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}.get(
                status, err.code)
            err.error_body = {"message": err.message, "type": err.type, "param": None, "code": err.code}
        return err


class CohereStreamDecoder(StreamDecoder):
    """v2 stream events → OpenAI chunks. Usage comes once, in message-end."""

    def __init__(self, model: str) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.model = model
        self.created = int(time.time())
        self.role_sent = False
        self.tools: dict[int, int] = {}  # Cohere's tool call index → OpenAI tool call index

    def chunk(self, delta: dict, finish: str | None = None) -> bytes:
        if not self.role_sent:
            delta = {"role": "assistant", **delta}
            self.role_sent = True
        return chat_chunk(id=self.id, created=self.created, model=self.model, choices=[delta_choice(delta, finish)])

    def feed(self, event: bytes, data: bytes) -> list[StreamEvent]:
        if data.strip() == b"[DONE]":
            return [StreamEvent(data=None, done=True)]
        payload = json_or_none(data)
        if not isinstance(payload, dict):
            return []  # a garbled event is dropped; the rest of the stream still counts
        kind = str(payload.get("type") or event.decode("utf-8", "replace"))
        handler = getattr(self, "on_" + kind.replace("-", "_"), None)
        return handler(payload) if handler else []  # citations, tool plans, debug events

    @staticmethod
    def _message(payload: dict) -> dict:
        delta = payload.get("delta")
        message = delta.get("message") if isinstance(delta, dict) else None
        return message if isinstance(message, dict) else {}

    def on_message_start(self, payload: dict) -> list[StreamEvent]:
        if payload.get("id"):
            self.id = f"chatcmpl-{payload['id']}"
        return [StreamEvent(data=self.chunk({"content": ""}))]

    def _content(self, payload: dict) -> list[StreamEvent]:
        content = self._message(payload).get("content")
        if not isinstance(content, dict):
            return []
        if content.get("thinking"):
            return [StreamEvent(data=self.chunk({"reasoning_content": content["thinking"]}),
                                text=content["thinking"], reasoning=True)]
        text = content.get("text")
        return [StreamEvent(data=self.chunk({"content": text}), text=text)] if text else []

    on_content_start = _content
    on_content_delta = _content

    def on_tool_call_start(self, payload: dict) -> list[StreamEvent]:
        call = self._message(payload).get("tool_calls")
        if not isinstance(call, dict):
            return []
        index = self.tools[payload.get("index", len(self.tools))] = len(self.tools)
        fn = call.get("function") or {}
        name, arguments = fn.get("name") or "", fn.get("arguments") or ""
        converted = tool_call(call.get("id") or call_id(), name, arguments, index=index)
        return [StreamEvent(data=self.chunk({"tool_calls": [converted]}), text=name + arguments)]

    def on_tool_call_delta(self, payload: dict) -> list[StreamEvent]:
        call = self._message(payload).get("tool_calls")
        index = self.tools.get(payload.get("index", len(self.tools) - 1))
        piece = ((call or {}).get("function") or {}).get("arguments") if isinstance(call, dict) else None
        if index is None or not piece:
            return []
        return [StreamEvent(data=self.chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                            text=piece)]

    def on_message_end(self, payload: dict) -> list[StreamEvent]:
        delta = payload.get("delta") if isinstance(payload.get("delta"), dict) else {}
        reason = delta.get("finish_reason")
        events = []
        if reason == "ERROR" or delta.get("error"):
            message = str(delta.get("error") or "Cohere ended the stream with an error.")
            error = {"message": message, "type": "upstream_error", "code": "ERROR", "param": None}
            events.append(error_event(UpstreamError(status=502, message=message, code="ERROR", retryable=True,
                                                    error_body=error), error))
        else:
            finish = finish_reason(reason, FINISH_REASONS, tool_calls=bool(self.tools))
            events.append(StreamEvent(data=self.chunk({}, finish)))
        usage = usage_from(delta.get("usage"))
        if usage is not None:
            events.append(usage_event(id=self.id, created=self.created, model=self.model, usage=usage))
        return events
