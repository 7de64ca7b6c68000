"""Reads of logs and redemption codes for the management API.

Log tables grow to millions of rows: pages are LIMIT/OFFSET on the id index
without a COUNT(*), and sums only run over the filtered rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Case, CharField, Count, Min, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Coalesce

from billing.models import Log, RedemptionCode, UsageDaily
from oneapi_site.lib import numbers
from oneapi_site.lib.search import prefix
from oneapi_site.lib.timeutil import now_ts


@dataclass(frozen=True)
class LogFilter:
    """one-api's log query parameters; zero or empty means "any"."""

    user_id: int | None = None
    type: int = 0
    start_timestamp: int = 0
    end_timestamp: int = 0
    username: str = ""
    token_name: str = ""
    model_name: str = ""
    channel_id: int = 0


def logs_filtered(f: LogFilter) -> QuerySet[Log]:
    logs = Log.objects.all()
    if f.user_id is not None:
        logs = logs.filter(user_id=f.user_id)
    if f.type:
        logs = logs.filter(type=f.type)
    if f.start_timestamp:
        logs = logs.filter(created_at__gte=f.start_timestamp)
    if f.end_timestamp:
        logs = logs.filter(created_at__lte=f.end_timestamp)
    if f.username:
        logs = logs.filter(username=f.username)
    if f.token_name:
        logs = logs.filter(token_name=f.token_name)
    if f.model_name:
        logs = logs.filter(model_name=f.model_name)
    if f.channel_id:
        logs = logs.filter(channel_id=f.channel_id)
    return logs


def log_page(*, f: LogFilter, offset: int, limit: int) -> list[Log]:
    return list(logs_filtered(f).order_by("-id")[offset:offset + limit])


def logs_quota_sum(*, f: LogFilter) -> int:
    """Quota spent by the matching consume logs (one-api's /api/log/stat)."""
    total = logs_filtered(f).filter(type=Log.Type.CONSUME).aggregate(quota=Coalesce(Sum("quota"), 0))
    return int(total["quota"])


def log_search(*, keyword: str, limit: int, user_id: int | None = None) -> list[Log]:
    """A whole-number keyword matches the log type; the admin search also matches a content prefix."""
    keyword = keyword.strip()
    logs = Log.objects.all() if user_id is None else Log.objects.filter(user_id=user_id)
    match = Q(pk__in=[])
    log_type = numbers.int_or_none(keyword, minimum=numbers.SMALLINT[0], maximum=numbers.SMALLINT[1])
    if log_type is not None:
        match |= Q(type=log_type)
    if user_id is None and keyword:
        match |= prefix("content", keyword)
    return list(logs.filter(match).order_by("-id")[:limit])


DASHBOARD_DAYS = 7


def user_dashboard(*, user_id: int, now: int | None = None) -> list[dict]:
    """The user's consumption of the last 7 days, today included, by (day, model), as one-api's untagged Go
    struct names them (one-api also starts at the local midnight six days before today), oldest day first.

    Read from the daily roll-up (billing/rollup.py) on its user_id index, so the cost does not grow with the
    user's logs. Days before the roll-up's first day (a site upgraded within the week, not backfilled with
    `manage.py rollup_logs`) are counted from the consume logs, as they were before the roll-up existed.
    """
    days, midnights = _dashboard_window(now or now_ts())
    first = UsageDaily.objects.aggregate(first=Min("day"))["first"]
    if first is None or first > days[-1]:
        return _dashboard_from_logs(user_id=user_id, days=days, midnights=midnights, until=None)
    rows = []
    if first > days[0]:
        rows = _dashboard_from_logs(user_id=user_id, days=days, midnights=midnights,
                                    until=midnights[days.index(first)])
    return rows + _dashboard_from_rollup(user_id=user_id, since=max(first, days[0]))


def _dashboard_from_rollup(*, user_id: int, since: dt.date) -> list[dict]:
    # requests > 0: rows holding only failed upstream attempts (billing/usage_errors.py) are not usage, and
    # the logs never had them.
    rows = (UsageDaily.objects.filter(user_id=user_id, day__gte=since, requests__gt=0)
            .values("day", "model_name")
            .annotate(requests=Sum("requests"), quota=Sum("quota"), prompt=Sum("prompt_tokens"),
                      completion=Sum("completion_tokens"))
            .order_by("day", "model_name"))
    return [_dashboard_row(r["day"].isoformat(), r) for r in rows]


def _dashboard_from_logs(*, user_id: int, days: list[dt.date], midnights: list[int],
                         until: int | None) -> list[dict]:
    """The same rows from the consume logs before `until` (a local midnight), bucketed into days in the
    database with CASE over local midnights, so only the grouped rows come back."""
    newest_first = reversed(list(zip(days, midnights, strict=True)))
    day_bucket = Case(
        *[When(created_at__gte=ts, then=Value(day.isoformat())) for day, ts in newest_first],
        default=Value(days[0].isoformat()), output_field=CharField(),
    )
    logs = Log.objects.filter(user_id=user_id, type=Log.Type.CONSUME, created_at__gte=midnights[0])
    if until is not None:
        logs = logs.filter(created_at__lt=until)
    rows = (logs.annotate(day=day_bucket).values("day", "model_name")
            .annotate(requests=Count("id"), quota=Sum("quota"), prompt=Sum("prompt_tokens"),
                      completion=Sum("completion_tokens"))
            .order_by("day", "model_name"))
    return [_dashboard_row(r["day"], r) for r in rows]


def _dashboard_row(day: str, r: dict) -> dict:
    return {"Day": day, "ModelName": r["model_name"], "RequestCount": int(r["requests"]),
            "Quota": int(r["quota"] or 0), "PromptTokens": int(r["prompt"] or 0),
            "CompletionTokens": int(r["completion"] or 0)}


def redemption_list(*, offset: int, limit: int) -> list[RedemptionCode]:
    return list(RedemptionCode.objects.order_by("-id")[offset:offset + limit])


def redemption_search(*, keyword: str, limit: int) -> list[RedemptionCode]:
    """Id exactly or name by prefix (one-api); a whole key also finds its code."""
    keyword = keyword.strip()
    match = prefix("name", keyword) | Q(key=keyword)
    code_id = numbers.int_or_none(keyword, minimum=0)
    if code_id is not None:
        match |= Q(pk=code_id)
    return list(RedemptionCode.objects.filter(match).order_by("-id")[:limit])


# --- Self-service pages ----------------------------------------------------------

def _dashboard_window(now: int) -> tuple[list[dt.date], list[int]]:
    """The DASHBOARD_DAYS local days ending today, oldest first, and the unix time of each one's midnight."""
    tz = ZoneInfo(settings.TIME_ZONE)
    today = dt.datetime.fromtimestamp(now, tz).date()
    days = [today - dt.timedelta(days=back) for back in range(DASHBOARD_DAYS - 1, -1, -1)]
    return days, [int(dt.datetime.combine(day, dt.time(), tz).timestamp()) for day in days]


def dashboard_days(*, now: int | None = None) -> list[str]:
    """The ISO days user_dashboard buckets into, oldest first: the chart's x axis, with empty days too."""
    days, _midnights = _dashboard_window(now or now_ts())
    return [day.isoformat() for day in days]


def logs_totals(*, f: LogFilter) -> dict[str, int]:
    """Sums over the filtered rows in one aggregate query.

    `quota` is what consume logs spent (one-api's /api/log/self/stat); `topup_quota` what
    top-up logs added; adding the two would mean nothing, so they stay apart.
    """
    # Aliases differ from the column names: Django refuses an aggregate that shadows a field.
    totals = logs_filtered(f).aggregate(
        n=Count("id"),
        spent=Coalesce(Sum("quota", filter=Q(type=Log.Type.CONSUME)), 0),
        added=Coalesce(Sum("quota", filter=Q(type=Log.Type.TOPUP)), 0),
        prompt=Coalesce(Sum("prompt_tokens"), 0),
        completion=Coalesce(Sum("completion_tokens"), 0),
        cached=Coalesce(Sum("cached_tokens"), 0),
    )
    return {"count": int(totals["n"]), "quota": int(totals["spent"]), "topup_quota": int(totals["added"]),
            "prompt_tokens": int(totals["prompt"]), "completion_tokens": int(totals["completion"]),
            "cached_tokens": int(totals["cached"])}


@dataclass(frozen=True)
class LogKeysetPage:
    logs: list[Log]         # newest first
    newer: int | None       # pass as ?after= to see the page above, None at the top
    older: int | None       # pass as ?before= to see the page below, None at the end


def log_keyset_page(*, f: LogFilter, before: int | None = None, after: int | None = None,
                    size: int = 20) -> LogKeysetPage:
    """A page of logs, newest first, keyed on id: `WHERE id < before ORDER BY id DESC LIMIT size+1`.

    The cost of a page does not grow with its depth (no OFFSET), and nothing counts the
    table; the extra row tells whether the page has a neighbour in the direction read,
    and one indexed EXISTS probes the other direction.
    """
    logs = logs_filtered(f)
    if after is not None:
        rows = list(logs.filter(id__gt=after).order_by("id")[:size + 1])
        has_newer = len(rows) > size
        rows = rows[:size][::-1]
    else:
        read = logs if before is None else logs.filter(id__lt=before)
        rows = list(read.order_by("-id")[:size + 1])
        has_older = len(rows) > size
        rows = rows[:size]
    if (not rows or after is not None and not has_newer) and (before is not None or after is not None):
        # Reached the newest rows going up (show the full top page, not a stub of it),
        # or a stale link past either end: the top page.
        return log_keyset_page(f=f, size=size)
    if not rows:
        return LogKeysetPage(logs=[], newer=None, older=None)
    if after is not None:
        has_older = logs.filter(id__lt=rows[-1].pk).exists()
    else:
        has_newer = before is not None and logs.filter(id__gt=rows[0].pk).exists()
    return LogKeysetPage(
        logs=rows,
        newer=rows[0].pk if has_newer else None,
        older=rows[-1].pk if has_older else None,
    )


# --- the operator dashboard: reads of the daily roll-up (billing/rollup.py), never of the logs -------------

USAGE_DIMENSIONS = {"model": "model_name", "channel": "channel_id", "group": "group"}
USAGE_MEASURES = ("requests", "quota", "tokens", "errors")


def usage_days(*, days: int, now: int | None = None) -> list[dt.date]:
    """The last `days` local days, today included, oldest first."""
    today = dt.datetime.fromtimestamp(now or now_ts(), ZoneInfo(settings.TIME_ZONE)).date()
    return [today - dt.timedelta(days=back) for back in range(days - 1, -1, -1)]


def usage_by_day(*, since: dt.date, by: str) -> list[dict]:
    """Sums per (day, `by`), `by` one of USAGE_DIMENSIONS: day, key, requests, quota, prompt, completion,
    cached, tokens (prompt + completion), errors (failed upstream attempts)."""
    column = USAGE_DIMENSIONS[by]
    rows = (UsageDaily.objects.filter(day__gte=since).values("day", column)
            .annotate(n=Sum("requests"), q=Sum("quota"), p=Sum("prompt_tokens"), c=Sum("completion_tokens"),
                      k=Sum("cached_tokens"), e=Sum("errors"))
            .order_by("day", column))
    return [{"day": r["day"], "key": r[column], "requests": int(r["n"]), "quota": int(r["q"]),
             "prompt": int(r["p"]), "completion": int(r["c"]), "cached": int(r["k"]),
             "tokens": int(r["p"]) + int(r["c"]), "errors": int(r["e"])} for r in rows]


def usage_top(*, since: dt.date, by: str, limit: int = 10) -> list[dict]:
    """The `limit` users or tokens (`by` "user_id" or "token_id") that spent the most quota since `since`."""
    rows = (UsageDaily.objects.filter(day__gte=since, requests__gt=0).exclude(**{by: 0}).values(by)
            .annotate(n=Sum("requests"), q=Sum("quota"), t=Sum("prompt_tokens") + Sum("completion_tokens"))
            .order_by("-q", by)[:limit])
    return [{"id": r[by], "requests": int(r["n"]), "quota": int(r["q"]), "tokens": int(r["t"])} for r in rows]


def usage_channels(*, since: dt.date) -> dict[int, tuple[int, int, int]]:
    """Per channel id since `since`: (answered requests, their mean milliseconds, failed attempts)."""
    rows = (UsageDaily.objects.filter(day__gte=since).exclude(channel_id=0).values("channel_id")
            .annotate(n=Sum("requests"), ms=Sum("elapsed_ms"), e=Sum("errors")))
    return {r["channel_id"]: (int(r["n"]), int(r["ms"]) // max(int(r["n"]), 1), int(r["e"])) for r in rows}
