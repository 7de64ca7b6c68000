"""A local Anthropic Messages API for tests: serves the fixtures in tests/fixtures/providers/anthropic.

It records every request (its bytes too, to compare with what a client sent the gateway), answers
`POST /v1/messages` with `<answer>.json` (or, when the request asks to stream, `<answer>_stream.sse`
event by event) and `POST /v1/messages/count_tokens` with count_tokens.json, and can be scripted to
fail: an HTTP error with one of the error fixtures, or a stream cut after some events.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.providers.vendor_harness import VendorMock

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
    raw_stream: bytes | None = None  # a stream's bytes, sent as they are
    event_delay: float = 0.0  # between stream events


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes = b""


class MockAnthropic(VendorMock):
    behaviour = Behaviour

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw, body = await self.read_body(request)
        self.requests.append(Recorded(request.method, request.path, dict(request.headers), body, raw))
        behaviour = self.next_behaviour()
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        if request.method != "POST" or request.path not in ("/v1/messages", "/v1/messages/count_tokens"):
            return web.json_response({"type": "error", "error": {"type": "not_found_error",
                                                                 "message": f"Not found: {request.path}"}},
                                     status=404)
        if behaviour.status != 200:
            return web.Response(body=fixture(f"{behaviour.error}.json"), status=behaviour.status,
                                content_type="application/json")
        if request.path.endswith("/count_tokens"):
            return web.Response(body=fixture("count_tokens.json"), content_type="application/json")
        if isinstance(body, dict) and body.get("stream"):
            return await self._stream(request, behaviour)
        return web.Response(body=fixture(f"{behaviour.answer}.json"), content_type="application/json")

    async def _stream(self, request: web.Request, b: Behaviour) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        if b.raw_stream is not None:
            await response.write(b.raw_stream)
            await response.write_eof()
            return response
        for sent, event in enumerate(sse_events(f"{b.answer}_stream.sse")):
            if b.cut_after is not None and sent >= b.cut_after:
                request.transport.close()
                return response
            await response.write(event)
            if b.event_delay:
                await asyncio.sleep(b.event_delay)
        await response.write_eof()
        return response
