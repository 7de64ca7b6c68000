"""A local AIProxy knowledge library for tests: POST /api/library/ask, answered whole or as `data:` events
in the shape one-api reads (relay/adaptor/aiproxy/model.go), its errCode errors when scripted."""

from __future__ import annotations

import json
from dataclasses import dataclass

from aiohttp import web

from tests.mock_upstream import Behaviour, Recorded
from tests.providers.vendor_harness import VendorMock

ANSWER = "The library says hello."
DOCUMENTS = [{"title": "Greetings", "url": "https://docs.example/greetings"}]


@dataclass
class LibraryBehaviour(Behaviour):
    reply: str = ANSWER
    err_code: int = 0


class MockAIProxyLibrary(VendorMock):
    behaviour = LibraryBehaviour

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw, body = await self.read_body(request)
        self.requests.append(Recorded(request.method, request.path, request.query_string, dict(request.headers), body))
        b = self.next_behaviour()
        if b.err_code:
            return web.json_response({"success": False, "errCode": b.err_code, "message": "library not found"},
                                     status=b.status)
        if not body.get("stream"):
            return web.json_response({"success": True, "answer": b.reply, "documents": DOCUMENTS})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        words = b.reply.split(" ")
        for number, word in enumerate(words):
            last = number == len(words) - 1
            event = {"content": word if not number else " " + word, "finish": last, "model": body["model"],
                     "documents": DOCUMENTS if last else []}
            await response.write(f"data:{json.dumps(event)}\n\n".encode())
        await response.write_eof()
        return response
