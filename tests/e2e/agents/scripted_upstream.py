"""Mock vendors whose answers follow the conversation, for agents that call a tool and come back with its result.

A test gives the mock a `policy`: what the model does next given what the request holds (the user's text and
the tool results so far). `ScriptedOpenAI` speaks chat completions, `ScriptedAnthropic` Messages and
`ScriptedGemini` Gemini's generateContent, each plain or streamed as asked, with the turn's usage, so the gateway's
consume logs can be checked against them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.mock_upstream import Recorded
from tests.providers.vendor_harness import VendorMock


@dataclass(frozen=True)
class Turn:
    """What the model answers: text, or a call of `tool` with `arguments`; and the usage it reports."""

    text: str = ""
    tool: str | None = None
    arguments: dict = field(default_factory=dict)
    usage: tuple[int, int] = (40, 10)


@dataclass
class Seen:
    """What a request holds that a policy decides on."""

    user_text: str  # every user text of the conversation, joined
    tool_results: list[str]  # the text of every tool result so far


Policy = Callable[[Seen], Turn]


def tool_then_answer(marker: str, tool: str, arguments: dict, final: str, reply: str) -> Policy:
    """Call `tool` once when the user's text holds `marker`, answer `final` once a tool result is back;
    `reply` to anything else (an agent's side requests included)."""

    def policy(seen: Seen) -> Turn:
        if seen.tool_results:
            return Turn(text=final, usage=(60, 12))
        if marker in seen.user_text:
            return Turn(tool=tool, arguments=arguments, usage=(50, 20))
        return Turn(text=reply)

    return policy


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"]
    return []


def _events(events: list[bytes], *, cut: bool = False) -> Callable[[web.Request], Any]:
    """A stream of `events`; `cut` drops the connection after the first two (the answer has begun: the gateway
    has sent its headers and first event on), as a vendor's broken stream does."""

    async def write(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        for event in events[:2] if cut else events:
            await response.write(event)
        if cut:
            request.transport.close()
            return response
        await response.write_eof()
        return response

    return write


def _data(payload: dict, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


class Scripted(VendorMock):
    path = ""

    def __init__(self) -> None:
        super().__init__()
        self.policy: Policy = lambda seen: Turn(text="(no policy)")
        self.turns: list[Turn] = []  # what was answered, in order, for checking the logs against
        self.cut_streams = 0  # how many of the next streamed answers break off once begun

    def reset(self) -> None:
        super().reset()
        self.turns.clear()
        self.cut_streams = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        _, body = await self.read_body(request)
        self.requests.append(Recorded(request.method, request.path, request.query_string, dict(request.headers),
                                      body))
        if request.method != "POST" or request.path != self.path or not isinstance(body, dict):
            return web.json_response({"error": {"message": f"not served: {request.method} {request.path}"}},
                                     status=404)
        turn = self.policy(self.seen(body))
        self.turns.append(turn)
        if body.get("stream"):
            cut, self.cut_streams = self.cut_streams > 0, max(0, self.cut_streams - 1)
            return await _events(self.stream(body, turn), cut=cut)(request)
        return web.json_response(self.answer(body, turn))

    def seen(self, body: dict) -> Seen:
        raise NotImplementedError

    def answer(self, body: dict, turn: Turn) -> dict:
        raise NotImplementedError

    def stream(self, body: dict, turn: Turn) -> list[bytes]:
        raise NotImplementedError


class ScriptedOpenAI(Scripted):
    path = "/v1/chat/completions"

    def seen(self, body: dict) -> Seen:
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        users = [m.get("content") for m in messages if m.get("role") == "user"]
        return Seen(user_text="\n".join(t for content in users for t in _texts(content)),
                    tool_results=["\n".join(_texts(m.get("content"))) for m in messages if m.get("role") == "tool"])

    @staticmethod
    def _usage(turn: Turn) -> dict:
        prompt, completion = turn.usage
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    @staticmethod
    def _call(turn: Turn) -> dict:
        return {"id": "call_scripted", "type": "function",
                "function": {"name": turn.tool, "arguments": json.dumps(turn.arguments)}}

    def answer(self, body: dict, turn: Turn) -> dict:
        message = {"role": "assistant", "content": turn.text or None}
        if turn.tool:
            message["tool_calls"] = [self._call(turn)]
        return {"id": "chatcmpl-scripted", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model"), "choices": [{"index": 0, "message": message, "logprobs": None,
                                                         "finish_reason": "tool_calls" if turn.tool else "stop"}],
                "usage": self._usage(turn)}

    def stream(self, body: dict, turn: Turn) -> list[bytes]:
        base = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": body.get("model")}

        def chunk(delta: dict, finish: str | None = None) -> bytes:
            return _data({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                               "finish_reason": finish}]})

        frames = [chunk({"role": "assistant", "content": ""})]
        if turn.tool:
            frames.append(chunk({"tool_calls": [{"index": 0, **self._call(turn)}]}))
        else:
            frames.append(chunk({"content": turn.text}))
        frames.append(chunk({}, "tool_calls" if turn.tool else "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            frames.append(_data({**base, "choices": [], "usage": self._usage(turn)}))
        return [*frames, b"data: [DONE]\n\n"]


class ScriptedAnthropic(Scripted):
    path = "/v1/messages"

    def seen(self, body: dict) -> Seen:
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        users = [m.get("content") for m in messages if m.get("role") == "user"]
        blocks = [b for content in users if isinstance(content, list) for b in content if isinstance(b, dict)]
        results = [b for b in blocks if b.get("type") == "tool_result"]
        return Seen(user_text="\n".join(t for content in users for t in _texts(content)),
                    tool_results=["\n".join(_texts(b.get("content"))) for b in results])

    def _block(self, turn: Turn) -> dict:
        if turn.tool:
            return {"type": "tool_use", "id": "toolu_scripted", "name": turn.tool, "input": turn.arguments}
        return {"type": "text", "text": turn.text}

    def answer(self, body: dict, turn: Turn) -> dict:
        prompt, completion = turn.usage
        return {"id": "msg_scripted", "type": "message", "role": "assistant", "model": body.get("model"),
                "content": [self._block(turn)], "stop_reason": "tool_use" if turn.tool else "end_turn",
                "stop_sequence": None, "usage": {"input_tokens": prompt, "output_tokens": completion}}

    def stream(self, body: dict, turn: Turn) -> list[bytes]:
        prompt, completion = turn.usage
        message = {**self.answer(body, turn), "content": [], "stop_reason": None,
                   "usage": {"input_tokens": prompt, "output_tokens": 1}}
        block = self._block(turn)
        if turn.tool:
            start = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        else:
            start, delta = {"type": "text", "text": ""}, {"type": "text_delta", "text": turn.text}
        events = [("message_start", {"message": message}),
                  ("content_block_start", {"index": 0, "content_block": start}),
                  ("content_block_delta", {"index": 0, "delta": delta}),
                  ("content_block_stop", {"index": 0}),
                  ("message_delta", {"delta": {"stop_reason": "tool_use" if turn.tool else "end_turn",
                                               "stop_sequence": None}, "usage": {"output_tokens": completion}}),
                  ("message_stop", {})]
        return [_data({"type": kind, **fields}, kind) for kind, fields in events]


class ScriptedGemini(Scripted):
    """Gemini's API: the model and the method are in the path, so a stream is asked for by the path
    (streamGenerateContent?alt=sse), not the body."""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        _, body = await self.read_body(request)
        self.requests.append(Recorded(request.method, request.path, request.query_string, dict(request.headers),
                                      body))
        method = request.path.rpartition(":")[2]
        if request.method != "POST" or method not in ("generateContent", "streamGenerateContent") \
                or not isinstance(body, dict):
            return web.json_response({"error": {"code": 404, "message": f"not served: {request.path}",
                                                "status": "NOT_FOUND"}}, status=404)
        turn = self.policy(self.seen(body))
        self.turns.append(turn)
        if method == "streamGenerateContent":
            return await _events(self.stream(body, turn))(request)
        return web.json_response(self.answer(body, turn))

    def seen(self, body: dict) -> Seen:
        parts = [part for content in body.get("contents") or [] if isinstance(content, dict)
                 and content.get("role") == "user" for part in content.get("parts") or [] if isinstance(part, dict)]
        return Seen(user_text="\n".join(str(part["text"]) for part in parts if "text" in part),
                    tool_results=[json.dumps(part["functionResponse"].get("response"))
                                  for part in parts if isinstance(part.get("functionResponse"), dict)])

    def answer(self, body: dict, turn: Turn) -> dict:
        prompt, completion = turn.usage
        part = {"functionCall": {"id": "fc-scripted", "name": turn.tool, "args": turn.arguments}} if turn.tool \
            else {"text": turn.text}
        return {"candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": completion,
                                  "totalTokenCount": prompt + completion},
                "modelVersion": "gemini-2.5-flash", "responseId": "scripted"}

    def stream(self, body: dict, turn: Turn) -> list[bytes]:
        return [_data(self.answer(body, turn))]
