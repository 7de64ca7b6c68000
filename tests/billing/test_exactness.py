"""After any mix of concurrent, failed, retried and cancelled requests, quotas match the consume logs exactly."""

import asyncio
import random
import threading

import pytest
from asgiref.sync import sync_to_async
from django.db import close_old_connections, connection
from django.db.models import Count, Sum

from accounts.models import Token, User
from billing import pricing
from billing.models import Log
from billing.services import Charge, charges_apply, option_set
from tests.factories import ChannelFactory, TokenFactory, UserFactory
from tests.helpers import flush
from tests.mock_upstream import MockUpstream

pytestmark = pytest.mark.django_db(transaction=True)


def snapshot():
    users = {u.pk: (u.quota + u.used_quota, u.used_quota, u.request_count) for u in User.objects.all()}
    tokens = {t.pk: (t.remain_quota + t.used_quota, t.used_quota, t.unlimited_quota) for t in Token.objects.all()}
    return users, tokens


def assert_ledger_matches_logs(before):
    users_before, tokens_before = before
    users_after, tokens_after = snapshot()
    logs = Log.objects.filter(type=Log.Type.CONSUME)
    by_user = {r["user_id"]: (r["q"], r["n"]) for r in logs.values("user_id").annotate(q=Sum("quota"), n=Count("id"))}
    by_token = {r["token_id"]: r["q"] for r in logs.values("token_id").annotate(q=Sum("quota"))}
    for user_id, (total, used, count) in users_after.items():
        spent, requests = by_user.get(user_id, (0, 0))
        assert total == users_before[user_id][0], f"user {user_id}: quota + used moved"
        assert used - users_before[user_id][1] == spent, f"user {user_id}: used differs from its logs"
        assert count - users_before[user_id][2] == requests, f"user {user_id}: request_count differs"
    for token_id, (total, used, unlimited) in tokens_after.items():
        assert total == tokens_before[token_id][0], f"token {token_id}: remain + used moved"
        expected = 0 if unlimited else by_token.get(token_id, 0)
        assert used - tokens_before[token_id][1] == expected, f"token {token_id}: used differs from its logs"


def test_concurrent_batches_from_many_writers_lose_nothing():
    """Eight writers (as eight instances would) apply overlapping charges at once."""
    users = [UserFactory(quota=10**9) for _ in range(3)]
    tokens = [TokenFactory(user=u, remain_quota=10**8) for u in users for _ in range(2)]
    before = snapshot()
    errors = []
    cached_each: list[int] = []  # every charge's cached tokens (list.append is atomic)

    def writer(seed):
        rng = random.Random(seed)
        try:
            for batch in range(10):
                charges = []
                for i in range(20):
                    token = rng.choice(tokens)
                    cached = rng.randint(0, 50)
                    charges.append(Charge(
                        user_id=token.user_id, username="u", token_id=token.pk, token_name=token.name,
                        unlimited=False, channel_id=0, model_name="m", quota=rng.randint(1, 1000),
                        prompt_tokens=100, completion_tokens=1, request_id=f"{seed}-{batch}-{i}", elapsed_ms=1,
                        is_stream=False, content="", created_at=0, cached_tokens=cached,
                        cache_write_tokens=50 - cached, cache_write_1h_tokens=(50 - cached) // 2, reasoning_tokens=1))
                    cached_each.append(cached)
                charges_apply(charges)
        except Exception as exc:  # surfaced below; a thread cannot fail the test itself
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    close_old_connections()
    assert not errors, errors
    assert Log.objects.filter(type=Log.Type.CONSUME).count() == 8 * 10 * 20
    assert_ledger_matches_logs(before)
    sums = Log.objects.aggregate(cached=Sum("cached_tokens"), written=Sum("cache_write_tokens"),
                                 reasoning=Sum("reasoning_tokens"))
    assert sums == {"cached": sum(cached_each), "written": 8 * 10 * 20 * 50 - sum(cached_each),
                    "reasoning": 8 * 10 * 20}


@pytest.fixture
def backup_upstream():
    server = MockUpstream().start()
    yield server
    server.stop()


async def test_mixed_concurrent_requests_through_the_relay_charge_exactly(relay_client, upstream, backup_upstream):
    def setup():
        option_set(key="RetryTimes", value="1")
        owners = [UserFactory(quota=50_000_000) for _ in range(3)]
        tokens = [TokenFactory(user=owners[0], remain_quota=2_000_000),
                  TokenFactory(user=owners[1], remain_quota=2_000_000),
                  TokenFactory(user=owners[2], unlimited_quota=True),
                  TokenFactory(user=owners[0], remain_quota=3_000)]  # runs dry part-way
        ChannelFactory(name="main", base_url=upstream.url, models="gpt-4o-mini")
        ChannelFactory(name="backup", base_url=backup_upstream.url, models="gpt-4o-mini")
        return tokens

    tokens = await sync_to_async(setup)()
    before = await sync_to_async(snapshot)()
    rng = random.Random(7)
    for server in (upstream, backup_upstream):
        for _ in range(200):
            kind = rng.random()
            if kind < 0.15:
                server.then(status=500)
            elif kind < 0.25:
                server.then(status=429)
            elif kind < 0.35:
                server.then(usage=False, reply="no usage given " * 5)
            elif kind < 0.45:
                server.then(chunk_delay=0.01, reply="slow " * 30)
            elif kind < 0.7:
                prompt = rng.randint(1, 500)
                details = {"prompt_tokens_details": {"cached_tokens": rng.randint(0, prompt)},
                           "completion_tokens_details": {"reasoning_tokens": rng.randint(0, 100)}}
                server.then(prompt_tokens=prompt, completion_tokens=rng.randint(100, 500), usage_extra=details)
            else:
                server.then(prompt_tokens=rng.randint(1, 500), completion_tokens=rng.randint(1, 500))

    async def one(i):
        token = tokens[i % len(tokens)]
        body = {"model": "gpt-4o-mini", "stream": i % 3 == 0, "messages": [{"role": "user", "content": f"req {i}"}]}
        call = relay_client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer sk-{token.key}"})
        try:
            if i % 10 == 5:  # a client that gives up early
                return (await asyncio.wait_for(call, 0.05)).status_code
            response = await call
            return response.status_code if response.status_code == 200 else (response.status_code, response.text[:160])
        except TimeoutError:
            return "cancelled"

    results = await asyncio.gather(*(one(i) for i in range(120)))
    assert results.count(200) > 40, [r for r in results if r != 200][:3]
    await asyncio.sleep(0.2)
    await flush()
    await sync_to_async(assert_ledger_matches_logs)(before)
    await sync_to_async(assert_cached_bills_follow_the_formula)()


def assert_cached_bills_follow_the_formula():
    """Each bill with cache hits is the formula's, to the unit: nothing rounded twice, nothing lost between
    the relay's bill, the ledger and the log."""
    quote = pricing.quote(pricing.Order(mode="chat", model="gpt-4o-mini", group="default"), channel_type=1)
    cached = Log.objects.filter(type=Log.Type.CONSUME, cached_tokens__gt=0)
    assert cached.exists()
    for log in cached:
        assert log.quota == pricing.charge(quote, pricing.Tokens(
            prompt=log.prompt_tokens, completion=log.completion_tokens, cached=log.cached_tokens)), log.pk
        assert "cache read ratio 0.5" in log.content


def test_a_token_that_runs_dry_is_marked_exhausted():
    token = TokenFactory(remain_quota=100)
    charges_apply([Charge(user_id=token.user_id, username="u", token_id=token.pk, token_name="t", unlimited=False,
                          channel_id=0, model_name="m", quota=150, prompt_tokens=1, completion_tokens=1,
                          request_id="r", elapsed_ms=1, is_stream=False, content="", created_at=0)])
    token.refresh_from_db()
    assert (token.remain_quota, token.used_quota, token.status) == (-50, 150, Token.Status.EXHAUSTED)
