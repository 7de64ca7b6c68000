"""A channel at its cap is skipped by routing (the next by weight, then the next priority), not failed."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from billing.services import option_set
from providers.models import Channel
from relay.cache import cache
from relay.limits import limiter
from tests.factories import ChannelFactory
from tests.helpers import consume_logs
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


@pytest.fixture(autouse=True)
def clock():
    limiter.clock = lambda: 1_800_000_000.0
    yield
    limiter.clock = None


async def cap(channel_id: int, **limits) -> None:
    await sync_to_async(lambda: Channel.objects.filter(pk=channel_id).update(**limits))()
    cache.clear()


async def channel(*, rpm_limit: int = 0, **fields):
    made = await sync_to_async(ChannelFactory)(models="gpt-4o-mini", **fields)
    await cap(made.pk, rpm_limit=rpm_limit)
    return made


async def test_a_channel_at_its_cap_hands_the_request_to_the_next_priority(client, world, second_upstream):
    await cap(world.channel.pk, rpm_limit=1)
    backup = await channel(name="backup", base_url=second_upstream.url, priority=-1)
    for _ in range(3):
        response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
        assert response.status_code == 200, response.text
    assert len(world.upstream.requests) == 1 and len(second_upstream.requests) == 2
    assert [log.channel_id for log in await consume_logs()] == [world.channel.pk, backup.pk, backup.pk]


async def test_channels_of_one_priority_share_the_load_until_all_are_full(client, world, second_upstream):
    await cap(world.channel.pk, rpm_limit=1)
    await channel(name="twin", base_url=second_upstream.url, rpm_limit=1, weight=5)
    for _ in range(2):
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)).status_code == 200
    assert len(world.upstream.requests) == 1 and len(second_upstream.requests) == 1
    refused = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "60"
    error = refused.json()["error"]
    assert error["code"] == "model_capacity_exceeded"
    assert error["message"].startswith("The model gpt-4o-mini is at capacity: every channel serving it is at its "
                                       "limit of 1 request per minute")


async def test_a_concurrency_cap_skips_the_channel_only_while_its_requests_run(client, world, second_upstream):
    await cap(world.channel.pk, concurrency_limit=1)
    await channel(name="backup", base_url=second_upstream.url, priority=-1)
    for _ in range(3):
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)).status_code == 200
    assert len(world.upstream.requests) == 3 and second_upstream.requests == []


async def test_failover_skips_a_channel_at_its_cap(client, world, second_upstream, third_upstream):
    await sync_to_async(option_set)(key="RetryTimes", value="2")
    world.upstream.default.status = 500  # the world's channel, at priority 0
    capped = await channel(name="capped", base_url=second_upstream.url, priority=-5, rpm_limit=1)
    last = await channel(name="last", base_url=third_upstream.url, priority=-10)
    for _ in range(2):
        response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
        assert response.status_code == 200, response.text
    assert len(world.upstream.requests) == 2
    assert len(second_upstream.requests) == 1 and len(third_upstream.requests) == 1
    assert [log.channel_id for log in await consume_logs()] == [capped.pk, last.pk]


async def test_failover_with_every_other_channel_full_gives_the_upstreams_error(client, world, second_upstream):
    await sync_to_async(option_set)(key="RetryTimes", value="1")
    await channel(name="capped", base_url=second_upstream.url, priority=-5, rpm_limit=1)
    world.upstream.default.status = 503
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)).status_code == 200
    response = await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 503
    assert len(world.upstream.requests) == 2 and len(second_upstream.requests) == 1
