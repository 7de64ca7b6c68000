"""Budget periods: a calendar day, ISO week (from Monday) or month in the gateway's time zone (TZ).

A token's or user's budget is what it may spend in one period; spending counts from the period's first
second and starts again at the next period's. Periods are named by their start in unix seconds, so a count
written with the start it belongs to is never added to another period's.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings

from oneapi_site.lib.limit_fields import BudgetPeriod


def _zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def _start(period: str, moment: datetime) -> datetime:
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == BudgetPeriod.DAY:
        return day
    if period == BudgetPeriod.WEEK:
        return day - timedelta(days=day.weekday())
    if period == BudgetPeriod.MONTH:
        return day.replace(day=1)
    raise ValueError(f"unknown budget period {period!r}")


def _next(period: str, start: datetime) -> datetime:
    if period == BudgetPeriod.DAY:
        following = start + timedelta(days=1)
    elif period == BudgetPeriod.WEEK:
        following = start + timedelta(days=7)
    else:
        following = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    # Calendar arithmetic on the wall clock, then the zone's offset of that day: a DST change inside the
    # period makes it 23 or 25 hours long, as a person reading the clock would expect.
    return following.replace(tzinfo=None).replace(tzinfo=start.tzinfo)


def period_start(period: str, ts: int) -> int:
    """Unix seconds at which the period holding `ts` began."""
    moment = datetime.fromtimestamp(ts, tz=_zone())
    start = _start(period, moment.replace(tzinfo=None))
    return int(start.replace(tzinfo=_zone()).timestamp())


def period_end(period: str, ts: int) -> int:
    """Unix seconds at which the period holding `ts` ends and the next begins (when spending resets)."""
    zone = _zone()
    start = _start(period, datetime.fromtimestamp(ts, tz=zone).replace(tzinfo=None)).replace(tzinfo=zone)
    return int(_next(period, start).timestamp())


def spent_now(*, period: str, spent: int, spent_period_start: int, ts: int) -> int:
    """What a budget has spent in the period holding `ts`, from the stored count and the period it was for."""
    if not period:
        return 0
    return spent if spent_period_start == period_start(period, ts) else 0
