import threading
import time

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings

from billing.services import option_set
from oneapi_site.lib import changes
from relay import cache as cache_module

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


async def test_warm_requests_make_no_database_query(client, world, monkeypatch):
    loads = []
    for name in ("_load_token", "_load_user", "_load_routes"):
        original = getattr(cache_module, name)

        def counted(*args, _original=original, _name=name):
            loads.append(_name)
            return _original(*args)

        monkeypatch.setattr(cache_module, name, counted)
    from django.db import connection

    assert (await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)).status_code == 200
    warm_up = len(loads)
    assert warm_up == 3
    for _ in range(20):
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)).status_code == 200
    assert len(loads) == warm_up
    assert connection.queries_log is not None  # sanity: Django is importable in this thread


async def test_option_change_reaches_the_relay_by_the_next_request(client, world):
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)).status_code == 200
    await sync_to_async(option_set)(key="GroupRatio", value='{"default": 0}')
    # With a group ratio of 0 the request is free: nothing is reserved or charged.
    from billing.ledger import ledger
    from tests.helpers import flush

    await flush()
    before = ledger.user_spent(world.user.pk)
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)).status_code == 200
    assert ledger.user_spent(world.user.pk) == before


@pytest.mark.skipif(not settings.REDIS_CONN_STRING, reason="needs REDIS_CONN_STRING")
def test_changes_reach_other_instances_through_redis():
    """Another instance publishes; this one's listener hears it at once, and not a deployment on another
    database of the same Redis server (pub/sub channels are server-wide)."""
    heard = []
    changes.subscribe(heard.append)
    stop = threading.Event()
    listener = threading.Thread(target=changes.listen_forever, args=(stop,), daemon=True)
    listener.start()
    time.sleep(0.5)
    try:
        changes._redis().publish(changes.channel_name(), f"{changes.INSTANCE}:tokens")  # our own echo: ignored
        other_db = (int(changes.channel_name().rpartition(":")[2]) + 1) % 16
        changes._redis().publish(f"{changes.CHANNEL_PREFIX}:{other_db}", "other-deployment:users")  # not ours
        changes._redis().publish(changes.channel_name(), "another-instance:channels")
        deadline = time.monotonic() + 5
        while "channels" not in heard and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        # (The relay's own listener may be running too, so "channels" can arrive twice.)
        assert set(heard) == {"channels"}
    finally:
        stop.set()
        changes._listeners.remove(heard.append)
        listener.join(5)


async def test_requests_arriving_during_a_reload_wait_for_the_new_routes(client, world):
    import asyncio

    from tests.factories import ChannelFactory

    assert (await client.post("/v1/chat/completions", json=CHAT, headers=world.auth)).status_code == 200
    await sync_to_async(ChannelFactory)(name="new", base_url=world.upstream.url, models="brand-new-model")
    body = {**CHAT, "model": "brand-new-model"}
    responses = await asyncio.gather(*(client.post("/v1/chat/completions", json=body, headers=world.auth)
                                       for _ in range(20)))
    assert [r.status_code for r in responses] == [200] * 20
