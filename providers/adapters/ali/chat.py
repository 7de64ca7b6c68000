"""DashScope's text generation, for Qwen chat: the request (`result_format: "message"`, `incremental_output`
when streamed), the answer, and the SSE stream (`X-DashScope-SSE: enable`) as OpenAI's chunks.

Docs: https://help.aliyun.com/zh/model-studio/developer-reference/use-qwen-by-calling-api. Multimodal
(qwen-vl, a different endpoint) is not spoken here: image parts are refused.
"""

from __future__ import annotations

import time

import orjson

from providers.adapters.ali.envelope import ali_error, usage_from
from providers.adapters.base import StreamDecoder, StreamEvent, Usage, json_or_none, text_only
from providers.adapters.openai_shapes import (
    chat_chunk,
    chat_completion,
    delta_choice,
    error_event,
    finish_reason,
    message_choice,
    tool_call,
    usage_event,
    usage_json,
)

CHAT_PATH = "/api/v1/services/aigc/text-generation/generation"
SEARCH_SUFFIX = "-internet"  # one-api's convention: `qwen-max-internet` = qwen-max with enable_search

# Qwen parameters that are not OpenAI's but clients send them to one-api for Qwen: forwarded as given.
PASSTHROUGH = ("top_k", "repetition_penalty", "presence_penalty", "seed", "response_format", "enable_thinking",
               "thinking_budget", "parallel_tool_calls", "n", "logprobs", "top_logprobs")

# DashScope's "stop" is left to finish_reason: an answer that called tools stops with "stop" too.
FINISH = {"length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter"}


def _text(content) -> str:
    return text_only(content, "DashScope's text-generation API takes text only; a `{kind}` part cannot be sent. "
                              "Use a Bailian (OpenAI-compatible) channel for qwen-vl models.")


def _messages(messages: list) -> list[dict]:
    out = []
    names: dict[str, str] = {}  # tool_call_id -> function name: DashScope's tool messages carry `name`
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = str(message.get("role") or "user").lower()
        if role == "developer":
            role = "system"
        converted: dict = {"role": role, "content": _text(message.get("content"))}
        if role == "assistant" and message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                fn = call.get("function") or {}
                names[call.get("id") or ""] = fn.get("name") or ""
                calls.append(tool_call(call.get("id") or "", fn.get("name") or "", fn.get("arguments") or "{}"))
            converted["tool_calls"] = calls
        elif role in ("tool", "function"):
            converted["role"] = "tool"
            if message.get("tool_call_id"):
                converted["tool_call_id"] = message["tool_call_id"]
            name = message.get("name") or names.get(message.get("tool_call_id") or "")
            if name:
                converted["name"] = name
        out.append(converted)
    return out


def chat_body(body: dict, stream: bool) -> dict:
    model = str(body.get("model") or "")
    parameters: dict = {"result_format": "message"}
    if model.endswith(SEARCH_SUFFIX):
        model = model.removesuffix(SEARCH_SUFFIX)
        parameters["enable_search"] = True
    elif body.get("enable_search") is not None:
        parameters["enable_search"] = bool(body["enable_search"])
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
    if max_tokens:
        parameters["max_tokens"] = max_tokens
    temperature = body.get("temperature")
    if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
        parameters["temperature"] = min(max(temperature, 0.0), 1.99)  # DashScope: [0, 2)
    top_p = body.get("top_p")
    if isinstance(top_p, (int, float)) and not isinstance(top_p, bool):
        parameters["top_p"] = 0.9999 if top_p >= 1 else max(top_p, 0.0001)  # (0, 1), as one-api clamps
    if body.get("stop"):
        parameters["stop"] = body["stop"]
    for key in PASSTHROUGH:
        if body.get(key) is not None:
            parameters[key] = body[key]
    tools = body.get("tools")
    if not tools and body.get("functions"):  # the legacy OpenAI form
        tools = [{"type": "function", "function": f} for f in body["functions"]]
    if tools:
        parameters["tools"] = tools
        choice = body.get("tool_choice", body.get("function_call"))
        if isinstance(choice, dict) and "function" not in choice and choice.get("name"):
            choice = {"type": "function", "function": {"name": choice["name"]}}
        if choice == "required":
            choice = "auto"  # DashScope knows auto, none and a named function
        if choice is not None:
            parameters["tool_choice"] = choice
    if stream:
        parameters["incremental_output"] = True  # deltas, not the whole text so far in every event
    return {"model": model, "input": {"messages": _messages(body.get("messages") or [])}, "parameters": parameters}


def _finish(reason, has_calls: bool) -> str | None:
    if reason in (None, "", "null"):  # DashScope streams say "null", the string, until the end
        return None
    return finish_reason(reason, FINISH, tool_calls=has_calls)


def _choices(output: dict) -> list[dict]:
    choices = output.get("choices")
    if isinstance(choices, list) and choices:
        return [c for c in choices if isinstance(c, dict)]
    if "text" in output:  # result_format "text", should a proxy in front have forced it
        return [{"message": {"role": "assistant", "content": output.get("text") or ""},
                 "finish_reason": output.get("finish_reason")}]
    return []


def _tool_call(call: dict, position: int) -> dict:
    fn = call.get("function") or {}
    arguments = fn.get("arguments")
    if arguments is not None and not isinstance(arguments, str):
        arguments = orjson.dumps(arguments).decode()
    return tool_call(call.get("id") or "", fn.get("name") or "", arguments or "", index=call.get("index", position))


def chat_answer(payload: dict, output: dict, model: str) -> tuple[bytes, Usage | None]:
    """A text-generation answer (its `output` checked by the caller) as OpenAI's chat.completion."""
    usage = usage_from(payload.get("usage"))
    choices = []
    for i, choice in enumerate(_choices(output)):
        message = choice.get("message") or {}
        converted: dict = {"role": "assistant", "content": _text(message.get("content"))}
        if message.get("reasoning_content"):
            converted["reasoning_content"] = message["reasoning_content"]
        calls = [_tool_call(c, j) for j, c in enumerate(message.get("tool_calls") or ()) if isinstance(c, dict)]
        if calls:
            for call in calls:
                call.pop("index", None)
            converted["tool_calls"] = calls
            converted["content"] = converted["content"] or None
        choices.append(message_choice(i, converted, _finish(choice.get("finish_reason"), bool(calls)) or "stop"))
    request_id = payload.get("request_id") or str(int(time.time()))
    answer = chat_completion(id=f"chatcmpl-{request_id}", model=model, choices=choices,
                             usage=usage_json(usage) if usage is not None else None)
    return orjson.dumps(answer), usage


class AliStreamDecoder(StreamDecoder):
    """DashScope's SSE (`id:`, `event:result`, `:HTTP_STATUS/200`, `data:{...}`) as OpenAI chunks.
    With incremental_output each event holds the new text only, and usage counted so far: every
    event reports it (so a cut stream bills what Qwen counted), the last one becomes OpenAI's usage chunk."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = ""
        self.created = int(time.time())
        self.started = False
        self.called: dict[int, dict] = {}  # tool call index -> what was already sent (id, name)
        self.usage: Usage | None = None
        self.finished = False

    def _chunk(self, choices: list) -> bytes:
        return chat_chunk(id=self.id, created=self.created, model=self.model, choices=choices)

    def feed(self, event: bytes, data: bytes) -> list[StreamEvent]:
        payload = json_or_none(data)
        if not isinstance(payload, dict):
            return []  # a broken event is skipped; the stream goes on
        if event == b"error" or payload.get("code"):
            err = ali_error(payload)
            return [error_event(err, err.error_body)]
        self.id = self.id or f"chatcmpl-{payload.get('request_id') or int(time.time())}"
        usage = usage_from(payload.get("usage"))
        if usage is not None:
            self.usage = usage
        output = payload.get("output") if isinstance(payload.get("output"), dict) else {}
        events: list[StreamEvent] = []
        for i, choice in enumerate(_choices(output)):
            message = choice.get("message") or {}
            delta: dict = {}
            if not self.started:
                delta["role"] = "assistant"
                self.started = True
            piece = _text(message.get("content")) if not isinstance(message.get("content"), list) else ""
            text = piece
            if piece:
                delta["content"] = piece
            if message.get("reasoning_content"):
                delta["reasoning_content"] = message["reasoning_content"]
            calls = []
            for j, raw in enumerate(message.get("tool_calls") or ()):
                if not isinstance(raw, dict):
                    continue
                call = _tool_call(raw, j)
                sent = self.called.setdefault(call["index"], {})
                # OpenAI sends id and name once; DashScope may repeat them (or send "") in later pieces.
                for key, holder in (("id", call), ("name", call["function"])):
                    if not holder[key] or holder[key] == sent.get(key):
                        holder.pop(key)
                    else:
                        sent[key] = holder[key]
                if "id" not in call:
                    call.pop("type")
                text += call["function"].get("name", "") + call["function"].get("arguments", "")
                calls.append(call)
            if calls:
                delta["tool_calls"] = calls
            finish = _finish(choice.get("finish_reason"), bool(self.called))
            if not delta and finish is None:
                continue
            events.append(StreamEvent(data=self._chunk([delta_choice(delta, finish, index=i)]), text=text,
                                      reasoning="reasoning_content" in delta))
            if finish is not None:
                self.finished = True
        if events:
            events[-1].usage = usage
        elif usage is not None:
            events.append(StreamEvent(data=None, usage=usage))
        if self.finished and self.usage is not None:
            events.append(usage_event(id=self.id, created=self.created, model=self.model, usage=self.usage))
            self.usage = None  # sent once
        return events
