"""A local Baidu Wenxin (Qianfan v1) upstream: the OAuth token endpoint, ERNIE chat and embeddings.

It issues access tokens for the API key / secret pairs it knows (counting how often it is asked),
refuses chat calls with an unknown or expired token as Baidu does (HTTP 200, error_code 110/111),
records every request, serves fixture files on request and can be scripted to fail or cut a stream.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.mock_upstream import Behaviour, Recorded
from tests.providers.vendor_harness import VendorMock

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "baidu"
REPLY = "你好，我是文心一言。"
FUNCTION_CALL = {"name": "get_current_weather", "thoughts": "需要查询天气。",
                 "arguments": "{\"location\":\"北京\"}"}
CHAT_PREFIX = "/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/"
EMBEDDINGS_PREFIX = "/rpc/2.0/ai_custom/v1/wenxinworkshop/embeddings/"


@dataclass
class BaiduBehaviour(Behaviour):
    reply: str = REPLY
    prompt_tokens: int = 15
    completion_tokens: int = 9
    fixture: str | None = None  # serve this file from tests/fixtures/providers/baidu as the answer
    function_call: bool = False  # answer with FUNCTION_CALL
    baidu_error: dict | None = None  # `{"error_code", "error_msg"}`, served with HTTP 200 as Baidu does


class MockBaidu(VendorMock):
    behaviour = BaiduBehaviour

    def __init__(self, keys: dict[str, str] | None = None) -> None:
        super().__init__()
        self.keys = keys or {}  # API key -> secret key
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.token_delay = 0.0
        self.expires_in = 2592000
        self._serial = itertools.count(1)

    def reset(self) -> None:
        super().reset()
        self.tokens.clear()
        self.token_requests = 0
        self.token_delay = 0.0
        self.expires_in = 2592000

    def expire_tokens(self) -> None:
        """Baidu forgets every token it issued (as when one expires or is revoked)."""
        self.tokens.clear()

    @property
    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path != "/oauth/2.0/token"]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else {}
        self.requests.append(Recorded(request.method, request.path, request.query_string, dict(request.headers), body))
        if request.path == "/oauth/2.0/token":
            return await self._token(request)
        if request.query.get("access_token") not in self.tokens:
            return web.json_response({"error_code": 110, "error_msg": "Access token invalid or no longer valid"})
        b = self.next_behaviour()
        if b.delay:
            await asyncio.sleep(b.delay)
        if b.status != 200:
            return web.json_response(b.error or {"error_code": 336000, "error_msg": "Internal error"}, status=b.status)
        if b.baidu_error:
            return web.json_response(b.baidu_error)
        if b.fixture:
            kind = "text/event-stream" if b.fixture.endswith(".sse") else "application/json"
            return web.Response(body=(FIXTURES / b.fixture).read_bytes(), content_type=kind, charset="utf-8")
        if request.path.startswith(EMBEDDINGS_PREFIX):
            return web.json_response({"id": "as-emb", "object": "embedding_list", "created": int(time.time()),
                                      "data": [{"object": "embedding", "embedding": [0.1 * (i + 1), -0.2, 0.3],
                                                "index": i} for i in range(len(body.get("input") or []))],
                                      "usage": {"prompt_tokens": b.prompt_tokens, "total_tokens": b.prompt_tokens}})
        if not request.path.startswith(CHAT_PREFIX):
            return web.json_response({"error_code": 3, "error_msg": "Unsupported openapi method"})
        if body.get("stream"):
            return await self._baidu_stream(request, b)
        answer = {"id": "as-mock1", "object": "chat.completion", "created": int(time.time()), "result": b.reply,
                  "is_truncated": False, "need_clear_history": False, "finish_reason": "normal",
                  "usage": self._usage(b)}
        if b.function_call:
            answer.update(result="", function_call=FUNCTION_CALL, finish_reason="function_call")
        return web.json_response(answer)

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        client_id, secret = request.query.get("client_id"), request.query.get("client_secret")
        if request.query.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type", "error_description": "bad grant type"},
                                     status=400)
        if client_id not in self.keys:
            return web.json_response({"error": "invalid_client", "error_description": "unknown client id"},
                                     status=400)
        if self.keys[client_id] != secret:
            return web.json_response({"error": "invalid_client",
                                      "error_description": "Client authentication failed"}, status=401)
        token = f"24.mock{next(self._serial)}.{self.expires_in}.{int(time.time())}.282335-{client_id[:6]}"
        self.tokens.add(token)
        return web.json_response({"access_token": token, "expires_in": self.expires_in,
                                  "refresh_token": "25.mock", "scope": "public wenxinworkshop_mgr",
                                  "session_key": "mock", "session_secret": "mock"})

    async def _baidu_stream(self, request: web.Request, b: BaiduBehaviour) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        def event(payload: dict) -> bytes:
            base = {"id": "as-mockstream", "object": "chat.completion", "created": int(time.time()),
                    "is_truncated": False, "need_clear_history": False, "finish_reason": "normal"}
            return b"data: " + json.dumps({**base, **payload}, ensure_ascii=False).encode() + b"\n\n"

        pieces = [b.reply[i:i + 3] for i in range(0, len(b.reply), 3)]
        try:
            if b.function_call:
                await response.write(event({"sentence_id": 0, "is_end": True, "result": "",
                                            "function_call": FUNCTION_CALL, "finish_reason": "function_call",
                                            "usage": self._usage(b)}))
                await response.write_eof()
                return response
            for n, piece in enumerate(pieces):
                if b.cut_after is not None and n >= b.cut_after:
                    request.transport.close()
                    return response
                if b.malformed and n == 1:
                    await response.write(b"data: {\"id\":\"as-broken\n\n")
                end = n == len(pieces) - 1
                usage = self._usage(b) if end else {"prompt_tokens": b.prompt_tokens, "completion_tokens": 0,
                                                    "total_tokens": b.prompt_tokens}
                await response.write(event({"sentence_id": n, "is_end": end, "result": piece, "usage": usage}))
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.streams_cancelled += 1
            raise
        return response
