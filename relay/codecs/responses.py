"""OpenAI's Responses API for its clients (the SDKs, Codex CLI), bridged through chat to any channel.

The request is converted by relay/codecs/responses_request.py; here the relay's chat answer goes back as a
Response object, its stream as Responses events, and errors in OpenAI's own error shape (this is OpenAI's
API). The bridge stores nothing: a Response's id names the request, and cannot be fetched again. A channel
that serves Responses natively gets the client's request as it is (providers/adapters/openai_responses.py), and
what it stores is found again through relay/stored.py.
"""

from __future__ import annotations

import time

import orjson

from providers.adapters.anthropic import signed_blocks
from relay.codecs import chat_answer as vendor
from relay.codecs.responses_custom import StreamedInput, custom_input
from relay.codecs.responses_request import (
    NATIVE_ONLY,
    STORED_HINT,
    background_refusal,
    custom_names,
    decode,
    namespaced_names,
)
from relay.codecs.signed_thinking import seal
from relay.errors import RelayError

# Chat's finish reasons that leave a Response incomplete, with the reason OpenAI gives.
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
# A failure's status as response.failed's `error.code` names it (Codex waits as the message of a
# rate_limit_exceeded says before it retries).
FAILURE_CODES = {429: "rate_limit_exceeded"}


def response_id(request_id: str) -> str:
    return f"resp_{request_id}"


def not_stored(method: str, path: str) -> RelayError:
    """The answer to the routes of stored responses (retrieve, delete, input_items, cancel) and compaction."""
    return RelayError(404, f"{method} {path} is not available: {STORED_HINT}.",
                      type="invalid_request_error", code="response_not_found")


def _item_id(prefix: str, request_id: str, index: int) -> str:
    return f"{prefix}_{request_id}_{index}"


_text_of, _list, _reasoning = vendor.text, vendor.items, vendor.reasoning


def _arguments(value) -> str:
    """A tool call's arguments as the string of JSON a function_call item holds."""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value if value is not None else {}).decode()
    except orjson.JSONEncodeError:  # a vendor's object nested past what can be written: no arguments
        return "{}"


_count = vendor.tokens  # a vendor's junk counts nothing, as billing counts it


def usage(chat_usage: dict | None) -> dict | None:
    """Responses' usage from chat's: input tokens include those read from the cache, as in chat."""
    if not isinstance(chat_usage, dict):
        return None
    prompt, completion = _count(chat_usage, "prompt_tokens"), _count(chat_usage, "completion_tokens")
    cached = chat_usage.get("prompt_tokens_details")
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": min(_count(cached, "cached_tokens"), prompt),
                                 "cache_write_tokens": _count(cached, "cache_write_tokens")},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": _count(chat_usage.get("completion_tokens_details"),
                                                             "reasoning_tokens")},
        "total_tokens": _count(chat_usage, "total_tokens") or prompt + completion,
    }


def echoed(request: dict) -> dict:
    """What a Response repeats of the client's request, as OpenAI repeats it."""
    reasoning = request.get("reasoning") if isinstance(request.get("reasoning"), dict) else {}
    fields = {
        "instructions": request.get("instructions"), "max_output_tokens": request.get("max_output_tokens"),
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "temperature": request.get("temperature"), "text": request.get("text") or {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice") or "auto", "tools": request.get("tools") or [],
        "top_p": request.get("top_p"), "user": request.get("user"), "metadata": request.get("metadata") or {},
    }
    try:
        orjson.dumps(fields)
    except orjson.JSONEncodeError:
        # Nested deeper than orjson writes (it reads deeper), in a field chat never carried: not repeated.
        return {"parallel_tool_calls": True, "text": {"format": {"type": "text"}}, "tool_choice": "auto",
                "tools": [], "metadata": {}}
    return fields


def envelope(echo: dict, *, request_id: str, model: str, created_at: int, status: str) -> dict:
    """A Response without its output."""
    return {
        "id": response_id(request_id), "object": "response", "created_at": created_at, "status": status,
        "background": False, "error": None, "incomplete_details": None, "model": model, "output": [],
        "previous_response_id": None, "store": False, "truncation": "disabled", "usage": None, **echo,
    }


def _finish(response: dict, finish: str | None) -> None:
    reason = INCOMPLETE.get(finish or "")
    response["status"] = "incomplete" if reason else "completed"
    if reason:
        response["incomplete_details"] = {"reason": reason}
    response["completed_at"] = int(time.time())


def _reasoning_item(item_id: str, text: str, signed: list[dict] | None = None) -> dict:
    item = {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}]}
    if signed:  # only when the client asked for it, as OpenAI gives encrypted_content
        item["encrypted_content"] = seal(signed)
    return item


def _wants_signed(request: dict) -> bool:
    include = request.get("include")
    return isinstance(include, list) and "reasoning.encrypted_content" in include


def _text_part(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(item_id: str, text: str | None, status: str) -> dict:
    return {"id": item_id, "type": "message", "role": "assistant", "status": status,
            "content": [] if text is None else [_text_part(text)]}


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str,
               namespaced: dict[str, tuple[str, str]]) -> dict:
    item = {"id": item_id, "type": "function_call", "status": status, "arguments": arguments,
            "call_id": call_id, "name": name}
    if name in namespaced:  # a namespace's function: Codex finds it by the two names apart
        item["namespace"], item["name"] = namespaced[name]
    return item


def _custom_item(item_id: str, call_id: str, name: str, text: str) -> dict:
    return {"id": item_id, "type": "custom_tool_call", "call_id": call_id, "name": name, "input": text}


def output_text(output: list[dict]) -> str:
    return "".join(part["text"] for item in output if item["type"] == "message"
                   for part in item["content"] if part["type"] == "output_text")


def _error(err: RelayError, request_id: str) -> dict:
    message = err.message
    if request_id and "(request id:" not in message:
        message = f"{message} (request id: {request_id})"
    return {"code": FAILURE_CODES.get(err.status, "server_error"), "message": message}


def previous_not_found(previous: str) -> RelayError:
    """A `previous_response_id` this gateway has no record of for the caller (OpenAI's status and code)."""
    return RelayError(400, f"previous_response_id: no response {previous!r} is stored through this gateway for "
                           f"you; responses are stored by channels that serve the Responses API natively.",
                      type="invalid_request_error", code="previous_response_not_found",
                      param="previous_response_id")


def response_not_found(answer_id: str) -> RelayError:
    """A stored-response route for an id this gateway has no record of for the caller."""
    return RelayError(404, f"No response with id {answer_id!r} is stored through this gateway for you; responses "
                           f"are stored by channels that serve the Responses API natively.",
                      type="invalid_request_error", code="response_not_found")


def _native_only(body: dict, *, counting: bool) -> dict:
    """The chat body of a request only a channel that serves Responses can take: what chat can carry of it, for
    the price estimate and the count of a prompt the vendor gives no usage for."""
    stripped = {name: value for name, value in body.items() if name not in NATIVE_ONLY}
    try:
        return decode(stripped, counting=counting)
    except RelayError:
        pass  # the input builds on what the vendor stored: only its words are counted
    try:
        words = body["input"] if isinstance(body.get("input"), str) else orjson.dumps(body.get("input")).decode()
    except orjson.JSONEncodeError:
        words = ""
    chat: dict = {"model": body["model"], "messages": [{"role": "user", "content": words}]}
    if body.get("stream") is True and not counting:
        chat.update(stream=True, stream_options={"include_usage": True})
    return chat


class ResponsesCodec:
    protocol = "responses"
    native_headers: tuple[str, ...] = ()  # OpenAI's clients send no header that shapes the answer

    def decode(self, body: dict) -> dict:
        return decode(body)

    def decode_native(self, body: dict, *, counting: bool = False) -> tuple[dict, RelayError | None]:
        if body.get("background") is True:
            raise background_refusal()  # on every channel, native ones too
        try:
            return decode(body, counting=counting), None
        except RelayError as refusal:
            # What builds on a response the vendor stored (previous_response_id, a conversation, a stored prompt,
            # ...) goes as it is to a channel that serves Responses; any other refuses it with this.
            if not any(body.get(name) not in (None, False) for name in NATIVE_ONLY) or refusal.param == "model":
                raise  # a request with no model is refused whatever channel might serve it
            return _native_only(body, counting=counting), refusal

    def decode_count(self, body: dict) -> dict:
        """An input_tokens request: the same conversion, without what only the answer needs."""
        return decode(body, counting=True)

    def encode_count(self, tokens: int) -> bytes:
        return orjson.dumps({"object": "response.input_tokens", "input_tokens": tokens})

    def encode_answer(self, answer: dict, *, model: str, request_id: str, request: dict | None = None) -> bytes:
        request = request or {}
        answer = answer if isinstance(answer, dict) else {}
        choice = vendor.first_choice(answer)
        message = choice.get("message")
        message = message if isinstance(message, dict) else {}
        finish = _text_of(choice.get("finish_reason"))
        status = "incomplete" if finish in INCOMPLETE else "completed"
        output: list[dict] = []
        thinking = _reasoning(message)
        signed = signed_blocks(message.get("thinking_blocks")) if _wants_signed(request) else []
        if thinking or signed:
            output.append(_reasoning_item(_item_id("rs", request_id, len(output)), thinking, signed))
        text = message.get("content")
        if isinstance(text, list):  # a vendor answering in content parts
            text = "".join(_text_of(p.get("text")) for p in text if isinstance(p, dict))
        calls = [call for call in _list(message.get("tool_calls")) if isinstance(call, dict)]
        if (isinstance(text, str) and text) or not calls:
            output.append(_message_item(_item_id("msg", request_id, len(output)),
                                        text if isinstance(text, str) else "", status))
        namespaced = namespaced_names(request.get("tools")) if calls else {}
        customs = custom_names(request.get("tools")) if calls else frozenset()
        for position, call in enumerate(calls):
            function = call.get("function") if isinstance(call.get("function"), dict) else {}
            name, arguments = _text_of(function.get("name")), _arguments(function.get("arguments"))
            item_id = _item_id("ctc" if name in customs else "fc", request_id, len(output))
            call_id = _text_of(call.get("id")) or f"call_{request_id}_{position}"
            output.append(_custom_item(item_id, call_id, name, custom_input(arguments)) if name in customs
                          else _call_item(item_id, call_id, name, arguments, "completed", namespaced))
        response = envelope(echoed(request), request_id=request_id, model=model,
                            created_at=int(time.time()), status=status)
        _finish(response, finish)
        response["output"] = output
        response["output_text"] = output_text(output)  # the SDKs' convenience, for clients without one
        response["usage"] = usage(answer.get("usage"))
        return orjson.dumps(response)

    def stream_encoder(self, *, model: str, request_id: str, request: dict | None = None) -> ResponseStream:
        return ResponseStream(model=model, request_id=request_id, request=request or {})

    def render_error(self, err: RelayError, request_id: str) -> tuple[int, bytes]:
        return err.status, err.to_json(request_id)

    def stream_error(self, err: RelayError, request_id: str) -> bytes:
        """Responses' `error` event: a stream the gateway breaks off knows nothing of the Response it carried."""
        payload = {"type": "error", **_error(err, request_id), "param": None}
        return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"


_HEADS: dict[str, bytes] = {}


def _head(kind: str) -> bytes:
    """An event's lines up to its data's type field: `event: kind`, then `data: {"type":"kind"` (left open)."""
    head = _HEADS.get(kind)
    if head is None:
        head = _HEADS[kind] = b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind})[:-1]
    return head


class ResponseStream:
    """Chat chunks to Responses events: response.created and in_progress, an output item per reasoning, text
    or tool call (added, its deltas, done), then response.completed (or incomplete) with the whole Response."""

    __slots__ = ("request", "echo", "model", "request_id", "created_at", "sequence", "begun", "ended", "output", "kind",
                 "open", "where", "pieces", "tools", "namespaced", "customs", "raw", "finish", "usage", "signed")

    def __init__(self, *, model: str, request_id: str, request: dict):
        self.request = request
        self.echo = echoed(request)
        self.model = model
        self.request_id = request_id
        self.created_at = int(time.time())
        self.sequence = 0
        self.begun = False
        self.ended = False
        self.output: list[dict] = []  # every item so far, by output index
        self.kind = ""  # what the open reasoning or message item is ("reasoning", "message"), or "tools"
        self.open = -1  # the output index of the open reasoning or message item
        self.where = b""  # the open item's place in its delta events, as JSON fields
        self.pieces: list[str] = []  # its text so far
        self.tools: dict[int, int] = {}  # an open tool call's chat index -> its output index
        self.namespaced: dict[str, tuple[str, str]] | None = None
        self.customs: frozenset[str] = frozenset()
        self.raw: dict[int, StreamedInput] = {}  # a custom tool call's input as it arrives, by output index
        self.finish: str | None = None
        self.usage: dict | None = None
        # The open reasoning item's signed thinking blocks, when the client asked for encrypted_content.
        self.signed: list[dict] | None = [] if _wants_signed(request) else None

    def _emit(self, out: list[bytes], kind: str, fields: dict) -> None:
        payload = {"type": kind, **fields, "sequence_number": self.sequence}
        self.sequence += 1
        out.append(b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n")

    def _emit_raw(self, out: list[bytes], kind: str, body: bytes) -> None:
        """An event whose fields after its type are `body`, JSON written ahead (ending with a comma)."""
        out.append(_head(kind) + b"," + body + b'"sequence_number":%d}\n\n' % self.sequence)
        self.sequence += 1

    def _response(self, status: str) -> dict:
        return envelope(self.echo, request_id=self.request_id, model=self.model, created_at=self.created_at,
                        status=status)

    def _begin(self, out: list[bytes]) -> None:
        self.begun = True
        # Both events carry the same Response: written once.
        response = b'"response":' + orjson.dumps(self._response("in_progress")) + b","
        self._emit_raw(out, "response.created", response)
        self._emit_raw(out, "response.in_progress", response)

    def _add(self, out: list[bytes], item: dict) -> int:
        index = len(self.output)
        self.output.append(item)
        self._emit(out, "response.output_item.added", {"output_index": index, "item": item})
        return index

    def _open(self, out: list[bytes], kind: str) -> None:
        self._close(out, "completed")
        self.kind = kind
        self.pieces = []
        index = len(self.output)
        if kind == "reasoning":
            item_id = _item_id("rs", self.request_id, index)
            self.where = b'"item_id":' + orjson.dumps(item_id) + b',"output_index":%d,"summary_index":0,' % index
            self.open = self._add(out, {"id": item_id, "type": "reasoning", "summary": []})
            self._emit(out, "response.reasoning_summary_part.added", {
                "item_id": item_id, "output_index": index, "summary_index": 0,
                "part": {"type": "summary_text", "text": ""}})
        else:
            item_id = _item_id("msg", self.request_id, index)
            self.where = b'"item_id":' + orjson.dumps(item_id) + b',"output_index":%d,"content_index":0,' % index
            self.open = self._add(out, _message_item(item_id, None, "in_progress"))
            self._emit(out, "response.content_part.added", {
                "item_id": item_id, "output_index": index, "content_index": 0, "part": _text_part("")})

    def _close(self, out: list[bytes], status: str) -> None:
        """End the open items: the reasoning or message item, or the tool calls."""
        if self.kind in ("reasoning", "message"):
            index = self.open
            item_id = self.output[index]["id"]
            text = "".join(self.pieces)
            if self.kind == "reasoning":
                where = {"item_id": item_id, "output_index": index, "summary_index": 0}
                self._emit(out, "response.reasoning_summary_text.done", {**where, "text": text})
                self._emit(out, "response.reasoning_summary_part.done", {
                    **where, "part": {"type": "summary_text", "text": text}})
                item = _reasoning_item(item_id, text, self.signed)
                if self.signed:
                    self.signed = []
            else:
                where = {"item_id": item_id, "output_index": index, "content_index": 0}
                self._emit(out, "response.output_text.done", {**where, "text": text, "logprobs": []})
                self._emit(out, "response.content_part.done", {**where, "part": _text_part(text)})
                item = _message_item(item_id, text, status)
            self.output[index] = item
            self._emit(out, "response.output_item.done", {"output_index": index, "item": item})
        for index in self.tools.values():
            item = self.output[index]
            where = {"item_id": item["id"], "output_index": index}
            if index in self.raw:
                item["input"], rest = self.raw.pop(index).finish()
                if rest:
                    self._emit(out, "response.custom_tool_call_input.delta", {**where, "delta": rest})
                self._emit(out, "response.custom_tool_call_input.done", {**where, "input": item["input"]})
            else:
                item["status"] = status
                self._emit(out, "response.function_call_arguments.done", {**where, "arguments": item["arguments"]})
            self._emit(out, "response.output_item.done", {"output_index": index, "item": item})
        self.tools = {}
        self.kind = ""

    def _text(self, out: list[bytes], kind: str, delta: str) -> None:
        if self.kind != kind:
            self._open(out, kind)
        self.pieces.append(delta)
        if kind == "reasoning":
            self._emit_raw(out, "response.reasoning_summary_text.delta",
                           self.where + b'"delta":' + orjson.dumps(delta) + b",")
        else:
            self._emit_raw(out, "response.output_text.delta",
                           self.where + b'"delta":' + orjson.dumps(delta) + b',"logprobs":[],')

    def _tool_call(self, out: list[bytes], call: dict) -> None:
        position = vendor.call_index(call)
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        index = self.tools.get(position)
        if index is None:
            if self.kind != "tools":
                self._close(out, "completed")
                self.kind = "tools"
            if self.namespaced is None:
                self.namespaced = namespaced_names(self.request.get("tools"))
                self.customs = custom_names(self.request.get("tools"))
            index = len(self.output)
            call_id = _text_of(call.get("id")) or f"call_{self.request_id}_{position}"
            name = _text_of(function.get("name"))
            if name in self.customs:
                self.raw[index] = StreamedInput()
                self._add(out, _custom_item(_item_id("ctc", self.request_id, index), call_id, name, ""))
            else:
                self._add(out, _call_item(_item_id("fc", self.request_id, index), call_id, name, "", "in_progress",
                                          self.namespaced))
            self.tools[position] = index
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # a vendor that sends the whole object at once
            arguments = _arguments(arguments)
        if index in self.raw:
            text = self.raw[index].feed(arguments) if isinstance(arguments, str) else ""
            if text:
                item = self.output[index]
                self._emit(out, "response.custom_tool_call_input.delta", {
                    "item_id": item["id"], "output_index": index, "delta": text})
        elif isinstance(arguments, str) and arguments:
            item = self.output[index]
            item["arguments"] += arguments
            self._emit(out, "response.function_call_arguments.delta", {
                "item_id": item["id"], "output_index": index, "delta": arguments})

    def feed(self, chunk: dict) -> bytes:
        if self.ended:
            return b""
        out: list[bytes] = []
        if not self.begun:
            self._begin(out)
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in _list(chunk.get("choices")):
            if not vendor.is_first(choice):
                continue  # a Response has one answer
            delta = choice.get("delta")
            delta = delta if isinstance(delta, dict) else {}
            thinking = _reasoning(delta)
            if thinking:
                self._text(out, "reasoning", thinking)
            if self.signed is not None and "thinking_blocks" in delta and (signed := signed_blocks(
                    delta["thinking_blocks"])):
                if self.kind != "reasoning":  # redacted thinking, which has no text
                    self._open(out, "reasoning")
                self.signed.extend(signed)
            text = delta.get("content")
            if isinstance(text, str) and text:
                self._text(out, "message", text)
            for call in _list(delta.get("tool_calls")):
                if isinstance(call, dict):
                    self._tool_call(out, call)
            if choice.get("finish_reason"):
                self.finish = _text_of(choice["finish_reason"])
        return b"".join(out)

    def close(self) -> bytes:
        if self.ended:
            return b""
        self.ended = True
        out: list[bytes] = []
        if not self.begun:
            self._begin(out)
        incomplete = self.finish in INCOMPLETE
        self._close(out, "incomplete" if incomplete else "completed")
        response = self._response("completed")
        _finish(response, self.finish)
        response["output"] = self.output
        response["usage"] = usage(self.usage)
        self._emit(out, "response.incomplete" if incomplete else "response.completed", {"response": response})
        return b"".join(out)

    def fail(self, err: RelayError) -> bytes:
        """The stream broke off: response.failed with what had arrived (and is billed, as for chat)."""
        if self.ended:
            return b""
        self.ended = True
        out: list[bytes] = []
        if not self.begun:
            self._begin(out)
        if self.kind in ("reasoning", "message"):  # what the open item holds, as the failed Response shows it
            item_id, text = self.output[self.open]["id"], "".join(self.pieces)
            self.output[self.open] = (_reasoning_item(item_id, text) if self.kind == "reasoning"
                                      else _message_item(item_id, text, "incomplete"))
        for index in self.tools.values():
            if index in self.raw:  # what arrived of its input
                self.output[index]["input"] = self.raw[index].sent
            else:
                self.output[index]["status"] = "incomplete"
        response = self._response("failed")
        response["error"] = _error(err, self.request_id)
        response["output"] = self.output
        response["usage"] = usage(self.usage)
        self._emit(out, "response.failed", {"response": response})
        return b"".join(out)


CODEC = ResponsesCodec()
