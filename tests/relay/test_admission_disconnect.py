"""An admission whose answer from Redis never arrives (relay/admission.py, billing/shared_quota.py): the client left
meanwhile, or the answer was lost on the way. Whatever Redis reserved is given back, not held until its lease
lapses an hour later. Needs REDIS_CONN_STRING."""

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


async def test_an_admission_whose_answer_is_lost_leaves_no_reservation_in_redis(world, settings, monkeypatch):
    settings.REDIS_CONN_STRING = URL
    shared_quota_clear()
    shared.forget()
    caller = await authenticate(authorization=f"Bearer sk-{world.token.key}", client_ip="127.0.0.1")
    real = shared._async

    def answers_lost():
        client, scripts = real()
        script = scripts["admit"]

        async def admit(**kwargs):
            await script(**kwargs)  # Redis has run the script and reserved
            raise redis.TimeoutError("Timeout reading from socket")  # and its answer never came

        return client, {**scripts, "admit": admit}

    monkeypatch.setattr(shared, "_async", answers_lost)
    first = await admission.hold(caller, 1000)
    assert first.lease is None  # admitted by this process's ledger instead
    admission.release(first)
    monkeypatch.setattr(shared, "_async", real)
    monkeypatch.setattr(shared, "_down_until", 0.0)  # Redis is tried again
    second = await admission.hold(caller, 300)
    assert second.lease is not None
    r = redis.Redis.from_url(URL)
    try:
        for kind, subject in (("u", world.user.id), ("t", world.token.id)):
            assert int(r.hget(key(kind, subject), "res")) == 300
            assert r.zcard(key(kind, subject) + ":leases") == 1
    finally:
        admission.release(second)
        await admission.drain()
        r.close()
        shared_quota_clear()
        shared.forget()
