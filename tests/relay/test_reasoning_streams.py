"""A reasoning model's stream starts for the client with its thinking, not with its first word.

The relay holds a stream's headers until the answer begins, so that a vendor failing before any can
still fail over. Thinking is the answer beginning: a model may think for minutes, and a client or proxy
that waits that long for the headers cuts the request. Each case is one adapter family, in its vendor's
wire shape, served by an upstream that holds the words back until the test has seen the thinking.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field

import orjson
import pytest
from aiohttp import web
from asgiref.testing import ApplicationCommunicator

from providers.adapters import adapter_for
from providers.adapters.base import ChannelInfo
from relay import http
from relay.streaming import Frames
from tests.mock_upstream import MockUpstream, Recorded
from tests.providers.mock_bedrock import frame_of
from tests.providers.vendor_harness import call_context, serve
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

THOUGHT = "Let me think this over"
WORDS = "The answer is 42"
WAIT = 10  # seconds to wait for what the relay must send; it only runs out when the relay holds it back


class HeldUpstream(MockUpstream):
    """Any POST is answered with `thinking` at once, then nothing until `release()`, then `words`."""

    def __init__(self) -> None:
        super().__init__()
        self.arm(content_type="text/event-stream", thinking=[], words=[])

    def arm(self, *, content_type: str, thinking: list[bytes], words: list[bytes]) -> None:
        self.content_type, self.thinking, self.words = content_type, thinking, words
        self.released = threading.Event()

    def release(self) -> None:
        self.released.set()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.requests.append(Recorded(request.method, request.path, request.query_string, dict(request.headers),
                                      json.loads(raw) if raw else None))
        response = web.StreamResponse(headers={"Content-Type": self.content_type})
        await response.prepare(request)
        for piece in self.thinking:
            await response.write(piece)
        await asyncio.to_thread(self.released.wait, 60)
        for piece in self.words:
            await response.write(piece)
        await response.write_eof()
        return response


def sse(*payloads: dict, event: str = "") -> list[bytes]:
    head = f"event: {event}\n".encode() if event else b""
    return [head + b"data: " + orjson.dumps(p) + b"\n\n" for p in payloads]


def typed(*payloads: dict) -> list[bytes]:
    """Events named by their `type` (Anthropic, Cohere)."""
    return [b for p in payloads for b in sse(p, event=p["type"])]


def openai_chunk(delta: dict, finish: str | None = None) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def openai_case(type_id: int, model: str, field_name: str, *, key: str = "sk-upstream-key-0123") -> dict:
    return dict(type_id=type_id, model=model, key=key,
                thinking=sse(openai_chunk({"role": "assistant", "content": None, field_name: THOUGHT}),
                             openai_chunk({"content": None, field_name: " carefully."})),
                words=sse(openai_chunk({"content": WORDS}, "stop")) + [b"data: [DONE]\n\n"])


def dashscope(message: dict, finish: str = "null") -> dict:
    return {"output": {"choices": [{"message": {"role": "assistant", **message}, "finish_reason": finish}]},
            "request_id": "req-1"}


def gemini(part: dict, finish: str | None = None) -> dict:
    candidate = {"content": {"parts": [part], "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}}


def ollama(message: dict, done: bool = False) -> bytes:
    line = {"model": "qwen3", "created_at": "2025-01-01T00:00:00Z", "message": {"role": "assistant", **message},
            "done": done}
    if done:
        line.update(done_reason="stop", prompt_eval_count=5, eval_count=9)
    return orjson.dumps(line) + b"\n"


def converse(name: str, payload: dict) -> bytes:
    return frame_of({"headers": {":event-type": name, ":content-type": "application/json",
                                 ":message-type": "event"}, "payload": payload})


def hunyuan(delta: dict, finish: str = "") -> dict:
    return {"Choices": [{"Delta": {"Role": "assistant", **delta}, "FinishReason": finish}], "Created": 1,
            "Id": "hy-1"}


@dataclass
class Case:
    type_id: int
    model: str
    thinking: list[bytes]
    words: list[bytes]
    key: str = "sk-upstream-key-0123"
    config: dict = field(default_factory=dict)
    content_type: str = "text/event-stream"


ANTHROPIC_START = {"type": "message_start", "message": {"id": "msg_1", "model": "claude-sonnet-4-5",
                                                        "usage": {"input_tokens": 5, "output_tokens": 1}}}
CASES = {
    "openai-reasoning_content": Case(**openai_case(1, "o-reasoner", "reasoning_content")),
    "deepseek-reasoning_content": Case(**openai_case(36, "deepseek-reasoner", "reasoning_content")),
    "openrouter-reasoning": Case(**openai_case(20, "deepseek/deepseek-r1", "reasoning")),
    "zhipu-reasoning_content": Case(**openai_case(16, "glm-4.5", "reasoning_content", key="zkeyid.zsecretvalue")),
    "spark-http-reasoning_content": Case(**openai_case(48, "x1", "reasoning_content")),
    "dashscope-reasoning_content": Case(
        type_id=17, model="qwen3-235b-a22b",
        thinking=sse(dashscope({"content": "", "reasoning_content": THOUGHT}), event="result"),
        words=sse(dashscope({"content": WORDS}, "stop") | {"usage": {"input_tokens": 5, "output_tokens": 9}},
                  event="result")),
    "gemini-thought": Case(
        type_id=24, model="gemini-2.5-pro",
        thinking=sse(gemini({"text": THOUGHT, "thought": True})),
        words=sse(gemini({"text": WORDS}, "STOP"))),
    "ollama-thinking": Case(
        type_id=30, model="qwen3", content_type="application/x-ndjson",
        thinking=[ollama({"content": "", "thinking": THOUGHT})],
        words=[ollama({"content": WORDS}), ollama({"content": ""}, done=True)]),
    "anthropic-thinking_delta": Case(
        type_id=14, model="claude-sonnet-4-5",
        thinking=typed(ANTHROPIC_START,
                       {"type": "content_block_start", "index": 0,
                        "content_block": {"type": "thinking", "thinking": ""}},
                       {"type": "content_block_delta", "index": 0,
                        "delta": {"type": "thinking_delta", "thinking": THOUGHT}}),
        words=typed({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": WORDS}},
                    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}},
                    {"type": "message_stop"})),
    "bedrock-converse-reasoningContent": Case(
        type_id=33, model="amazon.nova-premier-v1:0", content_type="application/vnd.amazon.eventstream",
        key="AKIAEXAMPLEKEY000000|secretsecretsecret|us-east-1",
        thinking=[converse("messageStart", {"role": "assistant"}),
                  converse("contentBlockDelta", {"contentBlockIndex": 0,
                                                 "delta": {"reasoningContent": {"text": THOUGHT}}})],
        words=[converse("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": WORDS}}),
               converse("messageStop", {"stopReason": "end_turn"}),
               converse("metadata", {"usage": {"inputTokens": 5, "outputTokens": 9, "totalTokens": 14}})]),
    "cohere-thinking": Case(
        type_id=35, model="command-a-reasoning-08-2025",
        thinking=typed({"type": "message-start", "id": "c-1", "delta": {"message": {"role": "assistant"}}},
                       {"type": "content-delta", "index": 0,
                        "delta": {"message": {"content": {"thinking": THOUGHT}}}}),
        words=typed({"type": "content-delta", "index": 1, "delta": {"message": {"content": {"text": WORDS}}}},
                    {"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": {
                        "tokens": {"input_tokens": 5, "output_tokens": 9}}}})),
    "hunyuan-ReasoningContent": Case(
        type_id=23, model="hunyuan-t1", key="1300000000|AKIDtencentsecretid|tencentsecretkey0123",
        config={"region": "ap-guangzhou"},
        thinking=sse(hunyuan({"ReasoningContent": THOUGHT})),
        words=sse(hunyuan({"Content": WORDS}, "stop") | {"Usage": {"PromptTokens": 5, "CompletionTokens": 9,
                                                                   "TotalTokens": 14}})),
}

held_server = serve(HeldUpstream)


@pytest.fixture
def thinker(transactional_db, held_server, case):
    w = new_world(held_server, username="thinker", type=case.type_id, name="reasoner", key=case.key, models=case.model,
                  config=case.config)
    held_server.arm(content_type=case.content_type, thinking=case.thinking, words=case.words)
    yield w
    held_server.release()


@pytest.fixture
async def relay_session():
    """The relay's upstream session of this test's loop, closed when it ends."""
    yield
    await http.close()


def scope(token_key: str) -> dict:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
        "headers": [(b"authorization", f"Bearer sk-{token_key}".encode()), (b"content-type", b"application/json")],
    }


@pytest.mark.parametrize("case", [pytest.param(case, id=name) for name, case in CASES.items()])
async def test_a_thinking_model_starts_the_clients_stream_before_its_first_word(asgi_app, relay_session, thinker, case):
    body = {"model": case.model, "stream": True, "messages": [{"role": "user", "content": "What is the answer?"}]}
    app = ApplicationCommunicator(asgi_app, scope(thinker.token.key))
    await app.send_input({"type": "http.request", "body": orjson.dumps(body), "more_body": False})

    # The upstream sends nothing but thinking until it is released: all of this must arrive before.
    start = await app.receive_output(WAIT)
    assert (start["type"], start["status"]) == ("http.response.start", 200)
    assert (b"content-type", b"text/event-stream") in start["headers"]
    received = b""
    while THOUGHT.encode() not in received:
        message = await app.receive_output(WAIT)
        assert message["more_body"], received
        received += message["body"]
    assert WORDS.encode() not in received

    thinker.upstream.release()
    while True:
        message = await app.receive_output(WAIT)
        received += message.get("body", b"")
        if not message.get("more_body"):
            break
    assert WORDS.encode() in received and received.endswith(b"data: [DONE]\n\n")


@pytest.mark.parametrize("case", [pytest.param(case, id=name) for name, case in CASES.items()])
def test_each_decoder_marks_thinking_as_the_start_of_the_answer(case):
    channel = ChannelInfo(id=1, type=case.type_id, name="reasoner", key=case.key, base_url="", models=(),
                          model_mapping={}, config=case.config, system_prompt="", priority=0, weight=0)
    ctx = call_context(channel, "chat", {"model": case.model, "messages": []}, stream=True)
    frames = Frames(adapter_for(case.type_id).stream_decoder(ctx))
    events = [event for piece in case.thinking for event in frames.feed(piece)]
    assert any(event.reasoning for event in events), events
    assert not any(event.reasoning for event in frames.feed(b"".join(case.words)))
