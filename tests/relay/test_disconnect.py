"""A client that leaves mid-stream cancels the upstream call and pays for what it got."""

import asyncio

import orjson
import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator

from accounts.models import Token
from billing.models import Log
from tests.helpers import flush

pytestmark = pytest.mark.django_db(transaction=True)


def scope(token_key):
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
        "headers": [(b"authorization", f"Bearer sk-{token_key}".encode()), (b"content-type", b"application/json")],
    }


async def test_client_disconnect_mid_stream_bills_what_was_produced(asgi_app, world):
    reply = " ".join(f"word{i}" for i in range(200))
    world.upstream.then(reply=reply, chunk_delay=0.02)
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "long please"}]}
    app = ApplicationCommunicator(asgi_app, scope(world.token.key))
    await app.send_input({"type": "http.request", "body": orjson.dumps(body), "more_body": False})
    start = await app.receive_output(5)
    assert start["status"] == 200
    received = b""
    while received.count(b"data: ") < 6:
        received += (await app.receive_output(5))["body"]
    await app.send_input({"type": "http.disconnect"})
    await app.wait(5)

    await asyncio.sleep(0.3)  # let the mock notice its peer went away
    assert world.upstream.streams_cancelled == 1
    await flush()
    log = await sync_to_async(Log.objects.get)(type=Log.Type.CONSUME)
    assert 0 < log.completion_tokens < 400  # counted locally: the upstream never sent its usage
    token = await sync_to_async(Token.objects.get)(pk=world.token.pk)
    assert token.used_quota == log.quota > 0


async def test_disconnect_before_the_answer_costs_nothing(asgi_app, world):
    world.upstream.then(delay=1.0)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    app = ApplicationCommunicator(asgi_app, scope(world.token.key))
    await app.send_input({"type": "http.request", "body": orjson.dumps(body), "more_body": False})
    await asyncio.sleep(0.2)
    await app.send_input({"type": "http.disconnect"})
    await app.wait(5)
    await flush()
    assert not await sync_to_async(Log.objects.filter(type=Log.Type.CONSUME).exists)()
    token = await sync_to_async(Token.objects.get)(pk=world.token.pk)
    assert token.used_quota == 0


@pytest.fixture
def backup_upstream():
    from tests.mock_upstream import MockUpstream

    server = MockUpstream().start()
    yield server
    server.stop()


async def test_a_client_that_leaves_after_a_failover_is_billed_on_the_channel_that_answered(asgi_app, world,
                                                                                       backup_upstream):
    from billing.services import option_set
    from tests.factories import ChannelFactory

    await sync_to_async(option_set)(key="RetryTimes", value="1")
    backup = await sync_to_async(ChannelFactory)(name="backup", base_url=backup_upstream.url, models="gpt-4o-mini",
                                                 priority=-1, system_prompt="Answer at length.")
    world.upstream.default.status = 502
    backup_upstream.then(reply=" ".join(f"word{i}" for i in range(200)), chunk_delay=0.02)
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "long please"}]}
    app = ApplicationCommunicator(asgi_app, scope(world.token.key))
    await app.send_input({"type": "http.request", "body": orjson.dumps(body), "more_body": False})
    assert (await app.receive_output(5))["status"] == 200
    received = b""
    while received.count(b"data: ") < 6:
        received += (await app.receive_output(5))["body"]
    await app.send_input({"type": "http.disconnect"})
    await app.wait(5)

    await flush()
    log = await sync_to_async(Log.objects.get)(type=Log.Type.CONSUME)
    assert len(world.upstream.requests) == 1 and len(backup_upstream.requests) == 1
    assert log.channel_id == backup.pk and log.system_prompt_reset  # not the channel that failed first
