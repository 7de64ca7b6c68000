"""A local Zhipu GLM v4 upstream for tests: checks the signed token, answers in Zhipu's shape.

Zhipu's answers are OpenAI's without `object`, with the stream's usage in its last chunk.
It records every request, verifies each JWT against the keys it knows (401 with code 1002
otherwise), serves fixture files on request, and can be scripted to fail or cut a stream.
CogView (images/generations) answers one link, to a PNG this mock serves itself (unsigned,
as Zhipu's file host does), and refuses fields its API reference does not list (code 1214).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.mock_upstream import Behaviour, Recorded
from tests.providers.vendor_harness import VendorMock

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "zhipu"
REPLY = "你好，我是智谱清言。"
TOOL_CALL = {"id": "call_mock_1", "index": 0, "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"location\":\"北京\"}"}}
IMAGES_PATH = "/api/paas/v4/images/generations"
# https://open.bigmodel.cn/dev/api/image-model/cogview : the request fields CogView documents.
IMAGE_FIELDS = {"model", "prompt", "size", "quality", "user_id", "request_id", "watermark_enabled"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))  # stands in for a picture


@dataclass
class ZhipuBehaviour(Behaviour):
    reply: str = REPLY
    prompt_tokens: int = 21
    completion_tokens: int = 13
    fixture: str | None = None  # serve this file from tests/fixtures/providers/zhipu as the answer
    tool_call: bool = False  # answer with TOOL_CALL


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class MockZhipu(VendorMock):
    behaviour = ZhipuBehaviour

    def __init__(self, keys: dict[str, str] | None = None) -> None:
        super().__init__()
        self.keys = keys or {}  # key id -> secret, for checking signatures

    def _token_ok(self, header: str) -> bool:
        token = header.removeprefix("Bearer ").strip()
        try:
            head, claims, signature = token.split(".")
            payload = json.loads(_unb64(claims))
            secret = self.keys[payload["api_key"]]
        except (ValueError, KeyError):
            return False
        expected = hmac.new(secret.encode(), f"{head}.{claims}".encode(), hashlib.sha256).digest()
        return hmac.compare_digest(expected, _unb64(signature)) and payload["exp"] > time.time() * 1000

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else {}
        self.requests.append(Recorded(request.method, request.path, request.query_string, dict(request.headers), body))
        if request.method == "GET" and request.path.startswith("/files/"):
            return web.Response(body=PNG, content_type="image/png")
        b = self.next_behaviour()
        if b.delay:
            await asyncio.sleep(b.delay)
        if not self._token_ok(request.headers.get("Authorization", "")):
            message = "Authorization Token非法，请确认Authorization Token正确传递。"
            return web.json_response({"error": {"code": "1002", "message": message}}, status=401)
        if b.status != 200:
            return web.json_response(b.error or {"error": {"code": "500", "message": "内部错误"}}, status=b.status)
        if b.fixture:
            kind = "text/event-stream" if b.fixture.endswith(".sse") else "application/json"
            return web.Response(body=(FIXTURES / b.fixture).read_bytes(), content_type=kind, charset="utf-8")
        if request.path == "/api/paas/v4/embeddings":
            inputs = body.get("input")
            items = inputs if isinstance(inputs, list) else [inputs]
            return web.json_response({"model": body.get("model"), "object": "list", "data": [
                {"embedding": [0.1 * (i + 1), -0.2, 0.3], "index": i, "object": "embedding"}
                for i in range(len(items))], "usage": {"completion_tokens": 0, "prompt_tokens": b.prompt_tokens,
                                                       "total_tokens": b.prompt_tokens}})
        if request.path == IMAGES_PATH:
            return self._cogview(body)
        if request.path != "/api/paas/v4/chat/completions":
            return web.json_response({"error": {"code": "1222", "message": "API 不存在"}}, status=404)
        if body.get("stream"):
            return await self._zhipu_stream(request, body, b)
        message = {"role": "assistant", "content": b.reply}
        if b.tool_call:
            message = {"role": "assistant", "tool_calls": [TOOL_CALL]}
        return web.json_response({
            "created": int(time.time()), "id": "8239375684858666781", "model": body.get("model"),
            "request_id": "8239375684858666781",
            "choices": [{"finish_reason": "tool_calls" if b.tool_call else "stop", "index": 0, "message": message}],
            "usage": self._usage(b)})

    def _cogview(self, body: dict) -> web.Response:
        unknown = set(body) - IMAGE_FIELDS
        if unknown or not body.get("prompt"):
            return web.json_response({"error": {"code": "1214", "message": f"参数非法。请检查文档。{sorted(unknown)}"}},
                                     status=400)
        name = f"{body['model']}-{len(self.requests)}.png"
        return web.json_response({"created": int(time.time()), "data": [{"url": f"{self.url}/files/{name}"}],
                                  "content_filter": [{"role": "assistant", "level": 3}]})

    async def _zhipu_stream(self, request: web.Request, body: dict, b: ZhipuBehaviour) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream;charset=UTF-8"})
        await response.prepare(request)
        base = {"id": "8313807536837492492", "created": int(time.time()), "model": body.get("model")}

        def event(payload: dict) -> bytes:
            return b"data: " + json.dumps({**base, **payload}, ensure_ascii=False).encode() + b"\n\n"

        pieces = [b.reply[i:i + 3] for i in range(0, len(b.reply), 3)]
        sent = 0
        try:
            if b.tool_call:
                await response.write(event({"choices": [{"index": 0, "delta": {
                    "role": "assistant", "tool_calls": [TOOL_CALL]}}]}))
                pieces = []
            for piece in pieces:
                if b.cut_after is not None and sent >= b.cut_after:
                    request.transport.close()
                    return response
                if b.malformed and sent == 1:
                    await response.write(b"data: {\"id\":\"broken\n\n")
                await response.write(event({"choices": [{"index": 0, "delta": {"role": "assistant",
                                                                               "content": piece}}]}))
                sent += 1
            last = {"choices": [{"index": 0, "finish_reason": "tool_calls" if b.tool_call else "stop",
                                 "delta": {"role": "assistant", "content": ""}}]}
            if b.usage:
                last["usage"] = self._usage(b)
            await response.write(event(last))
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.streams_cancelled += 1
            raise
        return response
