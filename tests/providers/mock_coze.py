"""A local Coze for tests: `/v3/chat` and `/open_api/v2/chat`, answering from the fixtures.

It records every request (to assert the URL, headers and body we sent), streams the fixture
SSE files as Coze does, and can be scripted: another fixture, an error body (Coze sends many
with HTTP 200), or a stream cut after some events.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.mock_upstream import Recorded
from tests.providers.vendor_harness import VendorMock

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "providers" / "coze"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@dataclass
class CozeBehaviour:
    fixture: str | None = None  # default: v3_stream.sse on v3, v2_stream.sse (or v2_answer.json) on v2
    status: int = 200
    error: str | None = None  # a JSON fixture to answer with instead of a stream, at `status`
    cut_after: int | None = None  # close the connection after this many events


class MockCoze(VendorMock):
    behaviour = CozeBehaviour

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        self.requests.append(Recorded(request.method, request.path, request.query_string, dict(request.headers), body))
        behaviour = self.next_behaviour()
        v2 = request.path == "/open_api/v2/chat"
        if request.path not in ("/v3/chat", "/open_api/v2/chat") or request.method != "POST":
            return web.json_response({"code": 4000, "msg": f"no such API: {request.path}"}, status=404)
        if behaviour.error:
            return web.Response(body=fixture(behaviour.error), status=behaviour.status,
                                content_type="application/json")
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return web.Response(body=fixture("v3_error_auth.json"), content_type="application/json")
        if v2 and isinstance(body, dict) and not body.get("stream"):
            return web.Response(body=fixture(behaviour.fixture or "v2_answer.json"), content_type="application/json")
        return await self._sse(request, fixture(behaviour.fixture or ("v2_stream.sse" if v2 else "v3_stream.sse")),
                               behaviour.cut_after)

    async def _sse(self, request: web.Request, stream: bytes, cut_after: int | None) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        try:
            for sent, event in enumerate(e for e in stream.split(b"\n\n") if e.strip()):
                if cut_after is not None and sent >= cut_after:
                    request.transport.close()
                    return response
                await response.write(event + b"\n\n")
                await asyncio.sleep(0)
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.streams_cancelled += 1
            raise
        return response
