"""A local Replicate for tests: predictions created (201), asked after, and streamed, in the shapes of
https://replicate.com/docs/reference/http; problem-detail errors when scripted."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from aiohttp import web

from tests.mock_upstream import Behaviour, Recorded
from tests.providers.vendor_harness import VendorMock

WORDS = ["Hello", " from", " Replicate."]
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\x00" * 40


@dataclass
class ReplicateBehaviour(Behaviour):
    polls: int = 0  # how many times the prediction is still "processing" when asked
    failed: str = ""  # the prediction ends "failed" with this error
    output: list | str | None = field(default_factory=lambda: list(WORDS))
    metrics: dict | None = field(default_factory=lambda: {"input_token_count": 12, "output_token_count": 3})
    stream_error: str = ""  # the stream sends this error event after the first output


class MockReplicate(VendorMock):
    behaviour = ReplicateBehaviour

    def __init__(self) -> None:
        super().__init__()
        self.predictions: dict[str, dict] = {}

    def reset(self) -> None:
        super().reset()
        self.predictions = {}

    def prediction(self, pid: str, status: str) -> dict:
        state = self.predictions[pid]
        b = state["behaviour"]
        body = {"id": pid, "model": state["model"], "status": status, "input": state["input"], "error": None,
                "urls": {"get": f"{self.url}/v1/predictions/{pid}", "cancel": f"{self.url}/v1/predictions/{pid}/cancel",
                         "stream": f"{self.url}/stream/{pid}"}, "output": None, "metrics": {}}
        if status == "succeeded":
            body["output"], body["metrics"] = b.output, b.metrics or {}
        if status == "failed":
            body["error"] = b.failed
        return body

    def status_now(self, pid: str) -> str:
        state = self.predictions[pid]
        b = state["behaviour"]
        if state["asked"] < b.polls:
            state["asked"] += 1
            return "processing"
        return "failed" if b.failed else "succeeded"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/images/cat.png":  # replicate.delivery: a link that needs no key
            return web.Response(body=PNG, content_type="image/png")
        raw, body = await self.read_body(request)
        self.requests.append(Recorded(request.method, request.path, request.query_string, dict(request.headers), body))
        if request.headers.get("Authorization") != "Bearer r8_mock_key_secret":
            return web.json_response({"title": "Unauthenticated", "detail": "You did not pass a valid authentication "
                                      "token", "status": 401}, status=401)
        parts = request.path.strip("/").split("/")
        if request.method == "POST" and parts[:2] == ["v1", "models"] and parts[-1] == "predictions":
            b = self.next_behaviour()
            if b.status != 200:
                return web.json_response({"title": "Error", "detail": f"mock failure {b.status}",
                                          "status": b.status}, status=b.status)
            pid = f"p{len(self.predictions) + 1}"
            self.predictions[pid] = {"behaviour": b, "model": "/".join(parts[2:4]), "input": body["input"],
                                     "asked": 0}
            waited = request.headers.get("Prefer") == "wait" and not b.polls
            return web.json_response(self.prediction(pid, self.status_now(pid) if waited else "starting"),
                                     status=201)
        if request.method == "GET" and parts[:2] == ["v1", "predictions"] and parts[2] in self.predictions:
            return web.json_response(self.prediction(parts[2], self.status_now(parts[2])))
        if request.method == "GET" and parts[0] == "stream" and parts[1] in self.predictions:
            b = self.predictions[parts[1]]["behaviour"]
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            for number, word in enumerate(b.output if isinstance(b.output, list) else [b.output]):
                await response.write(f"event: output\nid: {number}\ndata: {word}\n\n".encode())
                if b.stream_error:
                    await response.write(f"event: error\ndata: {json.dumps({'detail': b.stream_error})}\n\n".encode())
                    break
            await response.write(b"event: done\ndata: {}\n\n")
            await response.write_eof()
            return response
        return web.json_response({"title": "Not found", "detail": "Not found", "status": 404}, status=404)
