"""A local Xunfei Spark HTTP upstream: OpenAI's route, Spark's answers (`code`/`message`/`sid`, no
`object`, usage in the last stream chunk) and Spark's habit of failing with HTTP 200 and a code."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.mock_upstream import Behaviour, Recorded
from tests.providers.vendor_harness import VendorMock

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "xunfei"
REPLY = "你好！我是讯飞星火。"


@dataclass
class SparkBehaviour(Behaviour):
    reply: str = REPLY
    prompt_tokens: int = 6
    completion_tokens: int = 8
    fixture: str | None = None
    spark_error: dict | None = None  # `{"code", "message", "sid"}` served with HTTP 200


class MockXunfei(VendorMock):
    behaviour = SparkBehaviour

    def __init__(self, password: str) -> None:
        super().__init__()
        self.password = password

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else {}
        self.requests.append(Recorded(request.method, request.path, request.query_string, dict(request.headers), body))
        if request.headers.get("Authorization") != f"Bearer {self.password}":
            return web.json_response({"error": {"message": "HMAC signature does not match, a invalid request.",
                                                "type": "api_error", "code": "11200"}}, status=401)
        b = self.next_behaviour()
        if b.spark_error:
            return web.json_response(b.spark_error)
        if b.fixture:
            kind = "text/event-stream" if b.fixture.endswith(".sse") else "application/json"
            return web.Response(body=(FIXTURES / b.fixture).read_bytes(), content_type=kind, charset="utf-8")
        usage = {"prompt_tokens": b.prompt_tokens, "completion_tokens": b.completion_tokens,
                 "total_tokens": b.prompt_tokens + b.completion_tokens}
        base = {"code": 0, "message": "Success", "sid": "cha000mock@dx1"}
        if not body.get("stream"):
            return web.json_response({**base, "choices": [{"message": {"role": "assistant", "content": b.reply},
                                                           "index": 0}], "usage": usage})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        def event(payload: dict) -> bytes:
            chunk = {**base, "id": "cha000mock@dx1", "created": int(time.time()), **payload}
            return b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"

        try:
            for n, piece in enumerate([b.reply[i:i + 3] for i in range(0, len(b.reply), 3)]):
                if b.cut_after is not None and n >= b.cut_after:
                    request.transport.close()
                    return response
                await response.write(event({"choices": [{"delta": {"role": "assistant", "content": piece},
                                                         "index": 0}]}))
            await response.write(event({"choices": [{"delta": {"role": "assistant", "content": ""}, "index": 0}],
                                        "usage": usage}))
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.streams_cancelled += 1
            raise
        return response
