"""Budget periods (billing/budgets.py) follow the calendar in TZ."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from billing import budgets


def ts(text: str, zone: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp())


@pytest.mark.parametrize(("zone", "moment", "period", "start", "end"), [
    ("UTC", "2026-12-04 23:59:59", "day", "2026-12-04 00:00:00", "2026-12-05 00:00:00"),
    ("Asia/Shanghai", "2026-12-05 00:30:00", "day", "2026-12-05 00:00:00", "2026-12-06 00:00:00"),
    ("UTC", "2026-12-06 12:00:00", "week", "2026-11-30 00:00:00", "2026-12-07 00:00:00"),  # a Sunday
    ("UTC", "2026-11-30 00:00:00", "week", "2026-11-30 00:00:00", "2026-12-07 00:00:00"),  # a Monday
    ("UTC", "2026-12-31 23:00:00", "month", "2026-12-01 00:00:00", "2027-01-01 00:00:00"),
    ("UTC", "2028-02-29 10:00:00", "month", "2028-02-01 00:00:00", "2028-03-01 00:00:00"),
    # Daylight saving begins on 2026-03-08 in New York: that day is 23 hours long.
    ("America/New_York", "2026-03-08 12:00:00", "day", "2026-03-08 00:00:00", "2026-03-09 00:00:00"),
    ("America/New_York", "2026-03-15 12:00:00", "month", "2026-03-01 00:00:00", "2026-04-01 00:00:00"),
])
def test_a_period_begins_and_ends_on_the_calendar_of_the_time_zone(settings, zone, moment, period, start, end):
    settings.TIME_ZONE = zone
    at = ts(moment, zone)
    assert budgets.period_start(period, at) == ts(start, zone)
    assert budgets.period_end(period, at) == ts(end, zone)


def test_the_new_york_spring_day_is_23_hours(settings):
    settings.TIME_ZONE = "America/New_York"
    at = ts("2026-03-08 12:00:00", "America/New_York")
    assert budgets.period_end("day", at) - budgets.period_start("day", at) == 23 * 3600


def test_spending_counts_only_in_its_own_period(settings):
    settings.TIME_ZONE = "UTC"
    today = ts("2026-12-04 10:00:00", "UTC")
    start = budgets.period_start("day", today)
    assert budgets.spent_now(period="day", spent=70, spent_period_start=start, ts=today) == 70
    tomorrow = ts("2026-12-05 00:00:01", "UTC")
    assert budgets.spent_now(period="day", spent=70, spent_period_start=start, ts=tomorrow) == 0
    assert budgets.spent_now(period="", spent=70, spent_period_start=start, ts=today) == 0
