"""A codec's translator reads the relay's stream in three forms (whole `data:` events per write, bytes cut
anywhere, and the relay's own events with the chunks the decoder parsed): each must give the client the same
bytes, since the faster forms skip the line-by-line parser or the JSON parse."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from providers.adapters.openai import parse_chunk
from relay.codecs import ANTHROPIC, GEMINI, RESPONSES
from relay.codecs.base import Translator
from relay.codecs.gemini import route
from relay.streaming import DONE

REQUESTS = {
    "anthropic": (ANTHROPIC, {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "x"}],
                              "stream": True}),
    "responses": (RESPONSES, {"model": "m", "input": "x", "stream": True,
                              "tools": [{"type": "function", "name": "f", "parameters": {}}]}),
    "gemini": (GEMINI.bind(route("/v1beta/models/m:streamGenerateContent", b"alt=sse")),
               {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}),
}


def chunk(delta: dict, finish: str | None = None) -> bytes:
    return orjson.dumps({"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


# What the relay writes for a stream: its own `data:` events, one per chunk, ending with [DONE].
CHUNKS = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"reasoning_content": "let me see"}),
    chunk({"content": 'He said "hi"\n\nthen: data: left'}),
    chunk({"content": " é ✓"}),
    b"{not json",
    chunk({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": '{"a"'}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
    chunk({}, "tool_calls"),
    orjson.dumps({"id": "c", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 5,
                                                      "total_tokens": 12}}),
]
EVENTS = [b"data: " + data + b"\n\n" for data in CHUNKS]


class Capture:
    started = False
    finished = False

    def __init__(self):
        self.parts: list[bytes] = []

    async def start(self, status, headers):
        self.started = True

    async def write(self, data):
        self.parts.append(data)

    async def finish(self, data=b""):
        self.finished = True
        self.parts.append(data)


async def translate(name: str, feed) -> bytes:
    codec, request = REQUESTS[name]
    out = Capture()
    translator = Translator(out, codec, model="m", request_id="rid")
    translator.request, translator.stream = request, True
    await translator.start(200, [(b"content-type", b"text/event-stream")])
    await feed(translator)
    return b"".join(out.parts)


async def whole_events(translator):
    for event in EVENTS:
        await translator.write(event)
    await translator.finish(DONE)


async def cut_anywhere(translator):
    stream = b"".join(EVENTS) + DONE
    for start in range(0, len(stream) - 7, 7):
        await translator.write(stream[start:start + 7])
    await translator.finish(stream[start + 7:])


async def parsed_events(translator):
    events = [parse_chunk(data) for data in CHUNKS]
    assert events[2].chunk is not None  # the decoder's parse is what the translator reads
    await translator.write_events(events[:4])
    await translator.finish_events(events[4:])


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    monkeypatch.setattr("relay.codecs.responses.time.time", lambda: 1_700_000_000.0)


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_the_client_gets_the_same_stream_however_the_relay_writes_it(name):
    expected = asyncio.run(translate(name, cut_anywhere))
    assert b"let me see" in expected and b"call_1" in expected  # the stream was read, not dropped
    assert asyncio.run(translate(name, whole_events)) == expected
    assert asyncio.run(translate(name, parsed_events)) == expected


def test_an_event_of_several_data_lines_is_read_whole():
    """Two `data:` lines make one event (their data joined by a line break): not two broken ones."""
    async def feed(translator):
        await translator.write(b'data: {"choices": [{"index": 0,\ndata: "delta": {"content": "joined"}}]}\n\n')
        await translator.finish(DONE)

    assert b'"joined"' in asyncio.run(translate("responses", feed))
