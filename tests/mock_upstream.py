"""A local OpenAI-protocol upstream for tests and benchmarks.

It answers as OpenAI does (bodies and SSE streams in the documented shape),
records every request it gets, and can be scripted to fail: an HTTP error,
a slow answer, a stream cut mid-way, a malformed event, no usage at all,
or any bytes at all (`raw`).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

REPLY = "Hello from the mock upstream."


@dataclass
class Behaviour:
    status: int = 200
    error: dict | None = None  # the JSON body of an error answer
    reply: str = REPLY
    prompt_tokens: int = 11
    completion_tokens: int = 7
    usage: bool = True  # include usage (non-stream) / the usage chunk (stream, when asked)
    usage_extra: dict | None = None  # more usage fields (prompt_tokens_details, a clone's cache counts...)
    done: bool = True  # end a stream with [DONE]
    delay: float = 0.0  # before answering
    chunk_delay: float = 0.0  # between stream chunks
    cut_after: int | None = None  # close the connection after this many chunks
    malformed: bool = False  # send one event that is not JSON
    chunks: int | None = None  # split the reply into this many chunks (default: per word)
    raw: bytes | None = None  # answer these bytes as they are, with `status` and `content_type`, whatever was asked
    content_type: str = "application/json"


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


class MockUpstream:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.script: deque[Behaviour] = deque()
        self.default = Behaviour()
        self.port = 0
        self.streams_cancelled = 0
        self.refused_keys: set[str] = set()  # keys answered 401 invalid_api_key, as OpenAI refuses a revoked key
        self.failing_keys: set[str] = set()  # keys answered 503, as an overloaded account behind one key is
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._record = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def then(self, **kwargs) -> MockUpstream:
        """Script the next answer; unscripted requests get the default behaviour."""
        self.script.append(Behaviour(**kwargs))
        return self

    def reset(self) -> None:
        self.requests.clear()
        self.script.clear()
        self.default = Behaviour()
        self.streams_cancelled = 0
        self.refused_keys = set()
        self.failing_keys = set()

    # --- server -------------------------------------------------------------

    def start(self, *, record: bool = True) -> MockUpstream:
        self._record = record
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True, name="mock-upstream")
        self._thread.start()
        ready.wait(10)
        return self

    def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024)
        self._loop.run_until_complete(site.start())
        ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        if self._loop and self._runner:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)

    # --- answers ------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.content_type == "multipart/form-data":
            return await self._transcribe(request)
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        if self._record:
            self.requests.append(Recorded(request.method, request.path, request.query_string,
                                          dict(request.headers), body))
        if request.method == "GET":
            return self._account(request)
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if key in self.failing_keys:
            return web.json_response({"error": {"message": "The server is overloaded.", "type": "server_error",
                                                "param": None, "code": None}}, status=503)
        if key in self.refused_keys:
            return web.json_response({"error": {
                "message": f"Incorrect API key provided: {key[:3]}***{key[-4:]}. You can find your API key at "
                           "https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}, status=401)
        behaviour = self.script.popleft() if self.script else self.default
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        if behaviour.raw is not None:
            return web.Response(body=behaviour.raw, status=behaviour.status,
                                headers={"Content-Type": behaviour.content_type})
        if behaviour.status != 200:
            error = behaviour.error or {"error": {"message": f"mock failure {behaviour.status}",
                                                  "type": "server_error", "param": None, "code": None}}
            return web.json_response(error, status=behaviour.status)
        body = body if isinstance(body, dict) else {}
        model = body.get("model", "unknown")
        if request.path.endswith("/embeddings"):
            return web.json_response(self._embeddings(body, behaviour))
        if request.path.endswith("/images/generations"):
            return web.json_response({"created": int(time.time()), "data": [
                {"url": f"https://images.example/{i}.png", "revised_prompt": body.get("prompt")}
                for i in range(body.get("n", 1))]})
        if request.path.endswith("/audio/speech"):
            return await self._speech(request, body)
        if request.path.endswith("/moderations"):
            return web.json_response({"id": "modr-mock", "model": model, "results": [
                {"flagged": False, "categories": {"violence": False}, "category_scores": {"violence": 0.01}}]})
        if request.path.endswith("/rerank"):
            docs = body.get("documents", [])
            answer = {"id": "rerank-mock", "results": [
                {"index": i, "relevance_score": round(1 - i / (len(docs) + 1), 3)} for i in range(len(docs))]}
            if behaviour.usage:
                answer["usage"] = {"total_tokens": behaviour.prompt_tokens}
            return web.json_response(answer)
        if body.get("stream"):
            return await self._stream(request, body, behaviour)
        if request.path.endswith("/completions") and "chat" not in request.path:
            return web.json_response(self._completion(model, behaviour))
        return web.json_response(self._chat(model, behaviour))

    # Account endpoints, for balance queries: OpenAI's billing pair, DeepSeek's, SiliconFlow's, OpenRouter's.
    ACCOUNT = {
        "/v1/dashboard/billing/subscription": {"object": "billing_subscription", "hard_limit_usd": 100.0},
        "/v1/dashboard/billing/usage": {"object": "list", "total_usage": 1234.0},
        "/user/balance": {"is_available": True, "balance_infos": [
            {"currency": "CNY", "total_balance": "110.50", "granted_balance": "10.00", "topped_up_balance": "100.50"}]},
        "/v1/user/info": {"code": 20000, "status": True, "data": {"balance": "0.88", "totalBalance": "88.88"}},
        "/api/v1/credits": {"data": {"total_credits": 50.0, "total_usage": 12.5}},
    }

    def _account(self, request: web.Request) -> web.Response:
        payload = self.ACCOUNT.get(request.path)
        if payload is None:
            return web.json_response({"error": {"message": "not found", "type": "invalid_request_error"}},
                                     status=404)
        return web.json_response(payload)

    AUDIO = b"ID3" + bytes(range(256)) * 64  # stands in for an MP3

    async def _speech(self, request: web.Request, body: dict) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "audio/mpeg"})
        await response.prepare(request)
        for start in range(0, len(self.AUDIO), 4096):
            await response.write(self.AUDIO[start:start + 4096])
        await response.write_eof()
        return response

    async def _transcribe(self, request: web.Request) -> web.Response:
        """Reads the multipart form as OpenAI would; records the fields and the file's size."""
        fields: dict = {}
        reader = await request.multipart()
        async for part in reader:
            if part.filename:
                size = 0
                while chunk := await part.read_chunk(65536):
                    size += len(chunk)
                fields[part.name] = {"filename": part.filename, "size": size}
            else:
                fields[part.name] = (await part.read()).decode()
        if self._record:
            self.requests.append(Recorded(request.method, request.path, request.query_string,
                                          dict(request.headers), fields))
        behaviour = self.script.popleft() if self.script else self.default
        if behaviour.status != 200:
            return web.json_response(behaviour.error or {"error": {"message": "mock failure"}},
                                     status=behaviour.status)
        if fields.get("response_format") == "text":
            return web.Response(text=behaviour.reply + "\n", content_type="text/plain")
        answer = {"text": behaviour.reply}
        if fields.get("model", "").startswith("gpt-4o") and behaviour.usage:
            answer["usage"] = {"type": "tokens", "input_tokens": behaviour.prompt_tokens,
                               "output_tokens": behaviour.completion_tokens,
                               "total_tokens": behaviour.prompt_tokens + behaviour.completion_tokens}
        return web.json_response(answer)

    def _usage(self, b: Behaviour) -> dict:
        return {"prompt_tokens": b.prompt_tokens, "completion_tokens": b.completion_tokens,
                "total_tokens": b.prompt_tokens + b.completion_tokens, **(b.usage_extra or {})}

    def _chat(self, model: str, b: Behaviour) -> dict:
        answer = {
            "id": "chatcmpl-mock", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": b.reply}, "logprobs": None,
                         "finish_reason": "stop"}],
            "system_fingerprint": "fp_mock",
        }
        if b.usage:
            answer["usage"] = self._usage(b)
        return answer

    def _completion(self, model: str, b: Behaviour) -> dict:
        answer = {"id": "cmpl-mock", "object": "text_completion", "created": int(time.time()), "model": model,
                  "choices": [{"text": b.reply, "index": 0, "logprobs": None, "finish_reason": "stop"}]}
        if b.usage:
            answer["usage"] = self._usage(b)
        return answer

    def _embeddings(self, body: dict, b: Behaviour) -> dict:
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int) else [inputs]
        answer = {"object": "list", "model": body.get("model"),
                  "data": [{"object": "embedding", "index": i, "embedding": [0.1, -0.2, 0.3]}
                           for i in range(len(items))]}
        if b.usage:
            answer["usage"] = {"prompt_tokens": b.prompt_tokens, "total_tokens": b.prompt_tokens}
        return answer

    def _pieces(self, b: Behaviour) -> list[str]:
        if b.chunks:
            size = max(1, len(b.reply) // b.chunks)
            return [b.reply[i:i + size] for i in range(0, len(b.reply), size)]
        words = b.reply.split(" ")
        return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]

    async def _stream(self, request: web.Request, body: dict, b: Behaviour) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        model = body.get("model", "unknown")
        chat = "chat" in request.path
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {"id": "chatcmpl-mock", "object": "chat.completion.chunk" if chat else "text_completion",
                "created": int(time.time()), "model": model, "system_fingerprint": "fp_mock"}

        def event(payload: dict) -> bytes:
            return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"

        sent = 0
        try:
            if chat:
                await response.write(event({**base, "choices": [
                    {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                     "finish_reason": None}]}))
            for piece in self._pieces(b):
                if b.cut_after is not None and sent >= b.cut_after:
                    request.transport.close()
                    return response
                if b.malformed and sent == 1:
                    await response.write(b"data: {not json\n\n")
                choice = ({"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}
                          if chat else {"index": 0, "text": piece, "logprobs": None, "finish_reason": None})
                await response.write(event({**base, "choices": [choice]}))
                sent += 1
                if b.chunk_delay:
                    await asyncio.sleep(b.chunk_delay)
            last = ({"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"} if chat
                    else {"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"})
            await response.write(event({**base, "choices": [last]}))
            if include_usage and b.usage:
                await response.write(event({**base, "choices": [], "usage": self._usage(b)}))
            if b.done:
                await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.streams_cancelled += 1
            raise
        return response
