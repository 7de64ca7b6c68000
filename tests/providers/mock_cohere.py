"""A local Cohere for tests: POST /v2/chat (JSON or SSE stream), POST /v2/embed, and images to fetch.

Answers are in Cohere's documented v2 shape; it records every request, serves fixture files on
request, and can be scripted to fail, to cut a stream, or to send a garbled event.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.mock_upstream import Behaviour, Recorded
from tests.providers.vendor_harness import VendorMock

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "cohere"
REPLY = "Hello from the mock Cohere."
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\x00" * 40


@dataclass
class CohereBehaviour(Behaviour):
    reply: str = REPLY
    prompt_tokens: int = 21
    completion_tokens: int = 6
    fixture: str | None = None  # serve this file from tests/fixtures/providers/cohere as the answer
    tool_call: bool = False


class MockCohere(VendorMock):
    behaviour = CohereBehaviour

    def __init__(self) -> None:
        super().__init__()
        self.image_bytes = PNG  # served at /images/cat.png

    def reset(self) -> None:
        super().reset()
        self.image_bytes = PNG

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/images/"):
            if request.path == "/images/cat.png":
                return web.Response(body=self.image_bytes, content_type="image/png")
            return web.Response(status=404, text="no such image")
        raw = await request.read()
        body = json.loads(raw) if raw else {}
        self.requests.append(Recorded(request.method, request.path, request.query_string, dict(request.headers), body))
        b = self.next_behaviour()
        if b.delay:
            await asyncio.sleep(b.delay)
        if b.status != 200:
            return web.json_response(b.error or {"id": "mock", "message": f"mock failure {b.status}"}, status=b.status)
        if b.fixture:
            kind = "text/event-stream" if b.fixture.endswith(".sse") else "application/json"
            return web.Response(body=(FIXTURES / b.fixture).read_bytes(), content_type=kind)
        if request.path == "/v2/embed":
            return web.json_response({
                "id": "mock-embed", "texts": body.get("texts"), "response_type": "embeddings_by_type",
                "embeddings": {"float": [[0.01 * (i + 1), -0.02, 0.03] for i in range(len(body.get("texts") or []))]},
                "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": b.prompt_tokens}}})
        if request.path == "/v2/rerank":
            docs = body.get("documents") or []
            ranked = sorted(range(len(docs)), key=lambda i: -len(docs[i]))[: body.get("top_n") or len(docs)]
            return web.json_response({"id": "mock-rerank", "results": [
                {"index": i, "relevance_score": round(0.9 - 0.1 * n, 2)} for n, i in enumerate(ranked)],
                "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}})
        if request.path != "/v2/chat":
            return web.json_response({"message": "Not Found"}, status=404)
        if body.get("stream"):
            return await self._cohere_stream(request, b)
        message: dict = {"role": "assistant", "content": [{"type": "text", "text": b.reply}]}
        if b.tool_call:
            message = {"role": "assistant", "tool_plan": "I will check the weather.",
                       "tool_calls": [{"id": "get_weather_mock1", "type": "function",
                                       "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}}]}
        return web.json_response({"id": "mock-chat", "finish_reason": "TOOL_CALL" if b.tool_call else "COMPLETE",
                                  "message": message, "usage": self._usage(b)})

    @staticmethod
    def _usage(b: CohereBehaviour) -> dict:
        # Billed units are smaller than the tokens the model saw (no system preamble); tokens are what counts.
        return {"billed_units": {"input_tokens": max(1, b.prompt_tokens // 4), "output_tokens": b.completion_tokens},
                "tokens": {"input_tokens": b.prompt_tokens, "output_tokens": b.completion_tokens}}

    async def _cohere_stream(self, request: web.Request, b: CohereBehaviour) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)

        async def event(payload: dict) -> None:
            await response.write(f"event: {payload['type']}\ndata: {json.dumps(payload)}\n\n".encode())

        try:
            await event({"id": "mock-chat", "type": "message-start", "delta": {"message": {
                "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}})
            if b.tool_call:
                await event({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {
                    "id": "get_weather_mock1", "type": "function",
                    "function": {"name": "get_weather", "arguments": ""}}}}})
                await event({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {
                    "function": {"arguments": '{"location":"Paris"}'}}}}})
                await event({"type": "tool-call-end", "index": 0})
            else:
                await event({"type": "content-start", "index": 0,
                             "delta": {"message": {"content": {"type": "text", "text": ""}}}})
                for sent, piece in enumerate(self._pieces(b)):
                    if b.cut_after is not None and sent >= b.cut_after:
                        request.transport.close()
                        return response
                    if b.malformed and sent == 1:
                        await response.write(b'event: content-delta\ndata: {"type":"content-delta","delta":\n\n')
                    await event({"type": "content-delta", "index": 0,
                                 "delta": {"message": {"content": {"text": piece}}}})
                await event({"type": "content-end", "index": 0})
            end: dict = {"finish_reason": "TOOL_CALL" if b.tool_call else "COMPLETE"}
            if b.usage:
                end["usage"] = self._usage(b)
            await event({"type": "message-end", "delta": end})
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.streams_cancelled += 1
            raise
        return response
