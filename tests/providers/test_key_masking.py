"""An upstream that echoes the channel's key: the key never reaches a client, a log, a channel-test result
or an auto-disable mail, whatever path the echo takes."""

import asyncio
import logging

import orjson
import pytest
from aiohttp import web
from asgiref.sync import sync_to_async
from django.core import mail

from accounts.models import User
from billing.models import Log
from billing.services import option_set
from providers.models import Channel
from relay.probe import channel_test
from tests.factories import ChannelFactory, UserFactory
from tests.helpers import events_of
from tests.mock_upstream import MockUpstream
from tests.providers.vendor_harness import serve
from tests.world import new_world

KEY = "sk-proj-9fQ2xL7vR4mK8tW1zB6nYc3D"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
# How vendors echo a key: whole (proxies), OpenAI's first and last characters, a run of it.
ECHOES = {
    "whole": lambda key: key,
    "openai": lambda key: f"{key[:8]}{'*' * 20}{key[-4:]}",
    "run": lambda key: key[6:20],
}


class KeyEcho(MockUpstream):
    """Answers every request (any method, any path) with a 401 whose message echoes the key it was sent,
    in the form `echo` names; with `html`, a 502 HTML page instead."""

    echo = "whole"
    html = False

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.html:
            page = f"<html><body><h1>Bad gateway</h1><script>var k='{key}';</script>{'<p>x</p>' * 400}</body></html>"
            return web.Response(text=page, status=502, content_type="text/html")
        message = f"Incorrect API key provided: {ECHOES[self.echo](key)}. You can find your API key at " \
                  "https://platform.openai.com/account/api-keys."
        return web.json_response({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                            "code": "invalid_api_key"}}, status=401)

    def reset(self) -> None:
        super().reset()
        self.echo, self.html = "whole", False


echo_server = serve(KeyEcho)


@pytest.fixture
def echoing(echo_server):
    echo_server.reset()
    return echo_server


def _no_key(text: str) -> bool:
    return all(form(KEY) not in text for form in ECHOES.values()) and KEY[-4:] not in text


async def _disabled(channel_id: int) -> bool:
    """Whether the channel is auto-disabled, waiting a moment: the relay writes it off the request path."""
    for _ in range(60):
        if await sync_to_async(Channel.objects.filter(pk=channel_id, status=Channel.Status.AUTO_DISABLED).exists)():
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("echo", list(ECHOES))
async def test_a_key_the_upstream_echoes_is_masked_for_the_client_the_log_and_the_mail(
        relay_client, echoing, echo, caplog):
    await sync_to_async(option_set)(key="AutomaticDisableChannelEnabled", value="true")
    await sync_to_async(UserFactory)(username="boss", role=User.Role.ROOT, email="root@example.com")
    w = await sync_to_async(new_world)(echoing, username="alice", key=KEY, models="gpt-4o-mini")
    echoing.echo = echo
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=w.auth)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["message"].startswith("Incorrect API key provided: ***. ") and _no_key(response.text)
    assert await _disabled(w.channel.pk)
    system = await sync_to_async(Log.objects.get)(type=Log.Type.SYSTEM)
    assert "Incorrect API key provided: ***" in system.content and _no_key(system.content)
    for _ in range(60):  # the mail goes out just after the status change commits
        if mail.outbox:
            break
        await asyncio.sleep(0.05)
    assert mail.outbox and all(_no_key(m.subject + m.body) for m in mail.outbox)
    assert all(_no_key(record.getMessage()) for record in caplog.records)


@pytest.mark.django_db(transaction=True)
async def test_an_error_event_echoing_the_key_mid_stream_reaches_the_client_masked(relay_client, upstream):
    w = await sync_to_async(new_world)(upstream, username="alice", key=KEY, models="gpt-4o-mini")
    chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}
    error = {"error": {"message": f"Key {KEY} ran out of credit mid-answer", "type": "insufficient_quota"}}
    upstream.then(raw=b"data: " + orjson.dumps(chunk) + b"\n\ndata: " + orjson.dumps(error) + b"\n\n",
                  content_type="text/event-stream")
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=w.auth)
    events = events_of(response.content)
    assert orjson.loads(events[0])["choices"][0]["delta"]["content"] == "Hi"
    assert orjson.loads(events[1])["error"]["message"] == "Key *** ran out of credit mid-answer"
    assert _no_key(response.text)


@pytest.mark.django_db(transaction=True)
async def test_an_html_error_page_becomes_a_short_plain_message(relay_client, echoing):
    w = await sync_to_async(new_world)(echoing, username="alice", key=KEY, models="gpt-4o-mini")
    echoing.html = True
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=w.auth)
    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert message.startswith("The upstream answered HTTP 502: Bad gateway")
    assert "<" not in message and "var k" not in message and len(message) < 300 and _no_key(message)


@pytest.mark.django_db(transaction=True)
async def test_a_fault_reading_the_answer_is_logged_once_with_the_key_masked(relay_client, upstream, caplog,
                                                                               monkeypatch):
    from providers.adapters.openai import OpenAIAdapter

    def broken(self, ctx, *, body):
        raise RuntimeError(f"this adapter cannot read answers for {ctx.channel.key}")

    monkeypatch.setattr(OpenAIAdapter, "parse_response", broken)
    w = await sync_to_async(new_world)(upstream, username="alice", key=KEY, models="gpt-4o-mini")
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=w.auth)
    assert response.status_code == 500 and response.json()["error"]["type"] == "one_api_panic"
    faults = [r for r in caplog.records if r.name == "oneapi.relay" and r.levelno >= logging.ERROR]
    assert len(faults) == 1 and "RuntimeError: this adapter cannot read answers for ***" in faults[0].getMessage()
    assert all(_no_key(r.getMessage()) and not r.exc_info for r in caplog.records)


@pytest.mark.django_db
@pytest.mark.parametrize("echo", list(ECHOES))
def test_a_channel_test_reports_the_echo_masked_in_its_result_log_api_answer_and_auto_disable(
        echoing, echo, client, root):
    echoing.echo = echo
    option_set(key="AutomaticDisableChannelEnabled", value="true")
    channel = ChannelFactory(base_url=echoing.url, key=KEY, models="gpt-4o-mini")
    result = channel_test(channel_id=channel.pk)
    assert not result.success and result.message.startswith("Incorrect API key provided: ***.")
    answer = client.get(f"/api/channel/test/{channel.pk}", HTTP_AUTHORIZATION=root.access_token)
    assert answer.json()["message"].startswith("Incorrect API key provided: ***.") and _no_key(answer.content.decode())
    logs = list(Log.objects.values_list("content", flat=True))
    assert any("test with gpt-4o-mini failed" in c for c in logs)
    assert any("disabled automatically" in c for c in logs)
    assert all(_no_key(c) for c in logs)
    assert Channel.objects.get(pk=channel.pk).status == Channel.Status.AUTO_DISABLED
    assert all(_no_key(m.subject + m.body) for m in mail.outbox)


@pytest.mark.django_db
def test_a_balance_query_reports_the_echo_masked(echoing, client, root):
    channel = ChannelFactory(type=36, base_url=echoing.url, key=KEY, models="deepseek-chat")
    answer = client.get(f"/api/channel/update_balance/{channel.pk}", HTTP_AUTHORIZATION=root.access_token).json()
    assert not answer["success"] and "Incorrect API key provided: ***" in answer["message"]
    assert _no_key(orjson.dumps(answer).decode())
