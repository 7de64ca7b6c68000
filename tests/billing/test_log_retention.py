"""Log retention (billing/retention.py): old logs pruned in batches, once a day by one instance at a time."""

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from billing import retention
from billing.models import Log
from billing.services import logs_prune, option_set
from oneapi_site import options
from oneapi_site.lib.timeutil import now_ts

pytestmark = pytest.mark.django_db

NOW = 1_773_100_800
DAY = 86_400


@pytest.fixture
def logs(db):
    ages = [40, 31, 30.5, 29, 1, 0]   # days before NOW
    Log.objects.bulk_create([Log(user_id=1, type=Log.Type.CONSUME, created_at=int(NOW - age * DAY), quota=i)
                             for i, age in enumerate(ages)])
    return ages


def remaining_ages():
    return sorted((NOW - ts) / DAY for ts in Log.objects.values_list("created_at", flat=True))


def retain(days: int) -> None:
    option_set(key="LogRetentionDays", value=str(days))
    options.reload_from_db()


def test_old_logs_go_recent_ones_stay(logs):
    retain(30)
    assert retention.daily_prune(now=NOW) == 3
    assert remaining_ages() == [0, 1, 29]


def test_logs_go_in_batches_of_the_given_size(logs):
    with CaptureQueriesContext(connection) as queries:
        assert logs_prune(before=NOW - 2 * DAY, batch=2) == 4
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("DELETE")]
    assert len(deletes) == 2
    assert remaining_ages() == [0, 1]


def test_an_old_log_with_a_newer_id_is_pruned_and_a_new_one_among_old_ids_kept(db):
    """Ids and times need not agree (imported logs): the time decides, the id range only bounds a batch."""
    Log.objects.bulk_create([Log(user_id=1, created_at=NOW - 40 * DAY), Log(user_id=1, created_at=NOW),
                             Log(user_id=1, created_at=NOW - 50 * DAY)])
    assert logs_prune(before=NOW - 30 * DAY, batch=1) == 2
    assert remaining_ages() == [0]


def test_zero_keeps_logs_for_ever(logs):
    retain(0)
    assert retention.daily_prune(now=NOW) is None
    assert retention.logs_prune_run(now=NOW) == 0
    assert len(remaining_ages()) == len(logs)


def test_one_instance_prunes_a_day_the_others_skip_it(logs):
    retain(30)
    assert retention.daily_prune(now=NOW) == 3
    Log.objects.create(user_id=1, created_at=NOW - 35 * DAY)
    assert retention.daily_prune(now=NOW + 60) is None          # another instance, the same day
    assert retention.daily_prune(now=NOW + DAY) == 1            # the next day


def test_a_prune_already_running_is_not_joined(logs):
    retain(30)
    cache.add(retention.RUNNING_LOCK, 1, timeout=60)
    try:
        assert retention.logs_prune_run(now=NOW) is None
        with pytest.raises(CommandError, match="another prune is running"):
            call_command("prune_logs", "--days", "30")
    finally:
        cache.delete(retention.RUNNING_LOCK)
    assert len(remaining_ages()) == len(logs)
    assert retention.logs_prune_run(now=NOW) == 3
    assert cache.get(retention.RUNNING_LOCK) is None, "the lock is released after a prune"


def test_prune_logs_command(db, capsys):
    now = now_ts()
    Log.objects.bulk_create([Log(user_id=1, created_at=now - 40 * DAY), Log(user_id=1, created_at=now - DAY)])
    call_command("prune_logs", "--days", "30", "--batch", "1")
    assert "1 logs deleted" in capsys.readouterr().out
    assert list(Log.objects.values_list("created_at", flat=True)) == [now - DAY]
    with pytest.raises(CommandError):
        call_command("prune_logs", "--days", "0")


def test_the_option_is_bounded(db):
    from oneapi_site.lib.errors import ServiceError

    with pytest.raises(ServiceError):
        option_set(key="LogRetentionDays", value="-1")


def test_prune_logs_command_reads_the_stored_option(db, capsys, monkeypatch):
    """manage.py prune_logs runs in a process of its own, where no page or request has read the options yet:
    LogRetentionDays as the console or /api stored it decides, not its default of 0 (found from a fresh
    clone: "LogRetentionDays is 0" with the option set to 1)."""
    now = now_ts()
    Log.objects.bulk_create([Log(user_id=1, created_at=now - 40 * DAY), Log(user_id=1, created_at=now - DAY)])
    option_set(key="LogRetentionDays", value="30")
    monkeypatch.setattr(options, "snapshot", options._Snapshot())  # a new process: the options never read
    call_command("prune_logs")
    assert "1 logs deleted" in capsys.readouterr().out
    assert list(Log.objects.values_list("created_at", flat=True)) == [now - DAY]


def test_a_days_prune_that_failed_is_tried_again_the_same_day(logs, monkeypatch):
    """The day's lock was taken before the prune ran: a database away at that moment (or a manual prune
    running) skipped the whole day, on every instance."""
    retain(30)

    def down(**kwargs):
        raise DatabaseError("the database is away")

    with monkeypatch.context() as patched:
        patched.setattr(retention.services, "logs_prune", down)
        with pytest.raises(DatabaseError):
            retention.daily_prune(now=NOW)
    assert retention.daily_prune(now=NOW + 3600) == 3       # the next hourly check, the same day
    assert retention.daily_prune(now=NOW + 7200) is None    # done for the day


def test_a_day_skipped_for_a_manual_prune_is_tried_again(logs):
    retain(30)
    cache.add(retention.RUNNING_LOCK, 1, timeout=60)
    try:
        assert retention.daily_prune(now=NOW) is None
    finally:
        cache.delete(retention.RUNNING_LOCK)
    assert retention.daily_prune(now=NOW + 3600) == 3
