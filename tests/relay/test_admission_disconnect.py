"""A client that leaves while its admission is on its way to Redis (relay/admission.py): whatever Redis reserved
for it is given back, not held until its lease lapses an hour later. Needs REDIS_CONN_STRING."""

import asyncio
import os

import pytest
import redis

from billing.shared_quota import key, shared
from relay import admission
from relay.auth import authenticate
from tests.conftest import shared_quota_clear

URL = os.environ.get("REDIS_CONN_STRING", "")
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.skipif(not URL, reason="needs REDIS_CONN_STRING")]


async def test_a_client_leaving_during_admission_leaves_no_reservation_in_redis(world, settings, monkeypatch):
    settings.REDIS_CONN_STRING = URL
    shared_quota_clear()
    shared.forget()
    caller = await authenticate(authorization=f"Bearer sk-{world.token.key}", client_ip="127.0.0.1")
    ran, answered = asyncio.Event(), asyncio.Event()
    real = shared._async

    def late_answers():
        client, scripts = real()
        script = scripts["admit"]

        async def admit(**kwargs):
            answer = await script(**kwargs)  # Redis has run the script and reserved
            ran.set()
            await answered.wait()  # its answer is still on the way when the client leaves
            return answer

        return client, {**scripts, "admit": admit}

    monkeypatch.setattr(shared, "_async", late_answers)
    request = asyncio.ensure_future(admission.hold(caller, 1000))
    await ran.wait()
    request.cancel()
    answered.set()
    with pytest.raises(asyncio.CancelledError):
        await request
    await asyncio.sleep(0)
    await admission.drain()
    r = redis.Redis.from_url(URL)
    try:
        for kind, subject in (("u", world.user.id), ("t", world.token.id)):
            assert int(r.hget(key(kind, subject), "res")) == 0
            assert r.zcard(key(kind, subject) + ":leases") == 0
    finally:
        r.close()
        shared_quota_clear()
        shared.forget()
