"""A local Ollama for tests: /api/chat (JSON or NDJSON stream), /api/embed, and images to fetch.

It answers in Ollama's documented shape, records every request, serves fixture files on
request, and can be scripted to fail, to cut a stream, or to send a garbled line.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.mock_upstream import Behaviour, Recorded
from tests.providers.vendor_harness import VendorMock

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "ollama"
REPLY = "Hello from the mock Ollama."
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\x00" * 40
CREATED_AT = "2024-07-22T20:50:04.234856283Z"


@dataclass
class OllamaBehaviour(Behaviour):
    reply: str = REPLY
    prompt_tokens: int = 26
    completion_tokens: int = 10
    fixture: str | None = None  # serve this file from tests/fixtures/providers/ollama as the answer
    tool_call: bool = False
    done_reason: str = "stop"


class MockOllama(VendorMock):
    behaviour = OllamaBehaviour

    def __init__(self) -> None:
        super().__init__()
        self.image_bytes = PNG  # served at /images/cat.png; /images/big.bin streams `big_size` bytes unsized
        self.big_size = 0

    def reset(self) -> None:
        super().reset()
        self.image_bytes = PNG
        self.big_size = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/images/"):
            return await self._image(request)
        raw = await request.read()
        body = json.loads(raw) if raw else {}
        self.requests.append(Recorded(request.method, request.path, request.query_string, dict(request.headers), body))
        b = self.next_behaviour()
        if b.delay:
            await asyncio.sleep(b.delay)
        if b.status != 200:
            return web.json_response(b.error or {"error": "mock failure"}, status=b.status)
        if b.fixture:
            kind = "application/x-ndjson" if b.fixture.endswith(".ndjson") else "application/json"
            return web.Response(body=(FIXTURES / b.fixture).read_bytes(), content_type=kind)
        if request.path == "/api/embed":
            inputs = body.get("input")
            items = inputs if isinstance(inputs, list) else [inputs]
            return web.json_response({"model": body.get("model"), "total_duration": 14143917,
                                      "embeddings": [[0.01 * (i + 1), -0.02, 0.03] for i in range(len(items))],
                                      "prompt_eval_count": b.prompt_tokens})
        if request.path != "/api/chat":
            return web.Response(status=404, text="404 page not found")
        if body.get("stream", True):  # Ollama streams unless told not to
            return await self._ollama_stream(request, body, b)
        return web.json_response({**self._line(body, self._message(b), done=True), **self._final(b)})

    async def _image(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/images/cat.png":
            return web.Response(body=self.image_bytes, content_type="image/png")
        if request.path == "/images/big.bin":  # chunked: no Content-Length to refuse it by
            response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            sent = 0
            while sent < self.big_size:
                await response.write(b"\xff" * min(65536, self.big_size - sent))
                sent += 65536
            await response.write_eof()
            return response
        return web.Response(status=404, text="no such image")

    def _message(self, b: OllamaBehaviour) -> dict:
        if b.tool_call:
            return {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "get_current_weather", "arguments": {"location": "Paris, FR"}}}]}
        return {"role": "assistant", "content": b.reply}

    @staticmethod
    def _line(body: dict, message: dict, *, done: bool) -> dict:
        return {"model": body.get("model"), "created_at": CREATED_AT, "message": message, "done": done}

    @staticmethod
    def _final(b: OllamaBehaviour) -> dict:
        final = {"done_reason": b.done_reason, "total_duration": 5191566416, "load_duration": 2154458,
                 "eval_duration": 4799921000}
        if b.usage:
            final.update(prompt_eval_count=b.prompt_tokens, eval_count=b.completion_tokens)
        return final

    async def _ollama_stream(self, request: web.Request, body: dict, b: OllamaBehaviour) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)

        def line(payload: dict) -> bytes:
            return json.dumps(payload).encode() + b"\n"

        messages = [self._message(b)] if b.tool_call else [
            {"role": "assistant", "content": piece} for piece in self._pieces(b)]
        sent = 0
        try:
            for message in messages:
                if b.cut_after is not None and sent >= b.cut_after:
                    request.transport.close()
                    return response
                if b.malformed and sent == 1:
                    await response.write(b'{"model":"broken\n')
                await response.write(line(self._line(body, message, done=False)))
                sent += 1
            if b.done:
                await response.write(line({**self._line(body, {"role": "assistant", "content": ""}, done=True),
                                           **self._final(b)}))
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.streams_cancelled += 1
            raise
        return response
