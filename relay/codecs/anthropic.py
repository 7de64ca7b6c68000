"""Anthropic's Messages API for Claude clients (the SDKs, Claude Code), over any channel.

The request is converted by relay/codecs/anthropic_request.py; here the relay's chat answer goes back as a
Message, its stream as Anthropic's events, and errors in Anthropic's shape with its types.
"""

from __future__ import annotations

import time

import orjson

from providers.adapters.anthropic import signed_blocks
from relay.codecs import chat_answer as vendor
from relay.codecs.anthropic_request import decode_request
from relay.errors import RelayError

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                "content_filter": "refusal"}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
               503: "overloaded_error", 504: "timeout_error", 529: "overloaded_error"}
# The types that say more than the status does (invalid_request_error is also OpenAI's, for any 4xx).
ANTHROPIC_TYPES = (frozenset(ERROR_TYPES.values()) | {"api_error"}) - {"invalid_request_error"}
# While tool calls are held back, a ping at most this often (seconds) shows the client the answer goes on.
PING_EVERY = 5.0


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


def _usage(usage) -> dict:
    """Anthropic's usage: its input_tokens leave out what was read from the prompt cache and what was
    written to it, which it counts apart. Counts are read as billing reads them, so what the client is told
    is what it paid for."""
    prompt = vendor.tokens(usage, "prompt_tokens")
    details = vendor.obj(vendor.obj(usage).get("prompt_tokens_details"))
    cached = min(vendor.tokens(details, "cached_tokens"), prompt)
    written = min(vendor.tokens(details, "cache_write_tokens"), prompt - cached)
    out = {"input_tokens": prompt - cached - written, "output_tokens": vendor.tokens(usage, "completion_tokens")}
    if cached:
        out["cache_read_input_tokens"] = cached
    if written:
        out["cache_creation_input_tokens"] = written
    return out


def _stop_reason(finish: str | None, has_calls: bool) -> str:
    if has_calls and finish in (None, "stop", "tool_calls", "function_call"):
        return "tool_use"  # some vendors end a turn of tool calls with "stop"
    return STOP_REASONS.get(finish or "stop", "end_turn")


def _tool_use(call: dict, request_id: str, position: int, arguments) -> dict:
    function = vendor.obj(call.get("function"))
    return {"type": "tool_use", "id": vendor.text(call.get("id")) or f"toolu_{request_id}_{position}",
            "name": vendor.text(function.get("name")), "input": vendor.arguments_object(arguments)}


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
        choice = vendor.first_choice(answer)
        message = vendor.obj(choice.get("message"))
        content: list[dict] = []
        thinking = vendor.reasoning(message)
        signed = signed_blocks(message.get("thinking_blocks"))
        if signed:  # a channel that signs its thinking (Claude behind chat): the blocks as Claude wrote them
            content.extend(signed)
        elif thinking:
            content.append({"type": "thinking", "thinking": thinking, "signature": ""})
        text = vendor.content_text(message.get("content"))
        if text:
            content.append({"type": "text", "text": text})
        calls = vendor.tool_calls(message)
        for position, call in enumerate(calls):
            content.append(_tool_use(call, request_id, position, vendor.obj(call.get("function")).get("arguments")))
        return orjson.dumps({
            "id": message_id(request_id), "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": _stop_reason(vendor.finish_reason(choice), bool(calls)),
            "stop_sequence": None, "usage": _usage(vendor.obj(answer).get("usage")),
        })

    def stream_encoder(self, *, model: str, request_id: str, request: dict | None = None) -> MessageStream:
        return MessageStream(model=model, request_id=request_id)

    def render_error(self, err: RelayError, request_id: str) -> tuple[int, bytes]:
        return err.status, orjson.dumps(_error(err, request_id))

    def stream_error(self, err: RelayError, request_id: str) -> bytes:
        return _event("error", _error(err, request_id))


def _event(kind: str, payload: dict) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


PING = _event("ping", {"type": "ping"})


def _text_delta(index: int, kind: str, text: str) -> bytes:
    """A thinking or text delta event, the form most of a stream's events take, written without a dict."""
    head = (b"event: content_block_delta\ndata: "
            b'{"type":"content_block_delta","index":%d,"delta":{"type":"%s_delta","%s":')
    return head % (index, kind.encode(), kind.encode()) + orjson.dumps(text) + b"}}\n\n"


class MessageStream:
    """Chat chunks to Anthropic's events: message_start and ping, a content block per thinking, text or tool
    call (started, deltas, stopped), then message_delta with the stop reason and usage, and message_stop.

    A tool call's block goes out whole once the run of calls it belongs to has ended (at the next thinking or
    text, or at the end): the client's SDK parses every input_json_delta as it comes and fails on a piece
    that is not JSON, which a vendor may send, and vendors may interleave the pieces of parallel calls. So the
    pieces are joined first and sent as one delta of the call's input as an object; pings keep the
    connection busy meanwhile."""

    __slots__ = ("model", "request_id", "begun", "ended", "block", "kind", "calls", "sent", "called", "finish",
                 "usage", "quiet_since")

    def __init__(self, *, model: str, request_id: str):
        self.model = model
        self.request_id = request_id
        self.begun = False
        self.ended = False
        self.block = -1  # the index of the last content block started; -1 while none was
        self.kind = ""  # "thinking" or "text" while such a block is open
        self.calls: dict[int, dict] = {}  # the run of tool calls under way: chat index -> id, name, pieces
        self.sent: set[int] = set()  # the chat indices of the calls already sent
        self.called = False
        self.finish: str | None = None
        self.usage: dict | None = None
        self.quiet_since = 0.0  # when an event last went out while tool calls were held

    def _begin(self, out: list[bytes]) -> None:
        self.begun = True
        out.append(_event("message_start", {"type": "message_start", "message": {
            "id": message_id(self.request_id), "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0}}}))
        out.append(PING)

    def _start(self, out: list[bytes], block: dict) -> None:
        self.block += 1
        out.append(_event("content_block_start", {"type": "content_block_start", "index": self.block,
                                                  "content_block": block}))

    def _stop(self, out: list[bytes]) -> None:
        out.append(_event("content_block_stop", {"type": "content_block_stop", "index": self.block}))

    def _open(self, out: list[bytes], kind: str, block: dict) -> None:
        self._close_block(out)
        self._send_calls(out)
        self.kind = kind
        self._start(out, block)

    def _close_block(self, out: list[bytes]) -> None:
        if self.kind:
            self._stop(out)
            self.kind = ""

    def _send_calls(self, out: list[bytes]) -> None:
        for position, call in self.calls.items():
            arguments = call["object"] if call["object"] is not None else "".join(call["pieces"])
            block = _tool_use(call, self.request_id, position, arguments)
            whole = orjson.dumps(block["input"]).decode()
            self._start(out, {**block, "input": {}})
            self._delta(out, self.block, {"type": "input_json_delta", "partial_json": whole})
            self._stop(out)
            self.sent.add(position)
        self.calls.clear()

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
        for choice in vendor.items(chunk.get("choices")):
            if not vendor.is_first(choice):
                continue  # a Message has one answer
            delta = vendor.obj(choice.get("delta"))
            thinking = vendor.reasoning(delta)
            if thinking:
                if self.kind != "thinking":
                    self._open(out, "thinking", {"type": "thinking", "thinking": "", "signature": ""})
                out.append(_text_delta(self.block, "thinking", thinking))
            if "thinking_blocks" in delta:
                self._signed(out, signed_blocks(delta["thinking_blocks"]))
            text = vendor.text(delta.get("content"))
            if text:
                if self.kind != "text":
                    self._open(out, "text", {"type": "text", "text": ""})
                out.append(_text_delta(self.block, "text", text))
            for call in vendor.tool_calls(delta):
                self._hold_call(out, call)
            self.finish = vendor.finish_reason(choice) or self.finish
        if self.calls and not out:
            now = time.monotonic()
            if now - self.quiet_since >= PING_EVERY:
                out.append(PING)
                self.quiet_since = now
        return b"".join(out)

    def _signed(self, out: list[bytes], blocks: list[dict]) -> None:
        """A signed block ends the thinking that streamed before it (chat streams the signature after the
        text); a redacted one is a block of its own."""
        for block in blocks:
            if block["type"] == "thinking":
                if self.kind != "thinking":
                    self._open(out, "thinking", {"type": "thinking", "thinking": "", "signature": ""})
                    self._delta(out, self.block, {"type": "thinking_delta", "thinking": block["thinking"]})
                self._delta(out, self.block, {"type": "signature_delta", "signature": block["signature"]})
            else:
                self._open(out, "redacted_thinking", block)
            self._close_block(out)

    def _hold_call(self, out: list[bytes], call: dict) -> None:
        position = vendor.call_index(call)
        if position in self.sent:
            return  # a piece of a call already sent, after other content: it can no longer join it
        self._close_block(out)
        held = self.calls.get(position)
        if held is None:
            held = self.calls[position] = {"id": None, "function": {"name": None}, "pieces": [], "object": None}
            self.called = True
        function = vendor.obj(call.get("function"))
        held["id"] = held["id"] or vendor.text(call.get("id")) or None
        held["function"]["name"] = held["function"]["name"] or vendor.text(function.get("name")) or None
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            held["pieces"].append(arguments)
        elif isinstance(arguments, dict):  # a vendor that sends the whole object at once
            held["object"] = arguments

    def close(self) -> bytes:
        if self.ended:
            return b""
        self.ended = True
        out: list[bytes] = []
        if not self.begun:
            self._begin(out)
        self._close_block(out)
        self._send_calls(out)
        usage = _usage(self.usage)
        out.append(_event("message_delta", {"type": "message_delta", "delta": {
            "stop_reason": _stop_reason(self.finish, self.called), "stop_sequence": None}, "usage": usage}))
        out.append(_event("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    def fail(self, err: RelayError) -> bytes:
        if self.ended:
            return b""
        self.ended = True
        return _event("error", _error(err, self.request_id))


CODEC = AnthropicCodec()
