"""A batch edit changes where the relay sends requests at once: routes rebuilt, the relay's cache told."""

import pytest
from asgiref.sync import sync_to_async

from providers import fleet
from relay import http
from tests.factories import ChannelFactory
from tests.providers.mock_model_lists import KEY, OPENAI_MODELS, MockModelLists
from tests.providers.vendor_harness import serve
from tests.proxies import HttpProxy

pytestmark = pytest.mark.django_db(transaction=True)

models_server = serve(MockModelLists)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


async def served_by(relay_client, world) -> str:
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 200, response.text
    return world.upstream.requests[-1].headers["Authorization"].removeprefix("Bearer ")


async def test_batch_priority_models_and_status_reroute_the_next_request(relay_client, world):
    await sync_to_async(lambda: ChannelFactory(name="spare", base_url=world.upstream.url, key="sk-spare-key",
                                               models="gpt-4o-mini", tag="spare", priority=-1))()
    assert await served_by(relay_client, world) == "sk-upstream-secret"
    await sync_to_async(fleet.channels_batch)(action="priority", tag="spare", value=10)
    assert await served_by(relay_client, world) == "sk-spare-key"
    await sync_to_async(fleet.channels_batch)(action="models", tag="spare", mode="remove", value="gpt-4o-mini")
    assert await served_by(relay_client, world) == "sk-upstream-secret"
    await sync_to_async(fleet.channels_batch)(action="models", tag="spare", mode="add", value="gpt-4o-mini")
    await sync_to_async(fleet.channels_batch)(action="disable", tag="spare")
    assert await served_by(relay_client, world) == "sk-upstream-secret"
    await sync_to_async(fleet.channels_batch)(action="enable", tag="spare")
    assert await served_by(relay_client, world) == "sk-spare-key"
    await sync_to_async(fleet.channels_batch)(action="delete", ids=[world.channel.pk])
    await sync_to_async(fleet.channels_batch)(action="groups", tag="spare", value="vip")
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 503  # the spare now serves vip only, and alice is in default
    assert response.json()["error"]["code"] == "model_not_available"


@pytest.fixture
async def http_proxy():
    proxy = await HttpProxy().start()
    yield proxy
    await http.close()
    await proxy.stop()


async def test_the_upstreams_models_are_asked_through_the_channels_proxy(models_server, http_proxy):
    models_server.reset()
    channel = await sync_to_async(ChannelFactory)(type=1, base_url=models_server.url, key=KEY,
                                                  config={"proxy": http_proxy.url()})
    diff = await sync_to_async(fleet.channel_fetch_models)(channel_id=channel.pk)  # httpx, off the relay
    assert diff.upstream == OPENAI_MODELS
    assert http_proxy.log.connections == 1 and http_proxy.log.targets == [f"127.0.0.1:{models_server.port}"]
