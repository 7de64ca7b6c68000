"""Anthropic's Messages API for Claude clients (the SDKs, Claude Code), over any channel.

The request is converted by relay/codecs/anthropic_request.py; here the relay's chat answer goes back as a
Message, its stream as Anthropic's events, and errors in Anthropic's shape with its types.
"""

from __future__ import annotations

import orjson

from relay.codecs.anthropic_request import decode_request
from relay.errors import RelayError

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                "content_filter": "refusal"}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
               503: "overloaded_error", 504: "timeout_error", 529: "overloaded_error"}
# The types that say more than the status does (invalid_request_error is also OpenAI's, for any 4xx).
ANTHROPIC_TYPES = (frozenset(ERROR_TYPES.values()) | {"api_error"}) - {"invalid_request_error"}
# Where OpenAI-shaped answers carry the model's thinking (as providers/adapters/openai.py reads them).
REASONING_FIELDS = ("reasoning_content", "reasoning")


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status) or ("invalid_request_error" if status < 500 else "api_error")


def _error(err: RelayError, request_id: str) -> dict:
    message = err.message
    if request_id and "(request id:" not in message:
        message = f"{message} (request id: {request_id})"
    # An Anthropic channel's own error keeps its type (a 400 may be Anthropic's billing or not-found error).
    kind = err.type if err.type in ANTHROPIC_TYPES else error_type(err.status)
    payload = {"type": "error", "error": {"type": kind, "message": message}}
    if request_id:
        payload["request_id"] = request_id
    return payload


def _usage(usage: dict | None) -> dict:
    """Anthropic's usage: its input_tokens leave out what was read from the prompt cache and what was
    written to it, which it counts apart."""
    if not isinstance(usage, dict):
        return {"input_tokens": 0, "output_tokens": 0}
    prompt = usage.get("prompt_tokens") or 0
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    cached, written = details.get("cached_tokens") or 0, details.get("cache_write_tokens") or 0
    out = {"input_tokens": max(prompt - cached - written, 0), "output_tokens": usage.get("completion_tokens") or 0}
    if cached:
        out["cache_read_input_tokens"] = cached
    if written:
        out["cache_creation_input_tokens"] = written
    return out


def _reasoning(message: dict) -> str:
    for name in REASONING_FIELDS:
        value = message.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def _input(arguments) -> dict:
    """A tool call's arguments as the object Anthropic's `input` is; a vendor's broken JSON becomes {}."""
    if isinstance(arguments, dict):
        return arguments
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _stop_reason(finish: str | None, has_calls: bool) -> str:
    if has_calls and finish in (None, "stop", "tool_calls", "function_call"):
        return "tool_use"  # some vendors end a turn of tool calls with "stop"
    return STOP_REASONS.get(finish or "stop", "end_turn")


def message_id(request_id: str) -> str:
    return f"msg_{request_id}"


class AnthropicCodec:
    protocol = "anthropic"
    native_headers = ("anthropic-version", "anthropic-beta")

    def decode(self, body: dict) -> dict:
        return decode_request(body)

    def decode_count(self, body: dict) -> dict:
        """A count_tokens request: the same conversion, without `max_tokens`."""
        return decode_request(body, counting=True)

    def decode_native(self, body: dict, *, counting: bool = False) -> tuple[dict, RelayError | None]:
        skipped: list[RelayError] = []
        chat = decode_request(body, counting=counting, skipped=skipped)
        return chat, skipped[0] if skipped else None

    def encode_count(self, tokens: int) -> bytes:
        return orjson.dumps({"input_tokens": tokens})

    def encode_answer(self, answer: dict, *, model: str, request_id: str, request: dict | None = None) -> bytes:
        choices = answer.get("choices") or [{}]
        choice = choices[0] if isinstance(choices[0], dict) else {}
        message = choice.get("message") or {}
        content: list[dict] = []
        thinking = _reasoning(message)
        if thinking:
            content.append({"type": "thinking", "thinking": thinking, "signature": ""})
        text = message.get("content")
        if isinstance(text, list):  # a vendor answering in content parts
            text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
        if isinstance(text, str) and text:
            content.append({"type": "text", "text": text})
        calls = message.get("tool_calls") or []
        for index, call in enumerate(calls):
            function = call.get("function") or {}
            content.append({"type": "tool_use", "id": call.get("id") or f"toolu_{request_id}_{index}",
                            "name": function.get("name") or "", "input": _input(function.get("arguments"))})
        return orjson.dumps({
            "id": message_id(request_id), "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": _stop_reason(choice.get("finish_reason"), bool(calls)),
            "stop_sequence": None, "usage": _usage(answer.get("usage")),
        })

    def stream_encoder(self, *, model: str, request_id: str, request: dict | None = None) -> MessageStream:
        return MessageStream(model=model, request_id=request_id)

    def render_error(self, err: RelayError, request_id: str) -> tuple[int, bytes]:
        return err.status, orjson.dumps(_error(err, request_id))

    def stream_error(self, err: RelayError, request_id: str) -> bytes:
        return _event("error", _error(err, request_id))


def _event(kind: str, payload: dict) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class MessageStream:
    """Chat chunks to Anthropic's events: message_start and ping, a content block per thinking, text or tool
    call (started, deltas, stopped), then message_delta with the stop reason and usage, and message_stop."""

    __slots__ = ("model", "request_id", "begun", "ended", "block", "kind", "tools", "finish", "usage")

    def __init__(self, *, model: str, request_id: str):
        self.model = model
        self.request_id = request_id
        self.begun = False
        self.ended = False
        self.block = -1  # the index of the open content block; -1 while none is
        self.kind = ""  # "thinking", "text", or the chat index of the tool call the open block is
        self.tools: dict[int, int] = {}  # a tool call's chat index -> its content block's index
        self.finish: str | None = None
        self.usage: dict | None = None

    def _begin(self, out: list[bytes]) -> None:
        self.begun = True
        out.append(_event("message_start", {"type": "message_start", "message": {
            "id": message_id(self.request_id), "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0}}}))
        out.append(_event("ping", {"type": "ping"}))

    def _open(self, out: list[bytes], kind: str, block: dict) -> None:
        self._close_block(out)
        self.block += 1
        self.kind = kind
        out.append(_event("content_block_start", {"type": "content_block_start", "index": self.block,
                                                  "content_block": block}))

    def _close_block(self, out: list[bytes]) -> None:
        if self.kind:
            out.append(_event("content_block_stop", {"type": "content_block_stop", "index": self.block}))
            self.kind = ""

    def _delta(self, out: list[bytes], index: int, delta: dict) -> None:
        out.append(_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))

    def feed(self, chunk: dict) -> bytes:
        if self.ended:
            return b""
        out: list[bytes] = []
        if not self.begun:
            self._begin(out)
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # a Message has one answer
            delta = choice.get("delta") or {}
            thinking = _reasoning(delta)
            if thinking:
                if self.kind != "thinking":
                    self._open(out, "thinking", {"type": "thinking", "thinking": "", "signature": ""})
                self._delta(out, self.block, {"type": "thinking_delta", "thinking": thinking})
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self.kind != "text":
                    self._open(out, "text", {"type": "text", "text": ""})
                self._delta(out, self.block, {"type": "text_delta", "text": text})
            for call in delta.get("tool_calls") or ():
                self._tool_call(out, call)
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
        return b"".join(out)

    def _tool_call(self, out: list[bytes], call: dict) -> None:
        position = call.get("index", 0)
        function = call.get("function") or {}
        block = self.tools.get(position)
        if block is None:
            self._open(out, f"tool{position}", {"type": "tool_use",
                                                "id": call.get("id") or f"toolu_{self.request_id}_{position}",
                                                "name": function.get("name") or "", "input": {}})
            block = self.tools[position] = self.block
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            # A late piece of an earlier call still names its own block, which the client's SDK joins by index.
            self._delta(out, block, {"type": "input_json_delta", "partial_json": arguments})

    def close(self) -> bytes:
        if self.ended:
            return b""
        self.ended = True
        out: list[bytes] = []
        if not self.begun:
            self._begin(out)
        self._close_block(out)
        usage = _usage(self.usage)
        out.append(_event("message_delta", {"type": "message_delta", "delta": {
            "stop_reason": _stop_reason(self.finish, bool(self.tools)), "stop_sequence": None}, "usage": usage}))
        out.append(_event("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    def fail(self, err: RelayError) -> bytes:
        if self.ended:
            return b""
        self.ended = True
        return _event("error", _error(err, self.request_id))


CODEC = AnthropicCodec()
