"""What the vendor tests share, so each vendor's files keep only what is the vendor's own.

- `call_context`: the RequestContext the relay makes for one upstream call, for adapter unit tests.
- `VendorMock`: the base of the mock vendors (tests/providers/mock_*.py). The server itself is the OpenAI
  mock's (tests/mock_upstream.py: a thread with its own event loop on a free port, every request on
  `_handle`); a vendor names its dataclass of scriptable answers in `behaviour` and writes `_handle`.
- `serve`: a vendor's relay tests start their mock once per module; each test gets its `World` (a user
  with quota, their API key and a channel pointed at the mock) from `tests.world.new_world`.
- Stream and SDK helpers for what the relay sends back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

import orjson
import pytest
from aiohttp import web
from asgiref.sync import sync_to_async

from billing.models import Log
from providers.adapters.base import ChannelInfo, RequestContext
from tests.helpers import events_of, flush
from tests.mock_upstream import Behaviour, MockUpstream

# --- adapter unit tests ------------------------------------------------------------------------------

TEST_CHANNEL = ChannelInfo(id=1, type=1, name="test", key="sk-test", base_url="", models=(), model_mapping={},
                           config={}, system_prompt="", priority=0, weight=0)


def call_context(channel: ChannelInfo | None = None, mode: str = "chat", body: dict | None = None,
                 stream: bool = False, *, model: str | None = None) -> RequestContext:
    """The context the relay makes for one upstream call; `model` alone stands for a body naming it."""
    if body is None:
        body = {"model": model or ""}
    return RequestContext(channel=channel or TEST_CHANNEL, mode=mode, body=body, stream=stream,
                          client_model=model or str(body.get("model") or ""))


# --- mock vendors ------------------------------------------------------------------------------------


class VendorMock(MockUpstream):
    """A mock vendor: requests are recorded in `requests`, and `then(**fields)` scripts the next answer
    as the vendor's `behaviour`; unscripted requests get `default`."""

    behaviour: ClassVar[type] = Behaviour

    def __init__(self) -> None:
        super().__init__()
        self.default = self.behaviour()

    def then(self, **kwargs) -> VendorMock:
        self.script.append(self.behaviour(**kwargs))
        return self

    def reset(self) -> None:
        super().reset()
        self.default = self.behaviour()

    def next_behaviour(self) -> Any:
        return self.script.popleft() if self.script else self.default

    @staticmethod
    async def read_body(request: web.Request) -> tuple[bytes, Any]:
        """The request's bytes, and their JSON (the bytes themselves when they are not JSON)."""
        raw = await request.read()
        try:
            return raw, json.loads(raw) if raw else None
        except ValueError:
            return raw, raw


# --- relay tests -------------------------------------------------------------------------------------


def serve(factory: Callable[[], MockUpstream]):
    """A module-scoped fixture (name it by assigning it): the mock `factory` makes, started once."""

    @pytest.fixture(scope="module")
    def server():
        mock = factory().start()
        yield mock
        mock.stop()

    return server


def stream_chunks(raw: bytes) -> list[dict]:
    """The chunks of a relayed stream, which must end with [DONE]."""
    events = events_of(raw)
    assert events[-1] == b"[DONE]"
    return [orjson.loads(e) for e in events[:-1]]


def text_of(chunks: list[dict]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))


def assert_interrupted(raw: bytes) -> list[bytes]:
    """A stream the upstream broke off: an error event, then [DONE]. Returns the events."""
    events = events_of(raw)
    assert events[-1] == b"[DONE]"
    assert orjson.loads(events[-2])["error"]["code"] == "stream_interrupted"
    return events


async def no_consume_log() -> bool:
    """Whether the request was left unbilled (the ledger flushed first)."""
    await flush()
    return not await sync_to_async(Log.objects.filter(type=Log.Type.CONSUME).exists)()


async def sdk_chat_both_ways(sdk, model: str, messages: list) -> tuple[Any, tuple[str, Any, str | None]]:
    """The same chat through the SDK plain and streamed (usage asked for): the answer, and what the stream brought."""
    answer = await sdk.chat.completions.create(model=model, messages=messages)
    stream = await sdk.chat.completions.create(model=model, messages=messages, stream=True,
                                               stream_options={"include_usage": True})
    return answer, await sdk_stream(stream)


async def sdk_stream(stream) -> tuple[str, Any, str | None]:
    """What an SDK stream brought: its text, its usage (None when not sent) and its last finish reason."""
    text, usage, finish = "", None, None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    return text, usage, finish
