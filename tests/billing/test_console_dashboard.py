"""The operator dashboard on the console's front page (billing/console_dashboard.py)."""

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing import rollup, usage_errors
from billing.ledger import ledger
from billing.models import Log, UsageDaily
from billing.services import Charge, charges_apply
from oneapi_site.lib.timeutil import now_ts
from providers import health
from providers.models import Channel
from tests.factories import ChannelFactory, TokenFactory, UserFactory

INDEX = reverse("admin:index")


def charge(token, channel, *, model, quota, group="default", created_at=None, elapsed_ms=100):
    return Charge(user_id=token.user_id, username=token.user.username, token_id=token.pk, token_name=token.name,
                  unlimited=False, channel_id=channel.pk, model_name=model, quota=quota, prompt_tokens=10,
                  completion_tokens=5, request_id="r", elapsed_ms=elapsed_ms, is_stream=False, content="",
                  created_at=created_at or now_ts(), group=group)


@pytest.fixture
def usage(db):
    big = TokenFactory(user=UserFactory(username="bigspender", quota=10**9), name="big-key", remain_quota=10**9)
    small = TokenFactory(user=UserFactory(username="smallfry", quota=10**9), name="small-key", remain_quota=10**9)
    fast = ChannelFactory(name="fast-one")
    slow = ChannelFactory(name="slow-one")
    charges_apply([charge(big, fast, model="gpt-4o", quota=5000, elapsed_ms=100),
                   charge(big, slow, model="claude-3", quota=3000, group="vip", elapsed_ms=9000),
                   charge(small, fast, model="gpt-4o", quota=10, elapsed_ms=300),
                   # Eight days ago: in the 30-day view, not the 7-day one.
                   charge(small, fast, model="old-model", quota=7, created_at=now_ts() - 8 * 86_400)])
    return {"big": big, "small": small, "fast": fast, "slow": slow}


def test_front_page_shows_usage_by_model_top_users_and_tokens_and_slowest_channels(root_client, usage):
    page = root_client.get(INDEX).content.decode()
    assert 'data-testid="operator-dashboard"' in page
    chart = page[page.index('data-testid="operator-chart"'):page.index("</svg>", page.index('operator-chart"'))]
    assert sorted(re.findall(r'data-model="([^"]+)"', chart)) == ["claude-3", "gpt-4o"]
    assert sorted(int(q) for q in re.findall(r'data-quota="(\d+)"', chart)) == [3000, 5010]
    top_users = page[page.index('operator-top-users'):page.index('operator-top-tokens')]
    assert top_users.index("bigspender") < top_users.index("smallfry")
    assert "big-key" in page[page.index('operator-top-tokens'):]
    slow = page[page.index('operator-channels-slow'):page.index('operator-ledger')]
    assert slow.index("slow-one") < slow.index("fast-one")
    assert ">9000<" in slow and ">200<" in slow   # mean of 100 and 300 ms


def test_thirty_days_and_other_dimensions_and_measures(root_client, usage):
    page = root_client.get(INDEX, {"days": "30", "by": "model"}).content.decode()
    assert 'data-model="old-model"' in page
    page = root_client.get(INDEX, {"by": "group", "measure": "requests"}).content.decode()
    assert sorted(re.findall(r'data-model="([^"]+)"', page)) == ["default", "vip"]
    assert sorted(re.findall(r'data-quota="(\d+)"', page)) == ["1", "2"]
    page = root_client.get(INDEX, {"by": "channel"}).content.decode()
    assert f'data-model="#{usage["slow"].pk} slow-one"' in page


def test_unknown_choices_fall_back_to_the_defaults(root_client, usage):
    response = root_client.get(INDEX, {"days": "9999", "by": "password", "measure": "'; drop"})
    assert response.status_code == 200
    assert 'data-model="gpt-4o"' in response.content.decode()


def test_channels_that_are_down_or_failing_are_listed(root_client, usage):
    Channel.objects.filter(pk=usage["slow"].pk).update(status=Channel.Status.AUTO_DISABLED)
    health.failures.failed(usage["fast"].pk)
    health.failures.failed(usage["fast"].pk)
    try:
        page = root_client.get(INDEX).content.decode()
    finally:
        health.failures.succeeded(usage["fast"].pk)
    down = page[page.index("operator-channels-down"):page.index("operator-channels-slow")]
    assert "slow-one" in down and "fast-one" in down
    assert re.search(r"fast-one</a></td>\s*<td>[^<]*</td><td class=\"num\">2<", down)


def test_ledger_state_is_shown(root_client, db):
    ledger.parked_count, saved = 3, ledger.parked_count
    try:
        page = root_client.get(INDEX).content.decode()
    finally:
        ledger.parked_count = saved
    assert re.search(r'data-testid="ledger-parked">3<', page)


def test_the_page_reads_the_rollup_never_the_logs(root_client, usage):
    Log.objects.bulk_create([Log(type=Log.Type.CONSUME, user_id=1, model_name="m", quota=1) for _ in range(50)])
    with CaptureQueriesContext(connection) as queries:
        assert root_client.get(INDEX, {"days": "30"}).status_code == 200
    sql = " ".join(q["sql"] for q in queries.captured_queries)
    assert UsageDaily._meta.db_table in sql
    assert not re.search(rf'\b{Log._meta.db_table}\b(?!_)', sql.replace('"', " ").replace("`", " "))


def test_admins_see_the_dashboard_and_common_users_no_console(staff_client, common_client, usage):
    assert 'data-testid="operator-dashboard"' in staff_client.get(INDEX).content.decode()
    response = common_client.get(INDEX)
    assert response.status_code == 302 and "operator-dashboard" not in response.content.decode()


def test_days_in_the_rollup_follow_the_chart_days(settings):
    settings.TIME_ZONE = "Asia/Kolkata"
    assert rollup.local_day(1_773_100_800 - 5 * 3600 - 1800) == dt.date(2026, 3, 10)
    assert rollup.local_day(1_773_100_800 - 5 * 3600 - 1801) == dt.date(2026, 3, 9)


def test_failed_attempts_show_per_day_and_as_the_channels_error_rate(root_client, usage):
    counter = usage_errors.ErrorCounter()
    for _ in range(2):
        counter.count(created_at=now_ts(), group="default", model="gpt-4o", channel_id=usage["slow"].pk,
                      user_id=usage["big"].user_id, token_id=usage["big"].pk)
    counter.flush()
    page = root_client.get(INDEX).content.decode()
    assert re.search(r'data-testid="operator-errors-total">2<', page)
    erring = page[page.index("operator-channels-erring"):page.index("operator-channels-slow")]
    # slow-one answered 1 request and failed 2 attempts: 2 of 3.
    assert "slow-one" in erring and "66.7%" in erring and "fast-one" not in erring
    page = root_client.get(INDEX, {"measure": "errors"}).content.decode()
    assert re.findall(r'data-quota="(\d+)"', page) == ["2"]


def test_a_channels_failures_in_a_row_are_its_worst_keys_when_keys_are_counted_apart():
    counter = health.FailureCounter()
    for subject in (7, (8, 0), (8, 1), (8, 1), (8, 1)):
        counter.failed(subject)
    assert counter.snapshot() == {7: 1, 8: 3}
