"""A local Alibaba DashScope upstream: native text generation (JSON and SSE) and text embeddings.

It checks the Bearer key (401 InvalidApiKey otherwise), streams only when `X-DashScope-SSE: enable`
is sent (as DashScope does), and streams the whole text so far in every event unless
`incremental_output` is true. It records requests, serves fixtures and can fail on request.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.mock_upstream import Behaviour, Recorded
from tests.providers.vendor_harness import VendorMock

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "ali"
REPLY = "我是通义千问，很高兴为你服务。"
TOOL_CALL = {"index": 0, "id": "call_mock_qwen", "type": "function",
             "function": {"name": "get_current_weather", "arguments": "{\"location\": \"杭州市\"}"}}
CHAT_PATH = "/api/v1/services/aigc/text-generation/generation"
EMBEDDINGS_PATH = "/api/v1/services/embeddings/text-embedding/text-embedding"


@dataclass
class AliBehaviour(Behaviour):
    reply: str = REPLY
    prompt_tokens: int = 22
    completion_tokens: int = 12
    fixture: str | None = None  # serve this file from tests/fixtures/providers/ali as the answer
    tool_call: bool = False  # answer with TOOL_CALL


class MockAli(VendorMock):
    behaviour = AliBehaviour

    def __init__(self, keys: set[str] | None = None) -> None:
        super().__init__()
        self.keys = keys or set()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else {}
        self.requests.append(Recorded(request.method, request.path, request.query_string, dict(request.headers), body))
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in self.keys:
            return web.json_response({"code": "InvalidApiKey", "message": "Invalid API-key provided.",
                                      "request_id": "req-auth"}, status=401)
        b = self.next_behaviour()
        if b.delay:
            await asyncio.sleep(b.delay)
        if b.status != 200:
            return web.json_response(b.error or {"code": "InternalError", "message": "Internal server error!",
                                                 "request_id": "req-500"}, status=b.status)
        if b.fixture:
            kind = "text/event-stream" if b.fixture.endswith(".sse") else "application/json"
            return web.Response(body=(FIXTURES / b.fixture).read_bytes(), content_type=kind, charset="utf-8")
        if request.path == EMBEDDINGS_PATH:
            texts = (body.get("input") or {}).get("texts") or []
            return web.json_response({"output": {"embeddings": [
                {"text_index": i, "embedding": [0.1 * (i + 1), -0.2, 0.3]} for i in range(len(texts))]},
                "usage": {"total_tokens": b.prompt_tokens}, "request_id": "req-emb"})
        if request.path != CHAT_PATH:
            return web.json_response({"code": "InvalidURL", "message": "url error", "request_id": "r"}, status=404)
        if request.headers.get("X-DashScope-SSE") == "enable":
            return await self._ali_stream(request, body, b)
        message = {"role": "assistant", "content": b.reply}
        if b.tool_call:
            message = {"role": "assistant", "content": "", "tool_calls": [TOOL_CALL]}
        return web.json_response({
            "output": {"choices": [{"finish_reason": "tool_calls" if b.tool_call else "stop", "message": message}]},
            "usage": self._ali_usage(b, b.completion_tokens), "request_id": "req-plain"})

    def _ali_usage(self, b: AliBehaviour, output: int) -> dict:
        return {"input_tokens": b.prompt_tokens, "output_tokens": output, "total_tokens": b.prompt_tokens + output}

    async def _ali_stream(self, request: web.Request, body: dict, b: AliBehaviour) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream;charset=UTF-8"})
        await response.prepare(request)
        incremental = bool((body.get("parameters") or {}).get("incremental_output"))
        counter = iter(range(1, 1000))

        def event(message: dict, finish: str, output: int) -> bytes:
            payload = {"output": {"choices": [{"message": message, "finish_reason": finish}]},
                       "usage": self._ali_usage(b, output), "request_id": "req-stream"}
            return (f"id:{next(counter)}\nevent:result\n:HTTP_STATUS/200\ndata:".encode()
                    + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n")

        try:
            if b.tool_call:
                name = TOOL_CALL["function"]["name"]
                first = {**TOOL_CALL, "function": {"name": name, "arguments": "{\"location\":"}}
                rest = {**TOOL_CALL, "id": "", "function": {"arguments": " \"杭州市\"}"}}
                await response.write(event({"role": "assistant", "content": "", "tool_calls": [first]}, "null", 3))
                await response.write(event({"role": "assistant", "content": "", "tool_calls": [rest]}, "null", 9))
                await response.write(event({"role": "assistant", "content": ""}, "tool_calls", b.completion_tokens))
                await response.write_eof()
                return response
            pieces = [b.reply[i:i + 3] for i in range(0, len(b.reply), 3)]
            so_far = ""
            for n, piece in enumerate(pieces):
                if b.cut_after is not None and n >= b.cut_after:
                    request.transport.close()
                    return response
                if b.malformed and n == 1:
                    await response.write(b"id:x\nevent:result\n:HTTP_STATUS/200\ndata:{\"output\":{\"cho\n\n")
                so_far += piece
                end = n == len(pieces) - 1
                output = b.completion_tokens if end else max(1, b.completion_tokens * (n + 1) // len(pieces))
                await response.write(event({"role": "assistant", "content": piece if incremental else so_far},
                                           "stop" if end else "null", output))
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.streams_cancelled += 1
            raise
        return response
