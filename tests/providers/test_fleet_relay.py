"""A batch edit changes where the relay sends requests at once: routes rebuilt, the relay's cache told."""

import openai
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

ADMIN = "root-access-token"  # the root fixture's management token
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


async def served_by(sdk, world) -> str:
    """Which channel's key the upstream saw for one chat through the gateway, asked with the openai SDK."""
    answer = await sdk.chat.completions.create(**CHAT)
    assert answer.choices
    return world.upstream.requests[-1].headers["Authorization"].removeprefix("Bearer ")


async def batch(relay_client, **body) -> int:
    """POST /api/channel/batch on the same application, as an admin's script would."""
    response = await relay_client.post("/api/channel/batch", json=body, headers={"Authorization": ADMIN})
    assert response.status_code == 200 and response.json()["success"], response.text
    return response.json()["data"]


async def test_batch_priority_models_and_status_reroute_the_next_request(relay_client, world, root):
    sdk = world.sdk(relay_client)
    await sync_to_async(lambda: ChannelFactory(name="spare", base_url=world.upstream.url, key="sk-spare-key",
                                               models="gpt-4o-mini", tag="spare", priority=-1))()
    assert await served_by(sdk, world) == "sk-upstream-secret"
    assert await batch(relay_client, tag="spare", action="priority", value=10) == 1
    assert await served_by(sdk, world) == "sk-spare-key"
    await batch(relay_client, tag="spare", action="models", mode="remove", value="gpt-4o-mini")
    assert await served_by(sdk, world) == "sk-upstream-secret"
    await batch(relay_client, tag="spare", action="models", mode="add", value=["gpt-4o-mini"])
    await batch(relay_client, tag="spare", action="disable")
    assert await served_by(sdk, world) == "sk-upstream-secret"
    await batch(relay_client, tag="spare", action="enable")
    assert await served_by(sdk, world) == "sk-spare-key"
    await batch(relay_client, ids=[world.channel.pk])  # new-api's batch delete
    await batch(relay_client, tag="spare", action="groups", value="vip")
    with pytest.raises(openai.APIStatusError) as refused:  # the spare now serves vip only, and alice is in default
        await sdk.chat.completions.create(**CHAT)
    assert refused.value.status_code == 503 and refused.value.body["code"] == "model_not_available"


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
