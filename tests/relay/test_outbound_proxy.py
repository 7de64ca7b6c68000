"""Upstream calls through an outbound proxy: a channel's `proxy` config key, else RELAY_PROXY. Local HTTP and
SOCKS5 proxies (tests/proxies.py) count the connections they take, so each test sees the call pass through."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from providers.models import Channel
from providers.services import channel_update, channel_update_balance
from relay import http
from relay.cache import cache
from relay.probe import probe
from tests.factories import ChannelFactory
from tests.proxies import HttpProxy, Socks5Proxy
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def http_proxy():
    proxy = await HttpProxy().start()
    yield proxy
    await http.close()
    await proxy.stop()


@pytest.fixture
async def socks_proxy():
    proxy = await Socks5Proxy(credentials=("relay", "p@ss word")).start()
    yield proxy
    await http.close()
    await proxy.stop()


def _set_proxy(channel_id: int, proxy: str) -> None:
    channel = Channel.objects.get(pk=channel_id)
    channel_update(channel=channel, config={**channel.config, "proxy": proxy})
    cache.clear()


async def _chat(relay_client, world, **extra):
    response = await relay_client.post("/v1/chat/completions", headers=world.auth, json={
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **extra})
    assert response.status_code == 200, response.text
    return response


async def test_a_channel_without_a_proxy_calls_the_upstream_directly(relay_client, world, http_proxy):
    await _chat(relay_client, world)
    assert http_proxy.log.connections == 0
    assert len(world.upstream.requests) == 1


async def test_a_channels_http_proxy_carries_its_calls_with_the_credentials_in_its_url(
        relay_client, world, http_proxy):
    await sync_to_async(_set_proxy)(world.channel.pk, http_proxy.url("team:s3cret-pass"))
    await _chat(relay_client, world)
    await _chat(relay_client, world, stream=True)
    assert http_proxy.log.connections >= 1
    assert http_proxy.log.targets == [f"127.0.0.1:{world.upstream.port}"] * len(http_proxy.log.targets)
    assert set(http_proxy.log.credentials) == {"team:s3cret-pass"}
    assert len(world.upstream.requests) == 2  # both calls arrived, through the proxy


async def test_a_channels_socks5_proxy_carries_its_calls(relay_client, world, socks_proxy):
    await sync_to_async(_set_proxy)(world.channel.pk, socks_proxy.url(userinfo="relay:p%40ss%20word"))
    await _chat(relay_client, world)
    assert socks_proxy.log.connections == 1
    assert socks_proxy.log.credentials == ["relay:p@ss word"]
    assert socks_proxy.log.targets == [f"127.0.0.1:{world.upstream.port}"]
    assert socks_proxy.log.address_types == ["ipv4"]


async def test_socks5h_leaves_the_name_to_the_proxy_and_socks5_resolves_it_here(transactional_db, relay_client,
                                                                                  upstream, socks_proxy):
    world = await sync_to_async(new_world)(upstream, username="namer")
    base = f"http://localhost:{upstream.port}"
    await sync_to_async(lambda: Channel.objects.filter(pk=world.channel.pk).update(base_url=base))()
    for scheme, kind in (("socks5h", "domain"), ("socks5", "ipv4")):
        await sync_to_async(_set_proxy)(world.channel.pk, socks_proxy.url(scheme, "relay:p%40ss%20word"))
        await http.close()
        await _chat(relay_client, world)
        assert socks_proxy.log.address_types[-1] == kind
    assert socks_proxy.log.targets[0] == f"localhost:{upstream.port}"


async def test_relay_proxy_carries_every_channels_calls_unless_the_channel_has_its_own(
        relay_client, world, http_proxy, socks_proxy, settings):
    settings.RELAY_PROXY = http_proxy.url()
    await _chat(relay_client, world)
    assert http_proxy.log.connections == 1
    own = await sync_to_async(ChannelFactory)(base_url=world.upstream.url, models="own-model",
                                              config={"proxy": socks_proxy.url(userinfo="relay:p%40ss%20word")})
    cache.clear()
    response = await relay_client.post("/v1/chat/completions", headers=world.auth, json={
        "model": "own-model", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200, response.text
    assert socks_proxy.log.connections == 1 and http_proxy.log.connections == 1
    assert own.pk


async def test_the_channel_test_and_the_balance_query_go_through_the_channels_proxy(world, http_proxy):
    await sync_to_async(_set_proxy)(world.channel.pk, http_proxy.url())
    routes = await cache.get_routes()
    result = await probe(channel=routes.channels[world.channel.pk], model="gpt-4o-mini", prompt="hi")
    assert result.success, result.message
    assert http_proxy.log.connections == 1
    balance = await sync_to_async(channel_update_balance)(channel_id=world.channel.pk)  # httpx, off the relay
    assert balance == pytest.approx(100.0 - 12.34)
    assert http_proxy.log.connections >= 2
    assert all(target == f"127.0.0.1:{world.upstream.port}" for target in http_proxy.log.targets)


async def test_an_unreachable_proxy_is_the_usual_upstream_failure_without_its_password(relay_client, world):
    await sync_to_async(_set_proxy)(world.channel.pk, "socks5://relay:hunter2-secret-pw@127.0.0.1:9")
    response = await relay_client.post("/v1/chat/completions", headers=world.auth, json={
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 502, response.text
    assert "hunter2-secret-pw" not in response.text
    assert world.upstream.requests == []


async def test_a_socks_proxy_refusing_the_credentials_fails_the_call_over_to_the_usual_502(relay_client, world,
                                                                                          socks_proxy):
    await sync_to_async(_set_proxy)(world.channel.pk, socks_proxy.url(userinfo="relay:wrong-password-1"))
    response = await relay_client.post("/v1/chat/completions", headers=world.auth, json={
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "do_request_failed"
    assert "wrong-password-1" not in response.text
    assert socks_proxy.log.connections >= 1 and world.upstream.requests == []


async def test_the_openai_sdk_streams_through_a_channel_behind_a_socks5_proxy(relay_client, world, socks_proxy):
    await sync_to_async(_set_proxy)(world.channel.pk, socks_proxy.url("socks5h", "relay:p%40ss%20word"))
    stream = await world.sdk(relay_client).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == world.upstream.default.reply and chunks[-1].usage.total_tokens == 18
    assert socks_proxy.log.connections == 1 and socks_proxy.log.address_types == ["ipv4"]


async def test_the_balance_query_goes_through_a_socks5_proxy_with_its_credentials(world, socks_proxy):
    await sync_to_async(_set_proxy)(world.channel.pk, socks_proxy.url("socks5h", "relay:p%40ss%20word"))
    balance = await sync_to_async(channel_update_balance)(channel_id=world.channel.pk)
    assert balance == pytest.approx(100.0 - 12.34)
    assert socks_proxy.log.credentials and set(socks_proxy.log.credentials) == {"relay:p@ss word"}
    assert socks_proxy.log.targets[0] == f"127.0.0.1:{world.upstream.port}"
