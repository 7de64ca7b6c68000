"""A recording stub that answers each agent in its own protocol, for capturing what the agents send.

It answers Anthropic Messages (`POST .../messages`), OpenAI Responses (`POST .../responses`) and Gemini
(`POST .../models/{model}:generateContent|streamGenerateContent|countTokens`) with one short text answer,
plain or streamed as the request asks, and records every request (method, path, query, headers, body).
Anything else is recorded and answered 404, so an endpoint an agent calls shows up in `requests`.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from aiohttp import web

from tests.mock_upstream import Recorded
from tests.providers.vendor_harness import VendorMock

REPLY = "Hello from the native stub."
USAGE_IN, USAGE_OUT = 13, 5
GEMINI_PATH = re.compile(r"/models/(?P<model>[^/:]+):(?P<method>\w+)$")


def sse(payload: dict, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


class NativeStub(VendorMock):
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        _, body = await self.read_body(request)
        self.requests.append(Recorded(request.method, request.path, request.query_string, dict(request.headers),
                                      body))
        body = body if isinstance(body, dict) else {}
        if request.method == "POST" and request.path.endswith("/messages/count_tokens"):
            return web.json_response({"input_tokens": USAGE_IN})
        if request.method == "POST" and request.path.endswith("/messages"):
            return await self._anthropic(request, body)
        if request.method == "POST" and request.path.endswith("/responses"):
            return await self._responses(request, body)
        if request.method == "POST" and (match := GEMINI_PATH.search(request.path)):
            return await self._gemini(request, match["model"], match["method"])
        return web.json_response({"error": {"message": f"not served: {request.method} {request.path}"}}, status=404)

    async def _events(self, request: web.Request, events: list[bytes]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        for event in events:
            await response.write(event)
        await response.write_eof()
        return response

    # --- Anthropic Messages --------------------------------------------------------------------------

    async def _anthropic(self, request: web.Request, body: dict) -> web.StreamResponse:
        model = body.get("model", "claude")
        message = {"id": "msg_stub", "type": "message", "role": "assistant", "model": model,
                   "content": [{"type": "text", "text": REPLY}], "stop_reason": "end_turn", "stop_sequence": None,
                   "usage": {"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT}}
        if not body.get("stream"):
            return web.json_response(message)
        start = {**message, "content": [], "stop_reason": None, "usage": {"input_tokens": USAGE_IN,
                                                                          "output_tokens": 1}}
        return await self._events(request, [
            sse({"type": "message_start", "message": start}, "message_start"),
            sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                "content_block_start"),
            sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": REPLY}},
                "content_block_delta"),
            sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            sse({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                 "usage": {"output_tokens": USAGE_OUT}}, "message_delta"),
            sse({"type": "message_stop"}, "message_stop"),
        ])

    # --- OpenAI Responses ----------------------------------------------------------------------------

    async def _responses(self, request: web.Request, body: dict) -> web.StreamResponse:
        model = body.get("model", "gpt")
        item = {"id": "msg_stub", "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": REPLY, "annotations": []}]}
        done = {"id": "resp_stub", "object": "response", "created_at": int(time.time()), "status": "completed",
                "model": model, "output": [item],
                "usage": {"input_tokens": USAGE_IN, "input_tokens_details": {"cached_tokens": 0},
                          "output_tokens": USAGE_OUT, "output_tokens_details": {"reasoning_tokens": 0},
                          "total_tokens": USAGE_IN + USAGE_OUT}}
        if not body.get("stream"):
            return web.json_response(done)
        start = {**done, "status": "in_progress", "output": [], "usage": None}
        part = {"type": "output_text", "text": "", "annotations": []}
        common = {"item_id": "msg_stub", "output_index": 0, "content_index": 0}
        events: list[tuple[str, dict[str, Any]]] = [
            ("response.created", {"response": start}),
            ("response.in_progress", {"response": start}),
            ("response.output_item.added", {"output_index": 0, "item": {**item, "status": "in_progress",
                                                                        "content": []}}),
            ("response.content_part.added", {**common, "part": part}),
            ("response.output_text.delta", {**common, "delta": REPLY}),
            ("response.output_text.done", {**common, "text": REPLY}),
            ("response.content_part.done", {**common, "part": {**part, "text": REPLY}}),
            ("response.output_item.done", {"output_index": 0, "item": item}),
            ("response.completed", {"response": done}),
        ]
        return await self._events(request, [sse({"type": kind, "sequence_number": n, **fields}, kind)
                                            for n, (kind, fields) in enumerate(events)])

    # --- Gemini --------------------------------------------------------------------------------------

    async def _gemini(self, request: web.Request, model: str, method: str) -> web.StreamResponse:
        if method == "countTokens":
            return web.json_response({"totalTokens": USAGE_IN})
        answer = {"candidates": [{"content": {"role": "model", "parts": [{"text": REPLY}]}, "finishReason": "STOP",
                                  "index": 0}],
                  "usageMetadata": {"promptTokenCount": USAGE_IN, "candidatesTokenCount": USAGE_OUT,
                                    "totalTokenCount": USAGE_IN + USAGE_OUT},
                  "modelVersion": model}
        if method == "streamGenerateContent":
            return await self._events(request, [sse(answer)])
        return web.json_response(answer)
