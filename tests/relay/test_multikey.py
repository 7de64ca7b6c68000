"""A channel of several keys: used in turn or at random, a dead key disabled alone and probed back later."""

import asyncio
from collections import Counter

import pytest
from asgiref.sync import sync_to_async

from billing.models import Log
from billing.services import option_set
from oneapi_site.lib.timeutil import now_ts
from providers import key_health
from providers.channel_keys import fingerprint
from providers.models import Channel, ChannelKey
from relay import keys
from relay.cache import cache
from relay.probe import channel_test, probe_keys
from tests.factories import ChannelFactory
from tests.helpers import channel_status
from tests.world import new_world

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
KEYS = ["sk-first-key-0000000000000001", "sk-second-key-000000000000002", "sk-third-key-0000000000000003"]


@pytest.fixture
def fleet(transactional_db, upstream):
    """alice and one round-robin channel of three keys at the mock upstream."""
    return new_world(upstream, username="alice", name="three-keys", key="\n".join(KEYS), key_mode="round_robin",
                     models="gpt-4o-mini")


def sent_keys(upstream) -> list[str]:
    return [r.headers["Authorization"].removeprefix("Bearer ") for r in upstream.requests]


async def key_status(channel_id: int, index: int, expect: int, timeout: float = 3.0) -> int:
    """The key's status once it is `expect` (keys are disabled off the request path), or after `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status = await sync_to_async(ChannelKey.objects.values_list("status", flat=True).get)(
            channel_id=channel_id, index=index)
        if status == expect or asyncio.get_running_loop().time() > deadline:
            return status
        await asyncio.sleep(0.05)


@pytest.mark.django_db(transaction=True)
async def test_the_keys_take_turns(relay_client, fleet):
    for _ in range(9):
        assert (await relay_client.post("/v1/chat/completions", json=CHAT, headers=fleet.auth)).status_code == 200
    assert Counter(sent_keys(fleet.upstream)) == {key: 3 for key in KEYS}


@pytest.mark.django_db(transaction=True)
async def test_a_refused_key_is_disabled_alone_and_the_others_keep_answering_in_turn(relay_client, fleet):
    await sync_to_async(option_set)(key="AutomaticDisableChannelEnabled", value="true")
    fleet.upstream.refused_keys = {KEYS[1]}
    answers = [await relay_client.post("/v1/chat/completions", json=CHAT, headers=fleet.auth) for _ in range(6)]
    # The request that met the dead key was sent again with another key, never the same one.
    assert [a.status_code for a in answers] == [200] * 6
    assert sent_keys(fleet.upstream).count(KEYS[1]) == 1
    assert await key_status(fleet.channel.pk, 1, ChannelKey.Status.AUTO_DISABLED) == ChannelKey.Status.AUTO_DISABLED
    assert await channel_status(fleet.channel.pk, Channel.Status.ENABLED) == Channel.Status.ENABLED
    states = await sync_to_async(lambda: list(ChannelKey.objects.filter(channel=fleet.channel).order_by("index")))()
    assert [s.status for s in states] == [1, 3, 1]
    dead = states[1]
    assert dead.failures == 1 and dead.disabled_at > 0 and "Incorrect API key" in dead.last_error
    assert dead.probe_after > dead.disabled_at

    fleet.upstream.requests.clear()
    for _ in range(10):
        assert (await relay_client.post("/v1/chat/completions", json=CHAT, headers=fleet.auth)).status_code == 200
    assert Counter(sent_keys(fleet.upstream)) == {KEYS[0]: 5, KEYS[2]: 5}

    # No secret in the key's state, the system log or any answer.
    logs = await sync_to_async(lambda: list(Log.objects.values_list("content", flat=True)))()
    texts = [dead.last_error, *logs, *(a.text for a in answers)]
    for key in KEYS:
        assert not any(key in text or key[-12:] in text for text in texts)


@pytest.mark.django_db(transaction=True)
async def test_a_stream_refused_for_its_key_starts_again_with_another_key(relay_client, fleet):
    fleet.upstream.refused_keys = {KEYS[0]}
    body = {**CHAT, "stream": True}
    answer = await relay_client.post("/v1/chat/completions", json=body, headers=fleet.auth)
    assert answer.status_code == 200 and "data: [DONE]" in answer.text and "Incorrect API key" not in answer.text
    assert sent_keys(fleet.upstream) == [KEYS[0], KEYS[1]]


@pytest.mark.django_db(transaction=True)
async def test_a_key_that_keeps_failing_goes_alone_after_the_configured_count(relay_client, fleet):
    await sync_to_async(option_set)(key="AutomaticDisableChannelEnabled", value="true")
    await sync_to_async(option_set)(key="ChannelDisableFailureCount", value="2")
    fleet.upstream.failing_keys = {KEYS[1]}
    answers = [(await relay_client.post("/v1/chat/completions", json=CHAT, headers=fleet.auth)).status_code
               for _ in range(6)]
    assert answers == [200, 503, 200, 200, 503, 200]  # no retry (RetryTimes 0): the failure is the client's
    assert await key_status(fleet.channel.pk, 1, ChannelKey.Status.AUTO_DISABLED) == ChannelKey.Status.AUTO_DISABLED
    row = await sync_to_async(ChannelKey.objects.get)(channel=fleet.channel, index=1)
    assert "2 failures in a row" in row.last_error
    assert await channel_status(fleet.channel.pk, Channel.Status.ENABLED) == Channel.Status.ENABLED
    fleet.upstream.requests.clear()
    for _ in range(4):
        assert (await relay_client.post("/v1/chat/completions", json=CHAT, headers=fleet.auth)).status_code == 200
    assert Counter(sent_keys(fleet.upstream)) == {KEYS[0]: 2, KEYS[2]: 2}


@pytest.mark.django_db(transaction=True)
async def test_random_mode_uses_only_live_keys(relay_client, upstream):
    world = await sync_to_async(new_world)(upstream, username="bob", key="\n".join(KEYS), key_mode="random",
                                           models="gpt-4o-mini")
    assert (await relay_client.post("/v1/chat/completions", json=CHAT, headers=world.auth)).status_code == 200
    # Switched while the relay holds the channel's snapshot: the change notification makes it reload.
    await sync_to_async(key_health.key_set_status)(channel_id=world.channel.pk, index=0, enabled=False)
    upstream.requests.clear()
    for _ in range(30):
        assert (await relay_client.post("/v1/chat/completions", json=CHAT, headers=world.auth)).status_code == 200
    used = Counter(sent_keys(upstream))
    assert KEYS[0] not in used and set(used) == {KEYS[1], KEYS[2]}


@pytest.mark.django_db(transaction=True)
async def test_when_every_key_is_dead_the_channel_is_auto_disabled(relay_client, upstream):
    await sync_to_async(option_set)(key="AutomaticDisableChannelEnabled", value="true")
    world = await sync_to_async(new_world)(upstream, username="carol", key="\n".join(KEYS[:2]),
                                           key_mode="round_robin", models="gpt-4o-mini")
    upstream.refused_keys = set(KEYS[:2])
    answer = await relay_client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert answer.status_code == 401 and KEYS[0] not in answer.text and KEYS[1] not in answer.text
    assert sorted(sent_keys(upstream)) == sorted(KEYS[:2])  # each key once, then the vendor's refusal
    assert await channel_status(world.channel.pk, Channel.Status.AUTO_DISABLED) == Channel.Status.AUTO_DISABLED
    assert (await relay_client.post("/v1/chat/completions", json=CHAT, headers=world.auth)).status_code == 503


def _dead(channel: Channel, index: int) -> None:
    key_health.key_auto_disable(channel_id=channel.pk, index=index, key_fingerprint=fingerprint(KEYS[index]),
                                reason="the vendor refused the key")


def _cooled(channel: Channel, index: int) -> None:
    ChannelKey.objects.filter(channel=channel, index=index).update(probe_after=now_ts() - 1)


@pytest.mark.django_db
def test_a_probe_after_the_cooldown_brings_a_key_back_and_a_failed_one_doubles_the_wait(upstream):
    channel = ChannelFactory(base_url=upstream.url, key="\n".join(KEYS), key_mode="round_robin", models="gpt-4o")
    _dead(channel, 1)
    assert probe_keys() == 0 and upstream.requests == []  # still cooling down: not tried
    _cooled(channel, 1)
    upstream.refused_keys = {KEYS[1]}
    assert probe_keys() == 0
    assert sent_keys(upstream) == [KEYS[1]]  # one real request, with that key alone
    row = ChannelKey.objects.get(channel=channel, index=1)
    assert row.status == ChannelKey.Status.AUTO_DISABLED and row.probes_failed == 1 and row.failures == 2
    assert row.probe_after - now_ts() > key_health.PROBE_COOLDOWN * 1.5  # the wait doubled
    upstream.refused_keys = set()
    _cooled(channel, 1)
    assert probe_keys() == 1
    row.refresh_from_db()
    assert (row.status, row.failures, row.disabled_at, row.probes_failed) == (ChannelKey.Status.ENABLED, 0, 0, 0)


@pytest.mark.django_db
def test_a_channel_disabled_for_lack_of_keys_comes_back_with_its_first_key(upstream):
    option_set(key="AutomaticEnableChannelEnabled", value="true")
    channel = ChannelFactory(base_url=upstream.url, key="\n".join(KEYS[:2]), key_mode="round_robin", models="gpt-4o")
    _dead(channel, 0)
    _dead(channel, 1)
    assert Channel.objects.get(pk=channel.pk).status == Channel.Status.AUTO_DISABLED
    result = channel_test(channel_id=channel.pk)  # the scheduled test: no key is past its cooldown yet
    assert not result.success and "every key" in result.message
    _cooled(channel, 1)
    assert channel_test(channel_id=channel.pk).success
    assert Channel.objects.get(pk=channel.pk).status == Channel.Status.ENABLED
    assert list(ChannelKey.objects.filter(channel=channel).order_by("index").values_list("status", flat=True)) == [
        ChannelKey.Status.AUTO_DISABLED, ChannelKey.Status.ENABLED]
    assert set(sent_keys(upstream)) == {KEYS[1]}


@pytest.mark.django_db
def test_a_channel_test_that_finds_a_dead_key_disables_that_key_alone(upstream):
    option_set(key="AutomaticDisableChannelEnabled", value="true")
    channel = ChannelFactory(base_url=upstream.url, key="\n".join(KEYS), key_mode="round_robin", models="gpt-4o")
    upstream.refused_keys = {KEYS[0]}
    assert not channel_test(channel_id=channel.pk).success
    assert list(ChannelKey.objects.filter(channel=channel).order_by("index").values_list("status", flat=True)) == [
        3, 1, 1]
    assert Channel.objects.get(pk=channel.pk).status == Channel.Status.ENABLED
    assert channel_test(channel_id=channel.pk).success  # the next test takes the first live key
    assert sent_keys(upstream) == [KEYS[0], KEYS[1]]


@pytest.mark.django_db(transaction=True)
async def test_a_key_at_its_requests_per_minute_is_passed_over_until_the_next_minute(relay_client, fleet,
                                                                                     monkeypatch):
    now = [6000.0]
    monkeypatch.setattr(keys.ring, "clock", lambda: now[0])
    await sync_to_async(Channel.objects.filter(pk=fleet.channel.pk).update)(key_rpm_limit=2)
    cache.clear()  # the update above bypassed the service, which would have told the relay
    for _ in range(6):
        assert (await relay_client.post("/v1/chat/completions", json=CHAT, headers=fleet.auth)).status_code == 200
    assert Counter(sent_keys(fleet.upstream)) == {key: 2 for key in KEYS}
    capped = await relay_client.post("/v1/chat/completions", json=CHAT, headers=fleet.auth)
    assert capped.status_code == 429 and capped.json()["error"]["code"] == "key_rate_limit_exceeded"
    assert len(fleet.upstream.requests) == 6
    # Another channel of the model (a lower priority: tried only when the first is passed over) takes the
    # request the capped keys cannot.
    await sync_to_async(ChannelFactory)(base_url=fleet.upstream.url, key="sk-spare-key-00000000000009",
                                        models="gpt-4o-mini", priority=-1)
    assert (await relay_client.post("/v1/chat/completions", json=CHAT, headers=fleet.auth)).status_code == 200
    assert sent_keys(fleet.upstream)[-1] == "sk-spare-key-00000000000009"
    now[0] += 60
    fleet.upstream.requests.clear()
    for _ in range(3):
        assert (await relay_client.post("/v1/chat/completions", json=CHAT, headers=fleet.auth)).status_code == 200
    assert sorted(sent_keys(fleet.upstream)) == sorted(KEYS)  # a new minute: every key free again


@pytest.mark.django_db(transaction=True)
async def test_three_keys_keep_serving_when_one_dies_and_take_it_back_when_it_recovers(relay_client, fleet, caplog):
    """The issue's promise, through the openai SDK: a dead key costs no client an error, and comes back."""
    caplog.set_level("DEBUG")
    await sync_to_async(option_set)(key="AutomaticDisableChannelEnabled", value="true")
    await sync_to_async(option_set)(key="AutomaticEnableChannelEnabled", value="true")
    sdk = fleet.sdk(relay_client)
    fleet.upstream.refused_keys = {KEYS[2]}
    for _ in range(6):
        answer = await sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content
    assert await key_status(fleet.channel.pk, 2, ChannelKey.Status.AUTO_DISABLED) == ChannelKey.Status.AUTO_DISABLED

    fleet.upstream.refused_keys = set()  # the operator topped the account up
    await sync_to_async(_cooled)(fleet.channel, 2)
    assert await sync_to_async(probe_keys)() == 1  # what the scheduled channel test runs
    fleet.upstream.requests.clear()
    for _ in range(6):
        await sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert Counter(sent_keys(fleet.upstream)) == {key: 2 for key in KEYS}
    assert await sync_to_async(lambda: Channel.objects.get(pk=fleet.channel.pk).status)() == Channel.Status.ENABLED
    logged = caplog.text + "".join(await sync_to_async(lambda: list(Log.objects.values_list("content", flat=True)))())
    assert "key 3" in logged and not any(key in logged or key[-12:] in logged for key in KEYS)


@pytest.mark.django_db
def test_the_key_prober_runs_one_round_at_a_time_and_only_when_configured(upstream, settings):
    from django.core.cache import cache as django_cache

    from oneapi_site import asgi  # noqa: F401 (starting the app starts the schedulers)
    from relay import probe

    assert probe._key_prober is None or not probe._key_prober.is_alive()  # KEY_PROBE_INTERVAL 0 in tests
    channel = ChannelFactory(base_url=upstream.url, key="\n".join(KEYS), key_mode="round_robin", models="gpt-4o")
    _dead(channel, 0)
    _cooled(channel, 0)
    django_cache.set(probe.KEY_PROBE_LOCK, 1)  # another instance is probing
    assert probe.probe_keys_once() == 0 and upstream.requests == []
    django_cache.delete(probe.KEY_PROBE_LOCK)
    assert probe.probe_keys_once() == 1 and sent_keys(upstream) == [KEYS[0]]
    assert django_cache.get(probe.KEY_PROBE_LOCK) is None

    settings.KEY_PROBE_INTERVAL = 3600
    probe.key_prober_stop.clear()
    probe.start_key_prober()
    try:
        assert probe._key_prober.is_alive()
    finally:
        probe.key_prober_stop.set()
        probe._key_prober.join(5)
    assert not probe._key_prober.is_alive()
