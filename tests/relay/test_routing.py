from collections import Counter

import pytest
from asgiref.sync import sync_to_async

from billing.models import Log
from billing.services import option_set
from tests.factories import ChannelFactory
from tests.helpers import flush
from tests.mock_upstream import MockUpstream

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def second_upstream():
    server = MockUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def third_upstream():
    server = MockUpstream().start()
    yield server
    server.stop()


async def test_retries_never_hit_the_same_channel_twice(client, world, second_upstream, third_upstream):
    """Two failing channels and one healthy, all equal: two retries must reach the healthy one."""
    await sync_to_async(option_set)(key="RetryTimes", value="2")
    await sync_to_async(ChannelFactory)(name="also-broken", base_url=second_upstream.url, models="gpt-4o-mini")
    await sync_to_async(ChannelFactory)(name="healthy", base_url=third_upstream.url, models="gpt-4o-mini")
    world.upstream.default.status = 503
    second_upstream.default.status = 500
    for _ in range(10):
        response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
        assert response.status_code == 200, response.text
    assert len(third_upstream.requests) == 10
    # Each failing channel was tried at most once per request.
    assert len(world.upstream.requests) <= 10 and len(second_upstream.requests) <= 10


async def test_failover_reaches_the_healthy_channel(client, world, second_upstream):
    await sync_to_async(option_set)(key="RetryTimes", value="1")
    backup = await sync_to_async(ChannelFactory)(name="backup", base_url=second_upstream.url,
                                                 models="gpt-4o-mini", priority=-1)
    world.upstream.default.status = 502
    response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 200, response.text
    assert len(world.upstream.requests) == 1 and len(second_upstream.requests) == 1
    await flush()
    log = await sync_to_async(Log.objects.get)(type=Log.Type.CONSUME)
    assert log.channel_id == backup.pk


async def test_no_retry_when_retry_times_is_zero(client, world, second_upstream):
    await sync_to_async(ChannelFactory)(name="backup", base_url=second_upstream.url, models="gpt-4o-mini",
                                        priority=-1)
    world.upstream.default.status = 500
    response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 500
    assert second_upstream.requests == []


async def test_client_errors_are_not_retried(client, world, second_upstream):
    await sync_to_async(option_set)(key="RetryTimes", value="2")
    await sync_to_async(ChannelFactory)(name="backup", base_url=second_upstream.url, models="gpt-4o-mini",
                                        priority=-1)
    world.upstream.default.status = 400
    response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 400
    assert second_upstream.requests == []


async def test_higher_priority_wins(client, world, second_upstream):
    await sync_to_async(ChannelFactory)(name="preferred", base_url=second_upstream.url, models="gpt-4o-mini",
                                        priority=10)
    for _ in range(5):
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)).status_code == 200
    assert len(second_upstream.requests) == 5 and world.upstream.requests == []


async def test_weights_share_traffic_within_a_priority(client, world, second_upstream):
    from providers.models import Channel
    from providers.services import channel_update

    def set_weights():
        channel_update(channel=Channel.objects.get(pk=world.channel.pk), weight=1)
        ChannelFactory(name="heavy", base_url=second_upstream.url, models="gpt-4o-mini", weight=9)

    await sync_to_async(set_weights)()
    for _ in range(100):
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)).status_code == 200
    heavy, light = len(second_upstream.requests), len(world.upstream.requests)
    assert heavy + light == 100
    # 90 expected; 70 is more than 5 standard deviations away.
    assert heavy > 70, Counter(heavy=heavy, light=light)


async def test_model_mapping_and_system_prompt_are_applied(client, world):
    from providers.models import Channel
    from providers.services import channel_update

    def configure():
        channel_update(channel=Channel.objects.get(pk=world.channel.pk),
                       model_mapping={"gpt-4o-mini": "upstream-model"}, system_prompt="Be brief.")

    await sync_to_async(configure)()
    response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 200
    sent = world.upstream.requests[-1].body
    assert sent["model"] == "upstream-model"
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    await flush()
    log = await sync_to_async(Log.objects.get)(type=Log.Type.CONSUME)
    assert log.model_name == "gpt-4o-mini" and log.system_prompt_reset


async def test_an_image_that_fails_over_is_priced_on_the_channel_that_made_it(client, world, second_upstream):
    # Per-channel-type prices ("model(type)"): the first channel (type 1) fails, a Custom channel (type 8) answers.
    await sync_to_async(option_set)(key="RetryTimes", value="1")
    await sync_to_async(option_set)(key="ModelRatio", value='{"dall-e-2(1)": 8, "dall-e-2(8)": 16}')
    await sync_to_async(ChannelFactory)(name="first", base_url=world.upstream.url, models="dall-e-2", priority=5)
    backup = await sync_to_async(ChannelFactory)(name="custom", type=8, base_url=second_upstream.url,
                                                 models="dall-e-2", priority=-1)
    world.upstream.default.status = 502
    response = await client.post("/v1/images/generations", headers=world.auth,
                                 json={"model": "dall-e-2", "prompt": "a cat", "size": "256x256", "n": 2})
    assert response.status_code == 200, response.text
    assert len(second_upstream.requests) == 1
    await flush()
    log = await sync_to_async(Log.objects.get)(type=Log.Type.CONSUME)
    assert log.channel_id == backup.pk
    assert log.quota == 16 * 1000 * 2  # ratio 16 x US$0.002 an image at the base size, two images
