"""The user's dashboard (page and /api/user/dashboard) reads the daily roll-up, and its figures are the ones the
consume logs give: per user, day and model, in the site's days, never another user's."""

import datetime as dt
import random
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from billing import selectors, usage_errors
from billing.models import Log, UsageDaily
from billing.services import Charge, charges_apply
from tests.api_fixtures import envelope
from tests.factories import TokenFactory, UserFactory

pytestmark = pytest.mark.django_db

MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "deepseek-chat")


def _noon(zone: str) -> int:
    """2026-03-10 12:00 in `zone`: the dashboards' "now" in these tests."""
    return int(dt.datetime(2026, 3, 10, 12, tzinfo=ZoneInfo(zone)).timestamp())


def _charge(token, *, created_at: int, model: str, quota: int, prompt: int, completion: int,
            channel_id: int = 1) -> Charge:
    return Charge(user_id=token.user_id, username="u", token_id=token.pk, token_name=token.name, unlimited=False,
                  channel_id=channel_id, model_name=model, quota=quota, prompt_tokens=prompt,
                  completion_tokens=completion, request_id="r", elapsed_ms=120, is_stream=False, content="",
                  created_at=created_at, group="default")


def _traffic(now: int, *, users: int = 3, per_user: int = 400, seed: int = 13) -> list:
    """Charges of several users, tokens, channels and models over nine days up to `now` (the first two before
    the dashboard's week), written by the ledger's own write: logs and roll-up together."""
    rnd = random.Random(seed)
    owners = [UserFactory(quota=10**12) for _ in range(users)]
    tokens = [TokenFactory(user=u, remain_quota=10**12) for u in owners for _ in range(2)]
    charges = [_charge(rnd.choice(tokens), created_at=now - rnd.randrange(9 * 86_400), model=rnd.choice(MODELS),
                       quota=rnd.randrange(0, 50_000), prompt=rnd.randrange(1, 4000),
                       completion=rnd.randrange(0, 2000), channel_id=rnd.choice((1, 2, 3)))
               for _ in range(users * per_user)]
    for start in range(0, len(charges), 100):  # batches, as the ledger writes them
        charges_apply(charges[start:start + 100])
    return owners


def _from_logs(user_id: int, now: int) -> list[dict]:
    """What the dashboard showed before it read the roll-up: every figure counted from the consume logs."""
    days, midnights = selectors._dashboard_window(now)
    return selectors._dashboard_from_logs(user_id=user_id, days=days, midnights=midnights, until=None)


@pytest.mark.parametrize("zone", ["UTC", "Asia/Shanghai", "America/Los_Angeles"])
def test_each_users_figures_from_the_rollup_equal_those_of_their_logs(settings, zone):
    settings.TIME_ZONE = zone
    now = _noon(zone)
    owners = _traffic(now)
    assert UsageDaily.objects.count() and Log.objects.count() == 1200
    seen = set()
    for user in owners:
        rows = selectors.user_dashboard(user_id=user.pk, now=now)
        assert rows == _from_logs(user.pk, now)
        assert len(rows) > 7 and {r["Day"] for r in rows} <= set(selectors.dashboard_days(now=now))
        seen.add(tuple(map(tuple, (r.values() for r in rows))))
    assert len(seen) == len(owners)  # three users, three different dashboards


def test_the_dashboard_reads_the_rollup_not_the_logs():
    now = _noon("UTC")
    [user] = _traffic(now, users=1, per_user=50)
    before = selectors.user_dashboard(user_id=user.pk, now=now)
    Log.objects.all().delete()  # as retention or LogConsumeEnabled off leaves them
    assert selectors.user_dashboard(user_id=user.pk, now=now) == before != []


def test_a_user_never_sees_another_users_figures(client):
    now = _noon("UTC")
    alice, bob = _traffic(now, users=2, per_user=30)
    charges_apply([_charge(TokenFactory(user=bob), created_at=now - 60, model="bobs-private-model", quota=1,
                           prompt=1, completion=1)])
    assert not [r for r in selectors.user_dashboard(user_id=alice.pk, now=now)
                if r["ModelName"] == "bobs-private-model"]
    client.force_login(alice)
    assert "bobs-private-model" not in client.get(reverse("dashboard")).content.decode()


def test_failed_upstream_attempts_alone_are_not_usage():
    now = _noon("UTC")
    token = TokenFactory(user=UserFactory())
    usage_errors.errors.clear()
    usage_errors.errors.count(created_at=now - 60, group="default", model="only-failed", channel_id=1,
                              user_id=token.user_id, token_id=token.pk)
    usage_errors.errors.flush()
    charges_apply([_charge(token, created_at=now - 60, model="gpt-4o", quota=7, prompt=3, completion=2)])
    rows = selectors.user_dashboard(user_id=token.user_id, now=now)
    assert [(r["ModelName"], r["RequestCount"], r["Quota"]) for r in rows] == [("gpt-4o", 1, 7)]


def test_days_before_the_rollup_existed_are_counted_from_the_logs():
    """A site upgraded three days ago and never backfilled: its older days come from the logs, once each."""
    now = _noon("UTC")
    token = TokenFactory(user=UserFactory(quota=10**9), remain_quota=10**9)
    for days_ago in (5, 4, 3):  # written by the version before the roll-up: a log and no roll-up row
        Log.objects.create(user_id=token.user_id, type=Log.Type.CONSUME, model_name="old", quota=days_ago,
                           prompt_tokens=1, completion_tokens=1, created_at=now - days_ago * 86_400)
    charges_apply([_charge(token, created_at=now - days_ago * 86_400, model="new", quota=10 + days_ago, prompt=2,
                           completion=3) for days_ago in (2, 1, 0)])
    rows = selectors.user_dashboard(user_id=token.user_id, now=now)
    assert rows == _from_logs(token.user_id, now)
    assert [(r["Day"][-2:], r["ModelName"], r["Quota"]) for r in rows] == [
        ("05", "old", 5), ("06", "old", 4), ("07", "old", 3), ("08", "new", 12), ("09", "new", 11),
        ("10", "new", 10)]


def test_the_api_answers_one_apis_shape_from_the_rollup(alice_api, alice):
    token = TokenFactory(user=alice, remain_quota=10**9)
    now = int(dt.datetime.now(dt.UTC).timestamp())
    charges_apply([_charge(token, created_at=now - 5, model="gpt-4o", quota=100, prompt=10, completion=5),
                   _charge(token, created_at=now - 5, model="gpt-4o", quota=50, prompt=10, completion=5)])
    Log.objects.all().delete()
    rows = envelope(alice_api.get("/api/user/dashboard"))
    assert len(rows) == 1
    assert rows[0] == {"Day": rows[0]["Day"], "ModelName": "gpt-4o", "RequestCount": 2, "Quota": 150,
                       "PromptTokens": 20, "CompletionTokens": 10}
    assert len(rows[0]["Day"]) == 10
