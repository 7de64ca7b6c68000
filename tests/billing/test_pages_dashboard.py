"""The dashboard page and the geometry of its usage chart."""

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse

from accounts.models import User
from billing.models import Log
from billing.pages import chart
from billing.selectors import dashboard_days, user_dashboard
from oneapi_site.lib.timeutil import now_ts
from tests.factories import UserFactory

DAYS = ["2025-05-01", "2025-05-02", "2025-05-03"]


def row(day, model, quota, requests=1):
    return {"Day": day, "ModelName": model, "RequestCount": requests, "Quota": quota,
            "PromptTokens": 0, "CompletionTokens": 0}


# --- chart geometry (no database) -------------------------------------------------

def test_bar_heights_are_proportional_to_quota():
    c = chart.usage_chart([row(DAYS[0], "a", 100), row(DAYS[1], "a", 50)], days=DAYS)
    first, second = c.bars
    assert first.height == pytest.approx(2 * second.height, abs=0.02)
    plot = c.plot_bottom - c.plot_top
    # The axis top is a round number at or above the tallest day: 100 exactly here.
    assert first.height == pytest.approx(plot)
    assert first.y + first.height == pytest.approx(c.plot_bottom)


def test_models_of_a_day_stack_on_each_other():
    c = chart.usage_chart([row(DAYS[0], "a", 30), row(DAYS[0], "b", 10)], days=DAYS)
    a, b = c.bars
    assert (a.model, b.model) == ("a", "b")
    assert a.x == b.x
    assert b.y + b.height == pytest.approx(a.y, abs=0.02)
    assert a.height == pytest.approx(3 * b.height, abs=0.02)


def test_each_model_keeps_one_colour_and_has_a_legend_entry():
    c = chart.usage_chart([row(DAYS[0], "b", 5), row(DAYS[1], "a", 5), row(DAYS[2], "b", 5)], days=DAYS)
    colours = {}
    for bar in c.bars:
        colours.setdefault(bar.model, set()).add(bar.color)
    assert all(len(v) == 1 for v in colours.values())
    assert colours["a"] != colours["b"]
    assert [m for m, _ in c.legend] == ["a", "b"]


def test_every_day_gets_a_label_even_without_usage():
    c = chart.usage_chart([row(DAYS[1], "a", 5)], days=DAYS)
    assert [d.label for d in c.days] == ["05-01", "05-02", "05-03"]
    assert c.days[0].x < c.days[1].x < c.days[2].x
    assert c.bars[0].x < c.days[1].x < c.bars[0].x + c.bars[0].width


def test_no_usage_gives_an_empty_chart():
    assert chart.usage_chart([], days=DAYS).empty
    assert chart.usage_chart([row(DAYS[0], "free-model", 0, requests=3)], days=DAYS).empty
    assert chart.usage_chart([row("2024-01-01", "a", 5)], days=DAYS).empty
    assert not chart.usage_chart([row(DAYS[0], "a", 1)], days=DAYS).empty


def test_ticks_are_round_in_the_display_unit():
    # 600,000 quota at 500,000 quota per US$ = $1.2: the axis tops at $2, in four round steps.
    c = chart.usage_chart([row(DAYS[0], "a", 600_000)], days=DAYS, unit=500_000, fmt=lambda v: f"{v:g}")
    assert [t.label for t in c.ticks] == ["0", "0.5", "1", "1.5", "2"]
    assert c.ticks[0].y == c.plot_bottom and c.ticks[-1].y == c.plot_top
    assert c.bars[0].label == "1.2"


@pytest.mark.parametrize("value,ceiling", [(1, 1), (1.2, 2), (2.1, 2.5), (3, 5), (7, 10), (0.03, 0.05), (450, 500)])
def test_nice_ceiling(value, ceiling):
    assert chart.nice_ceiling(value) == pytest.approx(ceiling)


@pytest.mark.parametrize("width, height", [(chart.WIDTH, chart.HEIGHT), (chart.NARROW_WIDTH, chart.NARROW_HEIGHT)])
def test_a_chart_has_the_size_asked_and_its_labels_fit(width, height):
    week = [f"2025-05-0{d}" for d in range(1, 8)]
    rows = [row(day, model, quota) for day in week for model, quota in (("a", 123_456), ("b", 654_321))]
    c = chart.usage_chart(rows, days=week, unit=500_000, fmt=lambda v: f"${v:,.4f}", width=width, height=height)
    assert (c.width, c.height) == (width, height) and c.plot_bottom == height - chart.BOTTOM
    assert all(0 <= bar.y and bar.y + bar.height <= c.plot_bottom + 0.01 for bar in c.bars)
    # The y axis leaves room for its longest label, and each day's label fits its column.
    assert c.plot_left >= 6 + chart.CHAR_WIDTH * max(len(t.label) for t in c.ticks)
    column = (c.plot_right - c.plot_left) / len(week)
    assert all(chart.CHAR_WIDTH * len(d.label) < column for d in c.days)
    assert c.days[-1].x + column / 2 <= c.plot_right + 0.01


# --- the page ------------------------------------------------------------------

def consume(user, *, model, quota, ago=0, prompt=10, completion=5):
    return Log.objects.create(user_id=user.pk, username=user.username, type=Log.Type.CONSUME, model_name=model,
                              quota=quota, prompt_tokens=prompt, completion_tokens=completion,
                              created_at=now_ts() - ago)


def test_anonymous_visitor_is_sent_to_login(db):
    response = Client().get(reverse("dashboard"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_a_disabled_user_is_sent_to_login(alice):
    client = Client()
    client.force_login(alice)
    User.objects.filter(pk=alice.pk).update(status=User.Status.DISABLED)
    response = client.get(reverse("dashboard"))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_dashboard_shows_the_balance_usage_and_chart(alice, alice_client, set_option):
    set_option("DisplayInCurrencyEnabled", False)
    User.objects.filter(pk=alice.pk).update(quota=1_234_567, used_quota=89_000, request_count=42)
    consume(alice, model="gpt-4o", quota=3000)
    consume(alice, model="gpt-4o-mini", quota=1000, ago=86400 * 2)
    consume(UserFactory(), model="bobs-model", quota=999)   # someone else's usage is not drawn

    response = alice_client.get(reverse("dashboard"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "1,234,567" in html and "89,000" in html and ">42<" in html
    svg = re.search(r'<svg data-testid="usage-chart".*?</svg>', html, re.DOTALL).group(0)
    assert "<title" in svg and "<desc" in svg
    bars = re.findall(r'<rect class="bar" data-model="([^"]+)" data-day="([^"]+)"', svg)
    days = {r["Day"]: r["ModelName"] for r in user_dashboard(user_id=alice.pk)}
    assert sorted(bars) == sorted((m, d) for d, m in days.items())
    assert "bobs-model" not in html
    assert 'id="usage-table"' in html and "4,000" in html   # the table's total in quota units


def test_dashboard_shows_us_dollars_when_so_configured(alice, alice_client, set_option):
    set_option("DisplayInCurrencyEnabled", True)
    User.objects.filter(pk=alice.pk).update(quota=1_000_000)
    consume(alice, model="gpt-4o", quota=250_000)
    html = alice_client.get(reverse("dashboard")).content.decode()
    assert "$2<" in html            # the balance: 1,000,000 quota at 500,000 per US$
    assert "$0.5" in html           # the table and the bar title
    assert 'class="axis-title"' in html and "US$" in html


def test_dashboard_without_usage_shows_a_message_not_an_svg(alice_client):
    html = alice_client.get(reverse("dashboard")).content.decode()
    assert 'data-testid="usage-chart-empty"' in html
    assert "<svg" not in html


def test_the_x_axis_covers_the_days_the_selector_buckets_into(alice):
    now = now_ts()
    for days_ago in range(8):
        consume(alice, model="m", quota=1, ago=days_ago * 86400 - 60 if days_ago else 0)
    days = dashboard_days(now=now)
    assert {r["Day"] for r in user_dashboard(user_id=alice.pk, now=now)} <= set(days)
    assert days == sorted(days) and len(days) == 7


def _local_day(ts: int) -> dt.date:
    return dt.datetime.fromtimestamp(ts, ZoneInfo(django_settings.TIME_ZONE)).date()


@pytest.mark.parametrize("zone", ["UTC", "Asia/Shanghai", "America/Los_Angeles"])
@pytest.mark.parametrize("seconds_into_day", [1, 12 * 3600, 86399])
def test_the_chart_covers_exactly_seven_days_ending_today(alice, settings, zone, seconds_into_day):
    settings.TIME_ZONE = zone
    today = dt.date(2025, 3, 12)
    now = int(dt.datetime.combine(today, dt.time(), ZoneInfo(zone)).timestamp()) + seconds_into_day
    days = dashboard_days(now=now)
    assert days == [(today - dt.timedelta(days=back)).isoformat() for back in range(6, -1, -1)]
    # Usage from before the first day's midnight is outside the window, not folded into its first day.
    first_midnight = int(dt.datetime.combine(today - dt.timedelta(days=6), dt.time(), ZoneInfo(zone)).timestamp())
    for model, created in (("old", first_midnight - 1), ("first", first_midnight), ("now", now)):
        Log.objects.create(user_id=alice.pk, type=Log.Type.CONSUME, model_name=model, quota=5, created_at=created)
    rows = {r["ModelName"]: r["Day"] for r in user_dashboard(user_id=alice.pk, now=now)}
    assert rows == {"first": days[0], "now": days[-1]}


def test_the_dashboard_page_labels_seven_days_the_last_being_today(alice, alice_client):
    consume(alice, model="gpt-4o", quota=3000)
    html = alice_client.get(reverse("dashboard")).content.decode()
    today = _local_day(now_ts())
    week = [today - dt.timedelta(days=back) for back in range(6, -1, -1)]
    for testid in ("usage-chart", "usage-chart-narrow"):   # the wide picture, and the one for phones
        svg = re.search(rf'<svg data-testid="{testid}".*?</svg>', html, re.DOTALL).group(0)
        labels = re.findall(r'<text class="day"[^>]*>([^<]+)</text>', svg)
        assert labels in ([d.strftime("%m-%d") for d in week], [d.strftime("%d") for d in week])


# --- the |quota filter --------------------------------------------------------------------------------

@pytest.mark.parametrize("per_unit, amount, shown", [
    ("500000", 1_000_000, "$2"),
    ("500000", 1, "$0.000002"),
    ("500000", 1_234_567_890, "$2,469.13578"),
    ("2000000", 1, "$0.000001"),          # 0.0000005 rounds half up, as the token form rounds it
    ("500000", -250_000, "-$0.5"),        # an overdrawn balance: the sign before the $
    ("10000000", -1, "$0"),               # no "-0"
    ("500000", 999_999_999_999_999_999, "$1,999,999,999,999.999998"),  # exact, not a float's nearest
])
def test_quota_in_us_dollars_is_exact_and_rounds_half_up(db, set_option, per_unit, amount, shown):
    from billing.money import form_amount
    from billing.templatetags.quota import quota

    set_option("DisplayInCurrencyEnabled", "true")
    set_option("QuotaPerUnit", per_unit)
    assert quota(amount) == shown
    if amount >= 0:  # the token list and the token form agree
        assert quota(amount).lstrip("$").replace(",", "") == form_amount(amount)
