"""Budgets that reset: a token's or user's spending per day, week or month in TZ, refused with 429 until the next
period. Each test runs against the ledger in this process and, when REDIS_CONN_STRING is set, against Redis."""

import os
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import redis
from asgiref.sync import sync_to_async

from accounts.models import Token, User
from billing import money
from billing.shared_quota import key
from relay import admission
from relay.cache import cache
from tests.conftest import shared_quota_clear
from tests.factories import TokenFactory
from tests.helpers import consume_logs, flush
from tests.mock_upstream import Behaviour

pytestmark = pytest.mark.django_db(transaction=True)

ZONE = "Asia/Shanghai"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(ZONE)).timestamp())


@pytest.fixture(params=["process", "redis"])
def store(request, settings):
    """Where admission happens: this process's ledger, or Redis shared by all instances."""
    settings.TIME_ZONE = ZONE
    if request.param == "redis":
        url = os.environ.get("REDIS_CONN_STRING", "")
        if not url:
            pytest.skip("needs REDIS_CONN_STRING")
        settings.REDIS_CONN_STRING = url
        shared_quota_clear()
    else:
        settings.REDIS_CONN_STRING = ""
    return request.param


class Clock:
    def __init__(self, monkeypatch, start: int):
        self.now = start
        monkeypatch.setattr(admission, "now", lambda: self.now)


@pytest.fixture
def reserves(monkeypatch):
    """The amount each admitted or refused request asked to hold."""
    seen: list[int] = []
    real = admission.hold

    async def spy(caller, amount):
        seen.append(amount)
        return await real(caller, amount)

    monkeypatch.setattr(admission, "hold", spy)
    return seen


async def post(client, token, body=CHAT):
    return await client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer sk-{token.key}"})


async def one_request_cost(client, world, reserves) -> tuple[int, int]:
    """(reservation, charge) of CHAT, measured on a key without a budget."""
    probe = await sync_to_async(TokenFactory)(user=world.user, remain_quota=10**9)
    assert (await post(client, probe)).status_code == 200
    logs = await consume_logs()
    return reserves[-1], logs[-1].quota


async def test_token_budget_refuses_until_the_next_day(client, world, store, monkeypatch, reserves):
    clock = Clock(monkeypatch, at("2026-03-10T23:00:00"))
    reserve, charge = await one_request_cost(client, world, reserves)
    assert 0 < charge <= reserve
    budget = charge + reserve - 1  # room for one request's reservation, then not for another on top of its charge
    token = await sync_to_async(TokenFactory)(user=world.user, remain_quota=10**9, budget_quota=budget,
                                              budget_period="day")

    assert (await post(client, token)).status_code == 200
    refused = await post(client, token)
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert error["code"] == "budget_exceeded"
    # Not all of it is spent: what is left is less than this request may cost.
    assert (f"This API key's daily budget of {money.usd_text(budget)} has too little left for this request, "
            f"which may cost up to {money.usd_text(reserve)}") in error["message"]
    assert f"resets at 2026-03-11 00:00:00 ({ZONE})" in error["message"]
    assert refused.headers["retry-after"] == "3600"
    assert refused.headers["x-should-retry"] == "false"  # the openai SDK retries within seconds otherwise
    assert len(world.upstream.requests) == 2  # the probe and the one admitted

    clock.now = at("2026-03-11T00:00:01")
    admitted = await post(client, token)
    assert admitted.status_code == 200, admitted.text
    await flush()
    row = await sync_to_async(Token.objects.values("budget_spent", "budget_period_start").get)(pk=token.pk)
    assert row == {"budget_spent": charge, "budget_period_start": at("2026-03-11T00:00:00")}
    logs = await consume_logs()
    assert sum(log.quota for log in logs if log.token_id == token.pk) == 2 * charge
    if store == "redis":
        shared = redis.Redis.from_url(os.environ["REDIS_CONN_STRING"])
        held = shared.hgetall(key("t", token.pk))
        assert int(held[b"bs"]) == charge and int(held[b"bp"]) == at("2026-03-11T00:00:00")
        assert int(held[b"res"]) == 0


async def test_user_budget_names_the_account_and_its_month(client, world, store, monkeypatch, reserves):
    Clock(monkeypatch, at("2026-02-27T12:00:00"))
    reserve, charge = await one_request_cost(client, world, reserves)
    # A budget set now counts from now: the probe above was spent before there was one.
    await sync_to_async(User.objects.filter(pk=world.user.pk).update)(
        budget_quota=charge + reserve - 1, budget_period="month")
    cache.clear()
    assert (await post(client, world.token)).status_code == 200
    refused = await post(client, world.token)
    assert refused.status_code == 429, refused.text
    message = refused.json()["error"]["message"]
    assert "Your account's monthly budget of" in message
    assert f"resets at 2026-03-01 00:00:00 ({ZONE})" in message
    assert refused.headers["retry-after"] == str(at("2026-03-01T00:00:00") - at("2026-02-27T12:00:00"))


async def test_budget_counts_every_token_of_the_user(client, world, store, monkeypatch, reserves):
    clock = Clock(monkeypatch, at("2026-03-10T09:00:00"))
    reserve, charge = await one_request_cost(client, world, reserves)
    await sync_to_async(User.objects.filter(pk=world.user.pk).update)(
        budget_quota=2 * charge + reserve - 1, budget_period="week")
    cache.clear()
    first = await sync_to_async(TokenFactory)(user=world.user, remain_quota=10**9)
    second = await sync_to_async(TokenFactory)(user=world.user, remain_quota=10**9)
    assert (await post(client, first)).status_code == 200
    assert (await post(client, second)).status_code == 200
    refused = await post(client, first)
    assert refused.status_code == 429
    assert "weekly" in refused.json()["error"]["message"]
    assert "resets at 2026-03-16 00:00:00" in refused.json()["error"]["message"]  # the next Monday
    clock.now = at("2026-03-16T00:00:00")
    assert (await post(client, second)).status_code == 200
    await flush()
    row = await sync_to_async(User.objects.values("budget_spent", "budget_period_start").get)(pk=world.user.pk)
    assert row == {"budget_spent": charge, "budget_period_start": at("2026-03-16T00:00:00")}


async def test_failed_request_gives_its_budget_reservation_back(client, world, store, monkeypatch, reserves):
    Clock(monkeypatch, at("2026-03-10T09:00:00"))
    reserve, charge = await one_request_cost(client, world, reserves)
    token = await sync_to_async(TokenFactory)(user=world.user, remain_quota=10**9, budget_quota=reserve,
                                              budget_period="day")
    world.upstream.default = Behaviour(status=400, error={"error": {"message": "bad", "type": "invalid_request_error"}})
    assert (await post(client, token)).status_code == 400
    world.upstream.default = Behaviour()
    await flush()
    # Nothing was spent and nothing stays held: the whole budget admits one request again.
    assert (await post(client, token)).status_code == 200


async def test_a_key_another_instance_used_up_is_refused_as_used_up(client, world, store):
    """This instance's cache still holds the key's balance; the shared one (Redis) knows it is spent."""
    if store != "redis":
        pytest.skip("one instance alone knows what it spent")
    assert (await post(client, world.token)).status_code == 200  # cached here, and seeded in Redis
    await flush()
    shared = redis.Redis.from_url(os.environ["REDIS_CONN_STRING"])
    shared.hset(key("t", world.token.pk), "bal", 0)  # as another instance's charges would leave it
    shared.close()
    refused = await post(client, world.token)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "token_quota_exhausted"


async def test_requests_keep_flowing_while_redis_is_down(client, world, settings, caplog):
    from tests.e2e.servers import closed_port_url

    settings.REDIS_CONN_STRING = closed_port_url("redis", "/0")
    with caplog.at_level("WARNING", logger="billing.shared_quota"):
        codes = [(await post(client, world.token)).status_code for _ in range(3)]
    assert codes == [200] * 3
    assert sum("Shared quota cannot reach Redis" in r.message for r in caplog.records) == 1
    logs = await consume_logs()
    token = await sync_to_async(Token.objects.get)(pk=world.token.pk)
    assert world.token.remain_quota - token.remain_quota == sum(log.quota for log in logs) > 0


async def test_a_claude_client_gets_the_budget_refusal_in_anthropics_shape(client, world, store, monkeypatch):
    Clock(monkeypatch, at("2026-03-10T23:30:00"))
    token = await sync_to_async(TokenFactory)(user=world.user, remain_quota=10**9, budget_quota=1,
                                              budget_period="day")
    refused = await client.post("/v1/messages", headers={"x-api-key": f"sk-{token.key}"}, json={
        "model": "gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]})
    assert refused.status_code == 429, refused.text
    assert refused.json()["type"] == "error"
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert "daily budget" in refused.json()["error"]["message"]
    assert refused.headers["retry-after"] == "1800"
    assert world.upstream.requests == []


async def test_a_request_that_alone_may_cost_more_than_the_budget_is_told_so(client, world, store, monkeypatch):
    Clock(monkeypatch, at("2026-03-10T23:30:00"))
    token = await sync_to_async(TokenFactory)(user=world.user, remain_quota=10**9, budget_quota=100,
                                              budget_period="day")
    refused = await post(client, token, {**CHAT, "max_tokens": 10_000})
    assert refused.status_code == 429, refused.text
    message = refused.json()["error"]["message"]
    assert "more than this API key's daily budget of" in message and "lower max_tokens" in message
    assert "is spent" not in message  # nothing is
    assert world.upstream.requests == []
