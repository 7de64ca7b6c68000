"""Time a user's dashboard counted from N consume logs against the same figures read from the daily roll-up.

    SQLITE_PATH=/tmp/dash.db python bench/user_dashboard.py [logs]            # default 1 000 000
    SQL_DSN='root@tcp(127.0.0.1:3306)/ud_bench' python bench/user_dashboard.py 1000000

Creates the schema (migrate) and, when the logs table holds fewer rows than asked, fills it with consume logs
of the last 7 days: nine in ten of one heavy user (the acceptance check's 1.17M logs in 7 days), the rest of 49
others, over several models, tokens and channels; then rebuilds the roll-up of those days from the logs
(billing.rollup.rollup_rebuild, as `manage.py rollup_logs` does). It prints the time of each way, best of a few
runs, and checks that both give the same rows. A measurement, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oneapi_site.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from billing import rollup, selectors  # noqa: E402
from billing.models import Log, UsageDaily  # noqa: E402
from oneapi_site.lib.timeutil import now_ts  # noqa: E402

HEAVY_USER = 1
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "deepseek-chat", "gemini-1.5-pro", "qwen-max")
WEEK = 7 * 86_400


def fill(rows: int, now: int) -> None:
    have = Log.objects.count()
    rnd = random.Random(have)
    batch = 10_000
    for start in range(have, rows, batch):
        logs = []
        for _ in range(start, min(start + batch, rows)):
            user = HEAVY_USER if rnd.random() < 0.9 else rnd.randrange(2, 51)
            logs.append(Log(user_id=user, username=f"user{user}", type=Log.Type.CONSUME,
                            created_at=now - rnd.randrange(WEEK), token_id=user * 10 + rnd.randrange(3),
                            token_name="key", model_name=rnd.choice(MODELS), quota=rnd.randrange(5000),
                            prompt_tokens=rnd.randrange(4000), completion_tokens=rnd.randrange(1000),
                            channel_id=rnd.randrange(1, 5), elapsed_time=800))
        Log.objects.bulk_create(logs)
        if (start // batch) % 20 == 0:
            print(f"  {start + len(logs):,} logs", flush=True)


def best_of(runs: int, fn):
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    call_command("migrate", verbosity=0)
    now = now_ts()
    fill(rows, now)
    days, midnights = selectors._dashboard_window(now)
    started = time.perf_counter()
    written = rollup.rollup_rebuild(since=days[0] - dt.timedelta(days=1), until=days[-1] + dt.timedelta(days=1))
    print(f"roll-up rebuilt: {written:,} rows in {time.perf_counter() - started:.1f} s "
          f"({UsageDaily.objects.count():,} in the table)")
    heavy_logs = Log.objects.filter(user_id=HEAVY_USER, created_at__gte=midnights[0]).count()
    print(f"{connection.vendor}: {Log.objects.count():,} logs, {heavy_logs:,} of user {HEAVY_USER} in the window")

    for user in (HEAVY_USER, 2):
        logs_s, from_logs = best_of(2, lambda u=user: selectors._dashboard_from_logs(
            user_id=u, days=days, midnights=midnights, until=None))
        rollup_s, from_rollup = best_of(5, lambda u=user: selectors.user_dashboard(user_id=u, now=now))
        same = "same rows" if from_logs == from_rollup else "ROWS DIFFER"
        print(f"user {user}: logs {logs_s * 1000:,.1f} ms, roll-up {rollup_s * 1000:,.2f} ms "
              f"({logs_s / rollup_s:,.0f}x), {len(from_rollup)} rows, {same}")
        print(f"  requests {sum(r['RequestCount'] for r in from_rollup):,}, "
              f"quota {sum(r['Quota'] for r in from_rollup):,}, "
              f"prompt {sum(r['PromptTokens'] for r in from_rollup):,}, "
              f"completion {sum(r['CompletionTokens'] for r in from_rollup):,}")


if __name__ == "__main__":
    main()
