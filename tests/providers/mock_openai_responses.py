"""A local OpenAI Responses API for tests: `POST .../responses` answered whole or as OpenAI's event stream,
responses stored unless `store: false`, and the routes of stored responses (retrieve, delete, input_items,
cancel), under whatever prefix the channel's URL shape puts before `/responses` (OpenAI's /v1, Azure's
/openai/v1 or /openai, a compatible host's none).

Bodies follow https://platform.openai.com/docs/api-reference/responses (the Response object, its usage with
cached and reasoning tokens, the stream's events with `event:` lines and sequence numbers). Every request is
recorded with its bytes; the next answer to a create can be scripted: an HTTP error in OpenAI's shape, a tool
call, an error event before the answer, a stream cut after some events.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tests.providers.vendor_harness import VendorMock

REPLY = "Hello from the Responses mock."
ROUTE = re.compile(r"^(?P<prefix>.*)/responses(?:/(?P<id>[^/]+)(?P<rest>/input_items|/cancel)?)?$")
# The usage of every answer: 2000 input tokens of which 1536 read from the cache, 300 output of which 128 reasoning.
USAGE = {"input_tokens": 2000, "input_tokens_details": {"cached_tokens": 1536}, "output_tokens": 300,
         "output_tokens_details": {"reasoning_tokens": 128}, "total_tokens": 2300}


@dataclass
class Behaviour:
    status: int = 200
    error: dict | None = None  # the error answer's body (OpenAI's shape by default)
    answer: str = "text"  # "text", or "tool_call" (a function call)
    cut_after: int | None = None  # close the connection after this many stream events
    early_error: bool = False  # stream an `error` event and nothing else


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    raw: bytes = b""


def _error(status: int, message: str, code: str | None, param: str | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error", "param": param,
                                        "code": code}}, status=status)


class MockOpenAIResponses(VendorMock):
    behaviour = Behaviour

    def __init__(self) -> None:
        super().__init__()
        self.stored: dict[str, dict] = {}
        self.inputs: dict[str, list] = {}
        self.ids = itertools.count(1)

    def reset(self) -> None:
        super().reset()
        self.stored.clear()
        self.inputs.clear()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw, body = await self.read_body(request)
        self.requests.append(Recorded(request.method, request.path, request.query_string, dict(request.headers),
                                      body, raw))
        route = ROUTE.match(request.path)
        if route is None:
            return _error(404, f"Invalid URL ({request.method} {request.path})", None)
        if route["id"] == "input_tokens":
            return web.json_response({"object": "response.input_tokens", "input_tokens": 42})
        if route["id"] is not None:
            return self._stored_route(request.method, route["id"], route["rest"] or "")
        behaviour = self.next_behaviour()
        if behaviour.status != 200:
            return web.json_response(behaviour.error or {"error": {
                "message": "The server had an error while processing your request.", "type": "server_error",
                "param": None, "code": None}}, status=behaviour.status)
        body = body if isinstance(body, dict) else {}
        previous = body.get("previous_response_id")
        if previous is not None and previous not in self.stored:
            return _error(400, f"Previous response with id '{previous}' not found.", "previous_response_not_found",
                          "previous_response_id")
        response = self._response(body, behaviour)
        if response["store"]:
            self.stored[response["id"]] = response
            self.inputs[response["id"]] = self._input_items(body.get("input"))
        if body.get("stream"):
            return await self._stream(request, response, behaviour)
        return web.Response(body=orjson.dumps(response), content_type="application/json")

    def _stored_route(self, method: str, answer_id: str, rest: str) -> web.Response:
        response = self.stored.get(answer_id)
        if response is None:
            return _error(404, f"Response with id '{answer_id}' not found.", None)
        if rest == "/input_items":
            items = self.inputs[answer_id]
            return web.json_response({"object": "list", "data": items, "first_id": items[0]["id"],
                                      "last_id": items[-1]["id"], "has_more": False})
        if rest == "/cancel":
            return _error(400, "Only responses created with background=true can be cancelled.", None)
        if method == "DELETE":
            del self.stored[answer_id]
            return web.json_response({"id": answer_id, "object": "response", "deleted": True})
        return web.Response(body=orjson.dumps(response), content_type="application/json")

    @staticmethod
    def _input_items(value) -> list[dict]:
        messages = [{"role": "user", "content": value}] if isinstance(value, str) else list(value or [])
        return [{"id": f"msg_in_{n}", "type": "message", "status": "completed", "role": m.get("role", "user"),
                 "content": [{"type": "input_text", "text": m.get("content") if isinstance(m.get("content"), str)
                              else ""}]} for n, m in enumerate(messages)]

    def _response(self, body: dict, b: Behaviour) -> dict:
        number = next(self.ids)
        output: list[dict] = [{"id": f"rs_{number}", "type": "reasoning", "summary": []}]
        if b.answer == "tool_call":
            output.append({"id": f"fc_{number}", "type": "function_call", "status": "completed",
                           "arguments": '{"city":"Paris"}', "call_id": f"call_{number}", "name": "get_weather"})
        else:
            output.append({"id": f"msg_{number}", "type": "message", "status": "completed", "role": "assistant",
                           "content": [{"type": "output_text", "text": REPLY, "annotations": [], "logprobs": []}]})
        return {
            # Unique across runs too: a gateway with Redis keeps what it recorded for 30 days.
            "id": f"resp_{uuid.uuid4().hex}{number:016x}", "object": "response", "created_at": int(time.time()),
            "status": "completed",
            "background": False, "error": None, "incomplete_details": None,
            "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
            "model": body.get("model"), "output": output, "parallel_tool_calls": True,
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": "medium", "summary": None}, "store": body.get("store", True) is not False,
            "temperature": 1.0, "text": {"format": {"type": "text"}}, "tool_choice": "auto",
            "tools": body.get("tools") or [], "top_p": 1.0, "truncation": "disabled", "usage": dict(USAGE),
            "user": None, "metadata": {},
        }

    @staticmethod
    def events(response: dict) -> list[bytes]:
        """The stream OpenAI sends for `response`, event by event."""
        started = {**response, "status": "in_progress", "output": [], "usage": None}
        sequence = itertools.count()
        frames: list[dict] = [{"type": "response.created", "response": started},
                              {"type": "response.in_progress", "response": started}]
        for index, item in enumerate(response["output"]):
            if item["type"] == "message":
                frames.append({"type": "response.output_item.added", "output_index": index,
                               "item": {**item, "status": "in_progress", "content": []}})
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                frames.append({"type": "response.content_part.added", "item_id": item["id"], "output_index": index,
                               "content_index": 0, "part": part})
                text = item["content"][0]["text"]
                for word in re.findall(r"\S+\s*", text):
                    frames.append({"type": "response.output_text.delta", "item_id": item["id"],
                                   "output_index": index, "content_index": 0, "delta": word, "logprobs": []})
                frames.append({"type": "response.output_text.done", "item_id": item["id"], "output_index": index,
                               "content_index": 0, "text": text, "logprobs": []})
                frames.append({"type": "response.content_part.done", "item_id": item["id"], "output_index": index,
                               "content_index": 0, "part": item["content"][0]})
            elif item["type"] == "function_call":
                frames.append({"type": "response.output_item.added", "output_index": index,
                               "item": {**item, "status": "in_progress", "arguments": ""}})
                frames.append({"type": "response.function_call_arguments.delta", "item_id": item["id"],
                               "output_index": index, "delta": item["arguments"]})
                frames.append({"type": "response.function_call_arguments.done", "item_id": item["id"],
                               "output_index": index, "arguments": item["arguments"]})
            else:
                frames.append({"type": "response.output_item.added", "output_index": index, "item": item})
            frames.append({"type": "response.output_item.done", "output_index": index, "item": item})
        frames.append({"type": "response.completed", "response": response})
        return [b"event: " + f["type"].encode() + b"\ndata: "
                + orjson.dumps({"type": f["type"], "sequence_number": next(sequence),
                                **{k: v for k, v in f.items() if k != "type"}}) + b"\n\n" for f in frames]

    async def _stream(self, request: web.Request, response: dict, b: Behaviour) -> web.StreamResponse:
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await stream.prepare(request)
        if b.early_error:
            await stream.write(b'event: error\ndata: {"type":"error","code":"rate_limit_exceeded","message":'
                               b'"Rate limit reached for requests","param":null,"sequence_number":0}\n\n')
            await stream.write_eof()
            return stream
        for sent, event in enumerate(self.events(response)):
            if b.cut_after is not None and sent >= b.cut_after:
                request.transport.close()
                return stream
            await stream.write(event)
            await asyncio.sleep(0)
        await stream.write_eof()
        return stream
