"""The shared balances and budgets in Redis (billing/shared_quota.py): its scripts against a real Redis, its fallback
while Redis is away, and the balance moves of services. Needs REDIS_CONN_STRING (CI's second leg)."""

import asyncio
import logging
import os

import pytest
import redis
from asgiref.sync import sync_to_async

from accounts.models import Token
from accounts.services.tokens import token_update
from billing import shared_quota
from billing.services import redemption_create_batch, redemption_redeem, user_quota_set, user_topup
from billing.shared_quota import SharedQuota, Subject, key
from oneapi_site.lib import resp
from tests.conftest import shared_quota_clear
from tests.e2e.servers import closed_port_url
from tests.factories import TokenFactory, UserFactory

URL = os.environ.get("REDIS_CONN_STRING", "")
pytestmark = pytest.mark.skipif(not URL, reason="needs REDIS_CONN_STRING")


@pytest.fixture
def quota(settings):
    settings.REDIS_CONN_STRING = URL
    shared_quota_clear()
    yield SharedQuota()
    shared_quota_clear()


@pytest.fixture
def r():
    client = redis.Redis.from_url(URL)
    yield client
    client.close()


def subjects(*, balance=1000, token_balance=1000, token_limited=True, budget=0, period_start=0, period="",
             user_id=1, token_id=1):
    return (Subject("u", user_id, True, 0, 0, "", balance, 0),
            Subject("t", token_id, token_limited, budget, period_start, period, token_balance, 0))


def held(r, kind, subject_id):
    return {k.decode(): int(v) if k != b"bk" else v.decode() for k, v in r.hgetall(key(kind, subject_id)).items()}


async def test_concurrent_admissions_never_hold_more_than_the_balance(quota, r):
    user, token = subjects(balance=10**6, token_balance=100)
    answers = await asyncio.gather(*[quota.admit(user=user, token=token, amount=10) for _ in range(50)])
    admitted = [a for a in answers if a[1] is None]
    assert len(admitted) == 10
    assert {a[1].reason for a in answers if a[1] is not None} == {"quota"}
    assert held(r, "t", 1)["res"] == 100 and held(r, "u", 1)["res"] == 100


async def test_settlement_takes_the_charge_and_frees_the_reservation(quota, r):
    user, token = subjects(balance=500, token_balance=100)
    lease, _ = await quota.admit(user=user, token=token, amount=40)
    await quota.settle(lease=lease, reserved=40, user=user, token=token, charge=25)
    assert held(r, "t", 1)["bal"] == 75 and held(r, "t", 1)["res"] == 0
    assert held(r, "u", 1)["bal"] == 475
    assert r.zcard(key("t", 1) + ":leases") == 0
    # A second settlement of the same lease (a retry after a lost answer) frees nothing twice.
    await quota.settle(lease=lease, reserved=40, user=user, token=token, charge=0)
    assert held(r, "t", 1)["res"] == 0


async def test_seed_is_taken_once_and_later_seeds_are_ignored(quota, r):
    user, token = subjects(token_balance=100)
    lease, _ = await quota.admit(user=user, token=token, amount=10)
    await quota.settle(lease=lease, reserved=10, user=user, token=token, charge=10)
    user, stale = subjects(token_balance=100)  # another instance's cache, older than the charge
    assert (await quota.admit(user=user, token=stale, amount=95))[1].reason == "quota"
    assert held(r, "t", 1)["bal"] == 90


async def test_used_up_token_is_told_apart_from_a_short_one(quota):
    user, token = subjects(token_balance=0)
    assert (await quota.admit(user=user, token=token, amount=1))[1].reason == "exhausted"
    user, unlimited = subjects(token_balance=0, token_limited=False, token_id=2)
    assert (await quota.admit(user=user, token=unlimited, amount=1))[1] is None
    broke, unlimited = subjects(balance=0, token_limited=False, user_id=2, token_id=3)
    assert (await quota.admit(user=broke, token=unlimited, amount=0))[1] is None  # a free request, as one-api
    assert (await quota.admit(user=broke, token=unlimited, amount=1))[1].reason == "quota"


async def test_an_expired_lease_is_freed_once(quota, r, monkeypatch):
    user, token = subjects(token_balance=100)
    monkeypatch.setattr(shared_quota, "LEASE_SECONDS", -1)  # expired as soon as it is taken: a dead instance's
    dead, _ = await quota.admit(user=user, token=token, amount=60)
    monkeypatch.setattr(shared_quota, "LEASE_SECONDS", 3600)
    lease, refusal = await quota.admit(user=user, token=token, amount=60)  # frees the dead one first
    assert refusal is None and held(r, "t", 1)["res"] == 60
    # The dead request's settlement arriving late still charges, but frees no reservation it no longer has.
    await quota.settle(lease=dead, reserved=60, user=user, token=token, charge=5)
    assert held(r, "t", 1) | {"bk": ""} == {"bal": 95, "res": 60, "bs": 0, "bp": 0, "bk": ""}


async def test_budget_counts_per_period_and_restarts(quota, r):
    user, token = subjects(token_balance=10**6, budget=100, period_start=1000, period="day")
    lease, _ = await quota.admit(user=user, token=token, amount=60)
    await quota.settle(lease=lease, reserved=60, user=user, token=token, charge=50)
    refusal = (await quota.admit(user=user, token=token, amount=60))[1]
    assert (refusal.reason, refusal.kind, refusal.spent, refusal.period_start) == ("budget", "t", 50, 1000)
    user, tomorrow = subjects(token_balance=10**6, budget=100, period_start=2000, period="day")
    lease, refusal = await quota.admit(user=user, token=tomorrow, amount=60)
    assert refusal is None
    # A charge of the period before, settled late, does not count in the new one.
    await quota.settle(lease="gone", reserved=0, user=user, token=token, charge=30)
    assert held(r, "t", 1)["bs"] == 0 and held(r, "t", 1)["bp"] == 2000
    # Another kind of period is another budget: its spending starts afresh, and the old kind's charges
    # settled after the change do not count in it.
    await quota.settle(lease=lease, reserved=60, user=user, token=tomorrow, charge=40)
    user, monthly = subjects(token_balance=10**6, budget=100, period_start=1500, period="month")
    lease, refusal = await quota.admit(user=user, token=monthly, amount=100)
    assert refusal is None
    await quota.settle(lease="admitted-daily", reserved=0, user=user, token=tomorrow, charge=30)
    assert held(r, "t", 1)["bs"] == 0 and held(r, "t", 1)["bp"] == 1500
    await quota.settle(lease=lease, reserved=100, user=user, token=monthly, charge=20)
    assert held(r, "t", 1)["bs"] == 20


async def test_redis_down_falls_back_and_owes_its_charges(quota, r, settings, caplog):
    user, token = subjects(token_balance=100)
    lease, _ = await quota.admit(user=user, token=token, amount=10)  # the hash exists
    await quota.settle(lease=lease, reserved=10, user=user, token=token, charge=10)
    admitted, _ = await quota.admit(user=user, token=token, amount=5)  # a request in flight when Redis goes
    settings.REDIS_CONN_STRING = closed_port_url("redis", "/0")
    quota.forget()
    with caplog.at_level(logging.WARNING, logger="billing.shared_quota"):
        assert await quota.admit(user=user, token=token, amount=10) is None
        assert not quota.enabled()  # not tried again on every request
        quota.owe_charge(user=user, token=token, charge=7)  # settled by the ledger meanwhile
        await quota.settle(lease=admitted, reserved=5, user=user, token=token, charge=3)  # kept, sent later
    assert sum("Shared quota cannot reach Redis" in rec.message for rec in caplog.records) == 1
    settings.REDIS_CONN_STRING = URL  # Redis is back (at its address again) and the retry time has come
    quota._aclient, quota._down_until = None, 0
    with caplog.at_level(logging.WARNING, logger="billing.shared_quota"):
        assert (await quota.admit(user=user, token=token, amount=10))[1] is None
    assert "Shared quota reaches Redis again" in caplog.text
    assert held(r, "t", 1)["bal"] == 80 and held(r, "u", 1)["bal"] == 980
    assert held(r, "t", 1)["res"] == 10  # the lease of the request settled during the outage is free
    assert quota.owed == {} and quota.owed_settlements == []


@pytest.mark.django_db(transaction=True)
async def test_services_move_an_existing_shared_balance_by_what_they_wrote(quota, r, monkeypatch):
    monkeypatch.setattr(shared_quota, "shared", quota)
    monkeypatch.setattr("billing.services.shared", quota)
    monkeypatch.setattr("accounts.services.tokens.shared", quota)
    user = await sync_to_async(UserFactory)(quota=1000)
    token = await sync_to_async(TokenFactory)(user=user, remain_quota=300)
    other = await sync_to_async(UserFactory)(quota=1000)
    u, t = subjects(balance=1000, token_balance=300, user_id=user.pk, token_id=token.pk)
    lease, _ = await quota.admit(user=u, token=t, amount=100)
    await quota.settle(lease=lease, reserved=100, user=u, token=t, charge=100)  # not yet in the database

    await sync_to_async(user_topup)(user_id=user.pk, quota=50)
    codes = await sync_to_async(redemption_create_batch)(creator=None, name="gift", quota=20)
    await sync_to_async(redemption_redeem)(user_id=user.pk, key=codes[0])
    await sync_to_async(user_quota_set)(user_id=user.pk, quota=2000)  # from 1070 in the database: +930
    await sync_to_async(lambda: token_update(token=Token.objects.get(pk=token.pk), remain_quota=500))()
    assert held(r, "u", user.pk)["bal"] == 2000 - 100
    assert held(r, "t", token.pk)["bal"] == 500 - 100
    await sync_to_async(user_topup)(user_id=other.pk, quota=50)
    assert not r.exists(key("u", other.pk))  # seeded from the database (which holds the top-up) when first used


@pytest.mark.django_db(transaction=True)
async def test_a_top_up_made_while_redis_is_down_reaches_it_when_back(quota, r, settings, monkeypatch):
    monkeypatch.setattr("billing.services.shared", quota)
    user = await sync_to_async(UserFactory)(quota=1000)
    u, t = subjects(balance=1000, user_id=user.pk, token_limited=False)
    lease, _ = await quota.admit(user=u, token=t, amount=0)
    await quota.settle(lease=lease, reserved=0, user=u, token=t, charge=0)
    settings.REDIS_CONN_STRING = closed_port_url("redis", "/0")
    quota.forget()
    await sync_to_async(user_topup)(user_id=user.pk, quota=250)
    await sync_to_async(user_topup)(user_id=user.pk, quota=50)  # known down: kept without another attempt
    assert quota.owed[key("u", user.pk)][0] == 300
    settings.REDIS_CONN_STRING = URL
    quota._aclient, quota._down_until = None, 0
    assert (await quota.admit(user=u, token=t, amount=1300))[1] is None
    assert held(r, "u", user.pk)["bal"] == 1300


async def test_admission_and_settlement_are_one_round_trip_each(settings, tmp_path):
    """Counted by a Redis of the test's own: the shared one serves other tests' commands meanwhile."""
    from tests.e2e.servers import RedisServer

    if not RedisServer.available():
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path).start()
    try:
        settings.REDIS_CONN_STRING = server.url
        quota = SharedQuota()
        user, token = subjects(budget=500, period_start=1000, period="day")
        first, _ = await quota.admit(user=user, token=token, amount=10)  # loads the scripts
        await quota.settle(lease=first, reserved=10, user=user, token=token, charge=10)
        counter = redis.Redis.from_url(server.url)
        counter.config_resetstat()
        lease, _ = await quota.admit(user=user, token=token, amount=10)
        await quota.settle(lease=lease, reserved=10, user=user, token=token, charge=7)
        stats = counter.info("commandstats")
        counter.close()
        sent = {name: value["calls"] for name, value in stats.items() if name.startswith("cmdstat_")
                and value["calls"] and not name.startswith(("cmdstat_config", "cmdstat_info"))}
        assert sent.get("cmdstat_evalsha") == 2
        # Inside the scripts Redis counts their own calls too; nothing else came from the client.
        assert set(sent) - {"cmdstat_evalsha"} <= {
            "cmdstat_time", "cmdstat_hsetnx", "cmdstat_hget", "cmdstat_hset", "cmdstat_zrangebyscore",
            "cmdstat_hmget", "cmdstat_hincrby", "cmdstat_zadd", "cmdstat_expire", "cmdstat_zrem", "cmdstat_hexists"}
    finally:
        server.stop()


async def test_a_settlement_redis_missed_reaches_it_without_another_admission(quota, r, settings, monkeypatch):
    """An instance that gets no request after Redis came back still sends what it owes: else the lease would free
    the reservation after an hour and the charge never reach Redis, which other instances admit against."""
    monkeypatch.setattr(shared_quota, "RETRY_SECONDS", 0)
    user, token = subjects(token_balance=100)
    lease, _ = await quota.admit(user=user, token=token, amount=10)
    settings.REDIS_CONN_STRING = closed_port_url("redis", "/0")
    quota._aclient = None
    await quota.settle(lease=lease, reserved=10, user=user, token=token, charge=7)  # Redis away: kept
    settings.REDIS_CONN_STRING = URL  # back, at its address again
    quota._aclient = None
    await quota._replayer
    assert held(r, "t", 1)["bal"] == 93 and held(r, "t", 1)["res"] == 0
    assert held(r, "u", 1)["bal"] == 993 and r.zcard(key("u", 1) + ":leases") == 0
    assert quota.owed_settlements == []


# Redis busy for ARGV[1] microseconds after running what came before it in the same read (as a fork for BGSAVE
# delays the replies of commands it has run): a stand-in for any slow moment.
BUSY = resp.Script("local t = redis.call('TIME') local e = t[1] * 1e6 + t[2] + tonumber(ARGV[1]) "
                   "repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] >= e return 1")


async def test_a_settlement_redis_ran_is_not_charged_twice_when_another_call_times_out(quota, r):
    user, token = subjects(balance=500, token_balance=100)
    for script in (BUSY, *shared_quota.SCRIPTS.values()):  # Redis has them (no NOSCRIPT answer, no round trip)
        r.script_load(script.text)
    lease, _ = await quota.admit(user=user, token=token, amount=40)
    queued, settling = quota.settle_now(lease=lease, reserved=40, user=user, token=token, charge=25)
    assert queued  # on the open connection, before the next call
    # A rate-limit call on the same connection (relay/limits/cluster.py READ_TIMEOUT, scaled down) times out:
    with pytest.raises(redis.TimeoutError):
        await resp.client_for(URL).script(BUSY, [], [400000], timeout=0.1)
    await settling  # its own timeout (2 s) was far from over, and Redis ran it
    assert quota.owed_settlements == []
    await asyncio.sleep(0.5)
    await quota.send_owed()  # what the next admission (or the retry timer) sends
    assert held(r, "t", 1)["bal"] == 75, "the charge of 25 was taken twice"
    assert held(r, "u", 1)["bal"] == 475


async def test_a_settlement_whose_answer_was_lost_is_not_charged_again_when_replayed(quota, r, monkeypatch):
    user, token = subjects(balance=500, token_balance=100, budget=1000, period_start=1000, period="day")
    for script in (BUSY, *shared_quota.SCRIPTS.values()):
        r.script_load(script.text)
    lease, _ = await quota.admit(user=user, token=token, amount=40)
    # Redis runs the settlement, then is busy past its timeout: the answer is lost, the settlement kept.
    queued, busy = resp.client_for(URL).start([(BUSY, [], [400000])], timeout=5)
    assert queued
    monkeypatch.setattr(shared_quota, "TIMEOUT", 0.1)
    await quota.settle(lease=lease, reserved=40, user=user, token=token, charge=25)
    assert len(quota.owed_settlements) == 1
    await busy
    assert held(r, "t", 1)["bal"] == 75  # it ran
    await quota.send_owed()
    assert quota.owed_settlements == []
    assert held(r, "t", 1) | {"bk": ""} == {"bal": 75, "res": 0, "bs": 25, "bp": 1000, "bk": ""}
    assert held(r, "u", 1)["bal"] == 475 and held(r, "u", 1)["res"] == 0
    # A settlement that never reached Redis still charges when replayed: its lease is still held.
    lease, _ = await quota.admit(user=user, token=token, amount=10)
    quota._keep(*quota._settle_call(lease=lease, reserved=10, user=user, token=token, charge=5))
    await quota.send_owed()
    assert held(r, "t", 1)["bal"] == 70 and held(r, "t", 1)["bs"] == 30 and held(r, "u", 1)["bal"] == 470
