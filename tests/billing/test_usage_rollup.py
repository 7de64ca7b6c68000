"""The daily roll-up (billing/rollup.py): written by the ledger with its charges, exact under concurrent writers,
counted in the site's days, and rebuilt from the logs by rollup_logs."""

import datetime as dt
import random
import threading

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.db import close_old_connections, connection
from django.db.models import Count, Sum

from billing import rollup as rollup_module
from billing import usage_errors
from billing.models import Log, UsageDaily
from billing.services import Charge, charges_apply, option_set
from tests.factories import TokenFactory, UserFactory
from tests.helpers import flush

pytestmark = pytest.mark.django_db(transaction=True)

# 2026-03-10 00:00 UTC; 23:30 the day before in New York is 03:30 UTC that day.
MAR10 = 1_773_100_800


def charge(token, *, quota=10, created_at=MAR10, model="m", channel_id=1, group="default", **extra) -> Charge:
    return Charge(user_id=token.user_id, username="u", token_id=token.pk, token_name=token.name, unlimited=False,
                  channel_id=channel_id, model_name=model, quota=quota, prompt_tokens=100, completion_tokens=5,
                  request_id="r", elapsed_ms=200, is_stream=False, content="", created_at=created_at,
                  group=group, **extra)


def rollup() -> dict:
    return {(r.day.isoformat(), r.group, r.model_name, r.channel_id, r.user_id, r.token_id):
            (r.requests, r.quota, r.prompt_tokens, r.completion_tokens, r.cached_tokens, r.elapsed_ms, r.errors)
            for r in UsageDaily.objects.all()}


def test_a_batch_is_summed_per_day_model_channel_and_group_and_the_next_adds_to_it():
    token = TokenFactory(user=UserFactory(quota=10**6), remain_quota=10**6)
    u, t = token.user_id, token.pk
    charges_apply([charge(token), charge(token, quota=5, cached_tokens=30), charge(token, model="other"),
                   charge(token, channel_id=2, group="vip"), charge(token, created_at=MAR10 + 86_400)])
    charges_apply([charge(token, quota=1)])
    assert rollup() == {
        ("2026-03-10", "default", "m", 1, u, t): (3, 16, 300, 15, 30, 600, 0),
        ("2026-03-10", "default", "other", 1, u, t): (1, 10, 100, 5, 0, 200, 0),
        ("2026-03-10", "vip", "m", 2, u, t): (1, 10, 100, 5, 0, 200, 0),
        ("2026-03-11", "default", "m", 1, u, t): (1, 10, 100, 5, 0, 200, 0),
    }


def test_days_are_the_sites_local_days(settings):
    settings.TIME_ZONE = "America/New_York"
    token = TokenFactory(user=UserFactory(quota=10**6), remain_quota=10**6)
    charges_apply([charge(token, created_at=MAR10 + 3 * 3600), charge(token, created_at=MAR10 + 6 * 3600)])
    assert sorted(day for day, *_ in rollup()) == ["2026-03-09", "2026-03-10"]


def test_the_rollup_is_written_when_consume_logs_are_off():
    option_set(key="LogConsumeEnabled", value="false")
    token = TokenFactory(user=UserFactory(quota=10**6), remain_quota=10**6)
    charges_apply([charge(token), charge(token)])
    assert not Log.objects.exists()
    assert [v[0] for v in rollup().values()] == [2]


def test_the_rollup_commits_with_the_charges_or_not_at_all(monkeypatch):
    token = TokenFactory(user=UserFactory(quota=10**6), remain_quota=10**6)

    def refused(rows, cursor):
        raise RuntimeError("refused")

    monkeypatch.setattr(rollup_module, "rollup_add", refused)
    with pytest.raises(RuntimeError):
        charges_apply([charge(token)])
    token.user.refresh_from_db()
    assert (token.user.quota, Log.objects.count()) == (10**6, 0)


def test_concurrent_writers_sum_exactly():
    """Eight writers (as eight instances) add to the same rows at once; the roll-up matches the logs."""
    tokens = [TokenFactory(user=UserFactory(quota=10**9), remain_quota=10**8) for _ in range(3)]
    errors = []

    def writer(seed):
        rng = random.Random(seed)
        try:
            for _batch in range(8):
                charges_apply([charge(rng.choice(tokens), quota=rng.randint(1, 1000), model=rng.choice("ab"),
                                      created_at=MAR10 + rng.choice((0, 86_400))) for _ in range(15)])
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    close_old_connections()
    assert not errors
    totals = UsageDaily.objects.aggregate(n=Sum("requests"), q=Sum("quota"))
    logs = Log.objects.filter(type=Log.Type.CONSUME).aggregate(n=Count("id"), q=Sum("quota"))
    assert (totals["n"], totals["q"]) == (logs["n"], logs["q"]) == (8 * 8 * 15, logs["q"])
    per_model = dict(UsageDaily.objects.values_list("model_name").annotate(Sum("quota")))
    assert per_model == dict(Log.objects.values_list("model_name").annotate(Sum("quota")))


async def test_a_relayed_request_lands_in_the_rollup_under_its_users_group(relay_client, world):
    client = relay_client
    response = await client.post("/v1/chat/completions", headers={"Authorization": f"Bearer sk-{world.token.key}"},
                                 json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200, response.text
    await flush()
    row = await sync_to_async(UsageDaily.objects.get)()
    log = await sync_to_async(Log.objects.get)(type=Log.Type.CONSUME)
    assert (row.group, row.model_name, row.channel_id, row.user_id, row.token_id) == (
        world.user.group, "gpt-4o-mini", world.channel.pk, world.user.pk, world.token.pk)
    assert (row.requests, row.quota, row.prompt_tokens, row.completion_tokens) == (
        1, log.quota, log.prompt_tokens, log.completion_tokens)


def test_rollup_logs_rebuilds_the_days_asked_from_the_consume_logs():
    user = UserFactory(group="vip")
    Log.objects.bulk_create(
        [Log(type=Log.Type.CONSUME, user_id=user.pk, token_id=7, channel_id=3, model_name="m", quota=q,
             prompt_tokens=10, completion_tokens=2, cached_tokens=1, elapsed_time=50, created_at=MAR10 + q)
         for q in range(1, 6)]
        + [Log(type=Log.Type.CONSUME, user_id=user.pk, model_name="m", quota=100, created_at=MAR10 + 86_400),
           Log(type=Log.Type.TOPUP, user_id=user.pk, quota=1000, created_at=MAR10)])
    # A stale row for a day rebuilt goes; a row for a day outside the range stays.
    UsageDaily.objects.create(day=dt.date(2026, 3, 10), model_name="stale", requests=9)
    UsageDaily.objects.create(day=dt.date(2026, 3, 9), model_name="kept", requests=9)
    call_command("rollup_logs", "--since", "2026-03-10", "--until", "2026-03-11", stdout=open("/dev/null", "w"))
    assert rollup() == {
        ("2026-03-09", "", "kept", 0, 0, 0): (9, 0, 0, 0, 0, 0, 0),
        ("2026-03-10", "vip", "m", 3, user.pk, 7): (5, 15, 50, 10, 5, 250, 0),
    }


async def test_a_failed_upstream_attempt_is_counted_as_an_error_not_a_request(relay_client, world):
    world.upstream.then(status=500, error={"error": {"message": "boom"}})
    response = await relay_client.post(
        "/v1/chat/completions", headers={"Authorization": f"Bearer sk-{world.token.key}"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code >= 500
    assert await sync_to_async(usage_errors.errors.flush)() == 1
    row = await sync_to_async(UsageDaily.objects.get)()
    assert (row.channel_id, row.model_name, row.user_id, row.errors, row.requests, row.quota) == (
        world.channel.pk, "gpt-4o-mini", world.user.pk, 1, 0, 0)


def test_error_counts_add_to_the_days_row_and_survive_a_failed_flush(monkeypatch):
    token = TokenFactory(user=UserFactory(quota=10**6), remain_quota=10**6)
    charges_apply([charge(token)])
    counter = usage_errors.ErrorCounter()
    for _ in range(3):
        counter.count(created_at=MAR10, group="default", model="m", channel_id=1, user_id=token.user_id,
                      token_id=token.pk)

    def down(rows, cursor):
        raise RuntimeError("database down")

    monkeypatch.setattr(rollup_module, "rollup_add", down)
    with pytest.raises(RuntimeError):
        counter.flush()
    monkeypatch.undo()
    assert counter.flush() == 3
    assert list(rollup().values()) == [(1, 10, 100, 5, 0, 200, 3)]
