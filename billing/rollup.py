"""The daily roll-up of consumption (billing.models.UsageDaily) that the operator dashboard reads.

Charges are summed per key in Python, then added to their rows with one relative upsert per key, sent as one
executemany inside the ledger's transaction: a batch's logs and its roll-up commit together, and two instances
adding to the same row each add their own sums (INSERT ... ON DUPLICATE KEY UPDATE on MySQL/MariaDB,
ON CONFLICT DO UPDATE on SQLite and PostgreSQL), so the totals stay exact under concurrent writers.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from functools import lru_cache
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction

from accounts.models import User
from billing.models import Log, UsageDaily

KEY = ("day", "group", "model_name", "channel_id", "user_id", "token_id")
SUMS = ("requests", "quota", "prompt_tokens", "completion_tokens", "cached_tokens", "elapsed_ms", "errors")


@lru_cache(maxsize=1)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_day(ts: int) -> dt.date:
    """The day a unix time falls on where the site is (TIME_ZONE), as the dashboards count days."""
    return dt.datetime.fromtimestamp(ts, _zone(settings.TIME_ZONE)).date()


def summed(entries: Iterable[tuple]) -> list[tuple]:
    """Rows of (key..., sums...) from entries of (created_at, group, model, channel, user, token, sums...),
    one per key, in key order (the same order on every instance, so concurrent upserts lock rows alike)."""
    totals: dict[tuple, list[int]] = defaultdict(lambda: [0] * len(SUMS))
    days: dict[int, dt.date] = {}
    for created_at, group, model, channel_id, user_id, token_id, *values in entries:
        midnight_key = created_at - created_at % 900  # every zone's offset is a whole quarter hour
        day = days.get(midnight_key)
        if day is None:
            day = days[midnight_key] = local_day(created_at)
        row = totals[(day, group or "", model or "", channel_id or 0, user_id or 0, token_id or 0)]
        for i, value in enumerate(values):
            row[i] += int(value or 0)
    return [(*key, *values) for key, values in sorted(totals.items())]


def charge_rows(charges) -> list[tuple]:
    """The roll-up rows of a batch of billing.services.Charge."""
    return summed((c.created_at, c.group, c.model_name, c.channel_id, c.user_id, c.token_id, 1, c.quota,
                   c.prompt_tokens, c.completion_tokens, c.cached_tokens, c.elapsed_ms, 0) for c in charges)


def upsert_sql() -> str:
    """One row's relative upsert, for executemany over rows of (KEY..., SUMS...)."""
    q = connection.ops.quote_name
    table = q(UsageDaily._meta.db_table)
    columns = ", ".join(q(c) for c in KEY + SUMS)
    values = ", ".join(["%s"] * (len(KEY) + len(SUMS)))
    if connection.vendor == "mysql":
        added = ", ".join(f"{q(c)} = {q(c)} + VALUES({q(c)})" for c in SUMS)
        return f"INSERT INTO {table} ({columns}) VALUES ({values}) ON DUPLICATE KEY UPDATE {added}"
    added = ", ".join(f"{q(c)} = {table}.{q(c)} + excluded.{q(c)}" for c in SUMS)
    conflict = ", ".join(q(c) for c in KEY)
    return f"INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT ({conflict}) DO UPDATE SET {added}"


def rollup_add(rows: list[tuple], cursor) -> None:
    """Add summed rows to the roll-up with `cursor` (inside the caller's transaction)."""
    if rows:
        cursor.executemany(upsert_sql(), rows)


def local_midnight(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), _zone(settings.TIME_ZONE)).timestamp())


CHUNK = 10_000


def rollup_rebuild(*, since: dt.date, until: dt.date) -> int:
    """Recount the roll-up of the days [since, until) from the consume logs; returns the rows written.

    For logs written before the roll-up existed (or with consume logs on, to repair it). The days are replaced
    in one transaction; charges the ledger writes into them meanwhile would be counted twice or not at all,
    so by default it stops before today (see the rollup_logs command). A log's group is its user's group now:
    logs do not record the group they were charged in. Failed attempts are not in the logs: the days rebuilt
    lose their error counts.
    """
    low, high = local_midnight(since), local_midnight(until)
    groups = dict(User.objects.values_list("id", "group"))
    totals: dict[tuple, list[int]] = {}
    last_id = 0
    while True:
        chunk = list(Log.objects.filter(type=Log.Type.CONSUME, created_at__gte=low, created_at__lt=high,
                                        id__gt=last_id).order_by("id").values_list(
            "id", "created_at", "user_id", "model_name", "channel_id", "token_id", "quota", "prompt_tokens",
            "completion_tokens", "cached_tokens", "elapsed_time")[:CHUNK])
        if not chunk:
            break
        last_id = chunk[-1][0]
        for row in summed((created, groups.get(user_id, ""), model, channel_id, user_id, token_id, 1, *sums, 0)
                          for _id, created, user_id, model, channel_id, token_id, *sums in chunk):
            key, values = row[:len(KEY)], row[len(KEY):]
            kept = totals.setdefault(key, [0] * len(SUMS))
            for i, value in enumerate(values):
                kept[i] += value
    rows = [(*key, *values) for key, values in sorted(totals.items())]
    with transaction.atomic(), connection.cursor() as cursor:
        UsageDaily.objects.filter(day__gte=since, day__lt=until).delete()
        for start in range(0, len(rows), CHUNK):
            rollup_add(rows[start:start + CHUNK], cursor)
    return len(rows)
