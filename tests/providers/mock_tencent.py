"""A local Tencent Hunyuan (API 3.0) for tests: POST / with X-TC-Action ChatCompletions or GetEmbedding.

It checks the TC3-HMAC-SHA256 signature the way Tencent's server does (recomputed here from the
documented steps, independently of the adapter, for the Host header it actually received) and
answers `AuthFailure.SignatureFailure` when it does not match. Answers are in Hunyuan's documented
shape, errors as HTTP 200 with `Response.Error`; it can serve fixture files, cut a stream, or send a
garbled event.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tests.mock_upstream import Behaviour, Recorded
from tests.providers.vendor_harness import VendorMock

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "tencent"
REPLY = "Hello from the mock Hunyuan."
SECRET_ID = "AKIDmockmockmockmockmockmock"
SECRET_KEY = "mock-secret-key-never-shown"
NOTE = "以上内容为AI生成，不代表开发者立场，请勿删除或修改本标记"


def expected_authorization(*, secret_id: str, secret_key: str, host: str, content_type: str, body: bytes,
                           timestamp: str, service: str = "hunyuan", path: str = "/") -> str:
    """Signature v3 as https://cloud.tencent.com/document/api/213/30654 spells it out, step by step."""
    day = time.strftime("%Y-%m-%d", time.gmtime(int(timestamp)))
    # 1. canonical request: method, URI, query, headers (lower-case, sorted, each ending in \n), signed names, hash
    canonical = ("POST\n" + path + "\n" + "\n" + "content-type:" + content_type.strip().lower() + "\n"
                 + "host:" + host.strip().lower() + "\n" + "\n" + "content-type;host\n"
                 + hashlib.sha256(body).hexdigest())
    # 2. string to sign
    scope = day + "/" + service + "/tc3_request"
    to_sign = "TC3-HMAC-SHA256\n" + timestamp + "\n" + scope + "\n" + hashlib.sha256(canonical.encode()).hexdigest()
    # 3. derived key: TC3<SecretKey> → date → service → "tc3_request"
    k_date = hmac.new(("TC3" + secret_key).encode(), day.encode(), hashlib.sha256).digest()
    k_service = hmac.new(k_date, service.encode(), hashlib.sha256).digest()
    k_signing = hmac.new(k_service, b"tc3_request", hashlib.sha256).digest()
    signature = hmac.new(k_signing, to_sign.encode(), hashlib.sha256).hexdigest()
    # 4. the header
    return ("TC3-HMAC-SHA256 Credential=" + secret_id + "/" + scope + ", SignedHeaders=content-type;host, "
            "Signature=" + signature)


@dataclass
class TencentBehaviour(Behaviour):
    reply: str = REPLY
    prompt_tokens: int = 13
    completion_tokens: int = 8
    fixture: str | None = None  # serve this file from tests/fixtures/providers/tencent as the answer
    tencent_error: tuple[str, str] | None = None  # (Code, Message): answered as HTTP 200 with Response.Error
    tool_call: bool = False


class MockTencent(VendorMock):
    behaviour = TencentBehaviour

    def __init__(self) -> None:
        super().__init__()
        self.secret_id, self.secret_key = SECRET_ID, SECRET_KEY
        self.signature_failures = 0

    def reset(self) -> None:
        super().reset()
        self.signature_failures = 0

    @staticmethod
    def _error(code: str, message: str) -> web.Response:
        return web.json_response({"Response": {"Error": {"Code": code, "Message": message},
                                               "RequestId": "mock-request-id"}})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else {}
        self.requests.append(Recorded(request.method, request.path, request.query_string, dict(request.headers), body))
        expected = expected_authorization(
            secret_id=self.secret_id, secret_key=self.secret_key, host=request.headers.get("Host", ""),
            content_type=request.headers.get("Content-Type", ""), body=raw,
            timestamp=request.headers.get("X-TC-Timestamp", "0"), path=request.path)
        if request.headers.get("Authorization") != expected:
            self.signature_failures += 1
            return self._error("AuthFailure.SignatureFailure", "The provided credentials could not be validated. "
                                                               "Please check your signature is correct.")
        b = self.next_behaviour()
        if b.delay:
            await asyncio.sleep(b.delay)
        if b.status != 200:
            return web.json_response(b.error or {"message": "mock gateway failure"}, status=b.status)
        if b.tencent_error:
            return self._error(*b.tencent_error)
        if b.fixture:
            kind = "text/event-stream" if b.fixture.endswith(".sse") else "application/json"
            return web.Response(body=(FIXTURES / b.fixture).read_bytes(), content_type=kind, charset="utf-8")
        action = request.headers.get("X-TC-Action")
        if action == "GetEmbedding":
            inputs = body.get("InputList") or [body.get("Input")]
            return web.json_response({"Response": {
                "Data": [{"Embedding": [0.01 * (i + 1), -0.02, 0.03], "Index": i, "Object": "embedding"}
                         for i in range(len(inputs))],
                "Usage": {"PromptTokens": b.prompt_tokens, "TotalTokens": b.prompt_tokens},
                "RequestId": "mock-request-id"}})
        if action != "ChatCompletions":
            return self._error("InvalidAction", f"The action {action} does not exist.")
        if body.get("Stream"):
            return await self._hunyuan_stream(request, b)
        message: dict = {"Role": "assistant", "Content": b.reply}
        if b.tool_call:
            message = {"Role": "assistant", "Content": "", "ToolCalls": [self._call()]}
        return web.json_response({"Response": {
            "RequestId": "mock-request-id", "Note": NOTE, "Id": "mock-id", "Created": int(time.time()),
            "Choices": [{"Index": 0, "Message": message, "FinishReason": "tool_calls" if b.tool_call else "stop"}],
            "Usage": self._usage(b, b.completion_tokens)}})

    @staticmethod
    def _call(arguments: str = '{"location":"Paris"}') -> dict:
        return {"Id": "call_mock_1", "Type": "function",
                "Function": {"Name": "get_current_weather", "Arguments": arguments}}

    @staticmethod
    def _usage(b: TencentBehaviour, completion: int) -> dict:
        return {"PromptTokens": b.prompt_tokens, "CompletionTokens": completion,
                "TotalTokens": b.prompt_tokens + completion}

    async def _hunyuan_stream(self, request: web.Request, b: TencentBehaviour) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        deltas = ([{"Role": "assistant", "Content": "", "ToolCalls": [self._call("")]},
                   {"Role": "assistant", "Content": "", "ToolCalls": [self._call('{"location":"Paris"}')]}]
                  if b.tool_call else [{"Role": "assistant", "Content": p} for p in self._pieces(b)])
        sent = 0
        try:
            for i, delta in enumerate(deltas):
                if b.cut_after is not None and sent >= b.cut_after:
                    request.transport.close()
                    return response
                if b.malformed and sent == 1:
                    await response.write(b'data: {"Choices":[{"Delta":\n\n')
                last = i == len(deltas) - 1
                # Usage grows with every event: Hunyuan reports the running totals.
                completion = b.completion_tokens if last else max(1, b.completion_tokens * (i + 1) // len(deltas))
                event = {"Note": NOTE, "Id": "mock-id", "Created": int(time.time()),
                         "Choices": [{"Delta": delta,
                                      "FinishReason": ("tool_calls" if b.tool_call else "stop") if last else ""}]}
                if b.usage:
                    event["Usage"] = self._usage(b, completion)
                await response.write(b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\n\n")
                sent += 1
                if b.chunk_delay:
                    await asyncio.sleep(b.chunk_delay)
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.streams_cancelled += 1
            raise
        return response
