"""Vendors that answer only as a stream: the relay gathers the stream for non-streaming clients."""

import pytest
from asgiref.sync import sync_to_async

from billing.models import Log
from providers import adapters
from providers.adapters.openai import OpenAIAdapter
from providers.models import Channel
from tests.helpers import flush

pytestmark = pytest.mark.django_db(transaction=True)


class StreamOnlyAdapter(OpenAIAdapter):
    channel_type = 990
    label = "Stream-only test vendor"
    stream_only = True


@pytest.fixture
def stream_only_type(monkeypatch):
    monkeypatch.setitem(adapters.ADAPTERS, 990, StreamOnlyAdapter)
    monkeypatch.setitem(adapters._instances, 990, StreamOnlyAdapter())


async def test_non_streaming_client_gets_one_gathered_answer(client, world, stream_only_type):
    await sync_to_async(Channel.objects.filter(pk=world.channel.pk).update)(type=990)
    from relay.cache import cache

    cache.mark_stale("channels")
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    response = await client.post("/v1/chat/completions", json=body, headers=world.auth)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "Hello from the mock upstream."}
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"]["completion_tokens"] == 7
    assert world.upstream.requests[-1].body["stream"] is True
    await flush()
    log = await sync_to_async(Log.objects.get)(type=Log.Type.CONSUME)
    assert (log.prompt_tokens, log.completion_tokens, log.is_stream) == (11, 7, False)
