"""A local Gemini API for tests: generateContent, streamGenerateContent?alt=sse and batchEmbedContents,
answered from the fixtures in tests/fixtures/providers/gemini/. It records every request, can be
scripted to fail or to cut a stream, and also serves images for the inlining tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.mock_upstream import Recorded
from tests.providers.vendor_harness import VendorMock

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "providers" / "gemini"
# A 1x1 transparent PNG.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002"
                    "000154a24f5d0000000049454e44ae426082")


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@dataclass
class Behaviour:
    status: int = 200
    error: str | dict | None = None  # a fixture name or the JSON body of an error answer
    fixture: str | None = None  # answer with this fixture instead of the default one
    cut_after: int | None = None  # close a stream after this many events


class MockGemini(VendorMock):
    behaviour = Behaviour

    def __init__(self) -> None:
        super().__init__()
        self.image_size = 0  # extra bytes appended to the served image (for the size limit)

    def reset(self) -> None:
        super().reset()
        self.image_size = 0

    async def _image(self, request: web.Request) -> web.Response:
        if request.path.rsplit("/", 1)[-1] == "page.html":
            return web.Response(body=b"<html></html>", content_type="text/html")
        return web.Response(body=PNG + b"\0" * self.image_size, content_type="image/png")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET" and request.path.startswith("/images/"):
            return await self._image(request)
        raw, body = await self.read_body(request)
        self.requests.append(Recorded(request.method, request.path, request.query_string, dict(request.headers),
                                      body))
        b = self.next_behaviour()
        if b.status != 200:
            error = b.error or "error_400.json"
            data = fixture(error) if isinstance(error, str) else json.dumps(error).encode()
            return web.Response(body=data, status=b.status, content_type="application/json")
        tools = isinstance(body, dict) and bool(body.get("tools"))
        if request.path.endswith(":batchEmbedContents"):
            vectors = json.loads(fixture("embeddings.json"))["embeddings"]
            count = len(body["requests"])
            return web.json_response({"embeddings": [vectors[i % len(vectors)] for i in range(count)]})
        if request.path.endswith(":streamGenerateContent"):
            return await self._stream(request, b.fixture or ("tool_call_stream.sse" if tools else "chat_stream.sse"),
                                      b.cut_after)
        if request.path.endswith(":generateContent"):
            return web.Response(body=fixture(b.fixture or ("tool_call.json" if tools else "chat.json")),
                                content_type="application/json")
        return web.json_response({"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}},
                                 status=404)

    async def _stream(self, request: web.Request, name: str, cut_after: int | None) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        events = [e for e in fixture(name).split(b"\r\n\r\n") if e.strip()]
        for sent, event in enumerate(events):
            if cut_after is not None and sent >= cut_after:
                request.transport.close()
                return response
            await response.write(event + b"\r\n\r\n")
        await response.write_eof()
        return response
