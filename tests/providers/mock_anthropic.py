"""A local Anthropic Messages API for tests: serves the fixtures in tests/fixtures/providers/anthropic.

It records every request, answers `POST /v1/messages` with `<answer>.json` (or, when the request
asks to stream, `<answer>_stream.sse` event by event), and can be scripted to fail: an HTTP error
with one of the error fixtures, or a stream cut after some events.
"""

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

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "anthropic"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def sse_events(name: str) -> list[bytes]:
    """A .sse fixture split into its events, each with its blank line."""
    return [e.strip(b"\n") + b"\n\n" for e in fixture(name).split(b"\n\n") if e.strip()]


@dataclass
class Behaviour:
    answer: str = "chat"  # serves <answer>.json, or <answer>_stream.sse when streaming
    status: int = 200
    error: str = "error_overloaded"  # the error fixture for a non-200 status
    cut_after: int | None = None  # close the connection after this many stream events
    delay: float = 0.0


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class MockAnthropic:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.script: deque[Behaviour] = deque()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def then(self, **kwargs) -> "MockAnthropic":
        """Script the next answer; unscripted requests get a plain answer."""
        self.script.append(Behaviour(**kwargs))
        return self

    def reset(self) -> None:
        self.requests.clear()
        self.script.clear()

    def start(self) -> "MockAnthropic":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True, name="mock-anthropic").start()
        ready.wait(10)
        return self

    def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
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

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        self.requests.append(Recorded(request.method, request.path, dict(request.headers), body))
        behaviour = self.script.popleft() if self.script else Behaviour()
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        if request.method != "POST" or request.path != "/v1/messages":
            return web.json_response({"type": "error", "error": {"type": "not_found_error",
                                                                 "message": f"Not found: {request.path}"}},
                                     status=404)
        if behaviour.status != 200:
            return web.Response(body=fixture(f"{behaviour.error}.json"), status=behaviour.status,
                                content_type="application/json")
        if isinstance(body, dict) and body.get("stream"):
            return await self._stream(request, behaviour)
        return web.Response(body=fixture(f"{behaviour.answer}.json"), content_type="application/json")

    async def _stream(self, request: web.Request, b: Behaviour) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        for sent, event in enumerate(sse_events(f"{b.answer}_stream.sse")):
            if b.cut_after is not None and sent >= b.cut_after:
                request.transport.close()
                return response
            await response.write(event)
        await response.write_eof()
        return response
