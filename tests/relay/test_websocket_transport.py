"""Vendors that answer over a WebSocket (Xunfei Spark): the adapter runs the exchange, the relay the rest."""

import asyncio
import json
import socket
import threading

import orjson
import pytest
from aiohttp import web
from asgiref.sync import sync_to_async

from providers import adapters
from providers.adapters.base import Adapter, EventAnswer, StreamEvent, UpstreamError, Usage
from tests.factories import ChannelFactory
from tests.helpers import consume_log, events_of

pytestmark = pytest.mark.django_db(transaction=True)


class WordServer:
    """Answers each WebSocket message with its words one frame at a time, then the counts; or an error."""

    def __init__(self):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        ready.wait(5)

    def _serve(self, ready):
        loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_get("/chat", self._chat)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        ready.set()
        loop.run_forever()

    async def _chat(self, request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        question = json.loads((await ws.receive()).data)
        if question["text"] == "fail":
            await ws.send_json({"error": "bad app id"})
        else:
            for word in ["one", " two", " three"]:
                await ws.send_json({"text": word})
            await ws.send_json({"done": True, "prompt_tokens": 4, "completion_tokens": 3})
        await ws.close()
        return ws


class WordAdapter(Adapter):
    channel_type = 993
    label = "WebSocket test vendor"
    stream_only = True
    modes = ("chat",)

    async def open(self, ctx, *, session):
        return EventAnswer(ctx, self.words(ctx, session))

    async def words(self, ctx, session):
        body = ctx.body
        async with session.ws_connect(ctx.channel.base_url.replace("http", "ws") + "/chat") as ws:
            await ws.send_json({"text": body["messages"][-1]["content"]})
            async for message in ws:
                data = json.loads(message.data)
                if "error" in data:
                    raise UpstreamError(status=401, message=data["error"], type="authentication_error")
                if data.get("done"):
                    usage = Usage(data["prompt_tokens"], data["completion_tokens"])
                    chunk = {"id": "x", "object": "chat.completion.chunk", "model": body["model"], "choices": [],
                             "usage": {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}}
                    yield StreamEvent(data=orjson.dumps(chunk), usage=usage, usage_only=True)
                    return
                chunk = {"id": "x", "object": "chat.completion.chunk", "model": body["model"],
                         "choices": [{"index": 0, "delta": {"content": data["text"]}, "finish_reason": None}]}
                yield StreamEvent(data=orjson.dumps(chunk), text=data["text"])


@pytest.fixture
def ws_world(world, monkeypatch):
    monkeypatch.setitem(adapters.ADAPTERS, 993, WordAdapter)
    monkeypatch.setitem(adapters._instances, 993, WordAdapter())
    server = WordServer()
    ChannelFactory(type=993, base_url=f"http://127.0.0.1:{server.port}", models="spark-test")
    return world


BODY = {"model": "spark-test", "messages": [{"role": "user", "content": "count"}]}


async def test_streamed_client_gets_the_words_as_they_come(relay_client, ws_world):
    response = await relay_client.post("/v1/chat/completions", json={**BODY, "stream": True}, headers=ws_world.auth)
    assert response.status_code == 200
    events = events_of(response.content)
    assert events[-1] == b"[DONE]"
    text = "".join(orjson.loads(e)["choices"][0]["delta"]["content"] for e in events[:-1])
    assert text == "one two three"
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (4, 3)


async def test_non_streaming_client_gets_one_answer(relay_client, ws_world):
    response = await relay_client.post("/v1/chat/completions", json=BODY, headers=ws_world.auth)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "one two three"
    assert response.json()["usage"]["total_tokens"] == 7


async def test_a_refusal_before_any_answer_is_a_real_error(relay_client, ws_world):
    body = {**BODY, "stream": True, "messages": [{"role": "user", "content": "fail"}]}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=ws_world.auth)
    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith("bad app id")
    from billing.models import Log
    from tests.helpers import flush

    await flush()
    assert not await sync_to_async(Log.objects.filter(type=Log.Type.CONSUME).exists)()
