"""Old logs leave the database once a day (the LogRetentionDays option; 0 keeps them for ever), and old
captured bodies (billing/body_capture.py, BodyCaptureRetentionHours) every hour.

Every instance runs the timer; a lock in the shared cache lets one instance prune a given day, and another
lock keeps a manual `manage.py prune_logs` from running beside it. Without Redis the cache is per process, so
each instance prunes: the deletes are by id range and idempotent, so that costs only the repeated reads.
"""

from __future__ import annotations

import logging
import threading

from django.core.cache import cache
from django.db import close_old_connections

from billing import body_capture, rollup, services
from oneapi_site import options
from oneapi_site.lib.timeutil import now_ts

log = logging.getLogger(__name__)

DAY = 24 * 3600
CHECK_EVERY = 3600  # an instance started late in the day still prunes that day
RUNNING_LOCK = "oneapi:logs-prune:running"
RUNNING_SECONDS = 6 * 3600   # outlives any prune; a crashed pruner's lock expires
_thread: threading.Thread | None = None


def cutoff(*, days: int, now: int) -> int:
    return now - days * DAY


def logs_prune_run(*, now: int | None = None, days: int | None = None, batch: int = 5000) -> int | None:
    """Prune logs older than `days` (default LogRetentionDays); None when another prune holds the lock,
    0 when retention is off."""
    now = now or now_ts()
    days = options.get("LogRetentionDays") if days is None else days
    if not days:
        return 0
    if not cache.add(RUNNING_LOCK, now, timeout=RUNNING_SECONDS):
        return None
    try:
        deleted = services.logs_prune(before=cutoff(days=days, now=now), batch=batch)
    finally:
        cache.delete(RUNNING_LOCK)
    if deleted:
        log.info("pruned %d logs older than %d days", deleted, days)
    return deleted


def daily_prune(*, now: int | None = None) -> int | None:
    """The day's prune, on the first instance to ask today; None on the others (and on later calls)."""
    now = now or now_ts()
    if not options.get("LogRetentionDays"):
        return None
    day_lock = f"oneapi:logs-prune:{rollup.local_day(now).isoformat()}"
    if not cache.add(day_lock, now, timeout=DAY + 3600):
        return None
    try:
        pruned = logs_prune_run(now=now)
    except BaseException:
        cache.delete(day_lock)  # the database was away: the next hourly check, here or elsewhere, tries again
        raise
    if pruned is None:
        cache.delete(day_lock)  # a manual prune was running: the day is not done until one of ours has run
    return pruned


def start_log_pruner() -> None:
    global _thread
    if _thread is not None and _thread.is_alive():
        return

    def loop() -> None:
        stop = threading.Event()
        while not stop.wait(CHECK_EVERY):
            try:
                # Hourly on every instance: captures are few, and deleting rows already gone costs nothing.
                body_capture.captures_prune()
                daily_prune()
            except Exception:
                log.exception("pruning old logs failed")
            finally:
                close_old_connections()

    _thread = threading.Thread(target=loop, daemon=True, name="oneapi-log-pruner")
    _thread.start()
