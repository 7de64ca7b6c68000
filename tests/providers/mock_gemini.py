"""A local Gemini API for tests: generateContent, streamGenerateContent?alt=sse and batchEmbedContents,
answered from the fixtures in tests/fixtures/providers/gemini/. It records every request, can be
scripted to fail or to cut a stream, and also serves images for the inlining tests."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

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


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


class MockGemini:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.script: deque[Behaviour] = deque()
        self.port = 0
        self.image_size = 0  # extra bytes appended to the served image (for the size limit)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def then(self, **kwargs) -> "MockGemini":
        self.script.append(Behaviour(**kwargs))
        return self

    def reset(self) -> None:
        self.requests.clear()
        self.script.clear()
        self.image_size = 0

    def start(self) -> "MockGemini":
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True, name="mock-gemini").start()
        ready.wait(10)
        return self

    def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/images/{name}", self._image)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        if self._loop and self._runner:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)

    async def _image(self, request: web.Request) -> web.Response:
        if request.match_info["name"] == "page.html":
            return web.Response(body=b"<html></html>", content_type="text/html")
        return web.Response(body=PNG + b"\0" * self.image_size, content_type="image/png")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        self.requests.append(Recorded(request.method, request.path, request.query_string, dict(request.headers),
                                      body))
        b = self.script.popleft() if self.script else Behaviour()
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
