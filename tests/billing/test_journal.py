"""Charges kept in Redis until written, and the replay of a stopped instance's journal (billing/journal.py),
against a redis-server of the test's own. The real process killed with SIGKILL is tests/e2e/test_sigkill_journal.py.
"""

from __future__ import annotations

import dataclasses

import pytest
import redis

from accounts.models import Token, User
from billing import journal
from billing.ledger import ledger, refused
from billing.models import Log, WrittenCharge
from billing.services import Charge, charges_apply
from billing.shared_quota import journal_key, journal_prefix, shared
from oneapi_site.lib.timeutil import now_ts
from tests.e2e.servers import RedisServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def own_redis(settings, tmp_path):
    if not RedisServer.available():
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path).start()
    settings.REDIS_CONN_STRING = server.url
    shared.forget()
    yield redis.Redis.from_url(server.url)
    shared.forget()
    server.stop()


def charge(token: Token, n: int, quota: int = 100, **fields) -> Charge:
    return Charge(user_id=token.user_id, username=token.user.username, token_id=token.id, token_name=token.name,
                  unlimited=False, channel_id=0, model_name="m", quota=quota, prompt_tokens=1, completion_tokens=1,
                  request_id=f"req-{n}", elapsed_ms=1, is_stream=False, content="", created_at=now_ts(),
                  charge_id=f"deadbeef0000.{n}", **fields)


def balances(token: Token) -> tuple[int, int, int]:
    user = User.objects.get(pk=token.user_id)
    return user.used_quota, Token.objects.get(pk=token.pk).used_quota, Log.objects.filter(type=Log.Type.CONSUME).count()


def test_a_charge_round_trips_through_its_journal_form(alice_token):
    c = charge(alice_token, 1, user_period_start=1700000000, user_budget_period="day", cached_tokens=3)
    assert journal.decode(journal.encode(c)) == c


def test_a_charge_id_is_written_once_however_often_it_is_applied(alice_token):
    c = charge(alice_token, 1)
    assert charges_apply([c]) == 1
    assert charges_apply([c, charge(alice_token, 2)]) == 1
    assert charges_apply([c]) == 0
    assert balances(alice_token) == (200, 200, 2)
    assert WrittenCharge.objects.count() == 2


def test_a_stopped_instances_journal_is_written_once_skipping_what_it_had_written(alice_token, own_redis):
    dead = journal_prefix() + "deadbeef0000"
    written_before_death = charge(alice_token, 1)
    charges_apply([written_before_death])  # its journal entry was not yet removed when the process died
    for c in (written_before_death, charge(alice_token, 2), charge(alice_token, 3)):
        own_redis.hset(dead, c.charge_id, journal.encode(c))

    assert journal.replay_orphans(refused=refused) == 2
    assert balances(alice_token) == (300, 300, 3)
    assert not own_redis.exists(dead)
    assert journal.replay_orphans(refused=refused) == 0
    assert balances(alice_token) == (300, 300, 3)


def test_a_live_instances_journal_and_one_being_replayed_are_left_alone(alice_token, own_redis):
    alive, locked = journal_prefix() + "a11ve0000000", journal_prefix() + "10cked000000"
    own_redis.set(f"{alive}:alive", "1", ex=60)
    own_redis.hset(alive, "a11ve0000000.1", journal.encode(charge(alice_token, 1)))
    own_redis.set(f"{locked}:lock", "another instance", ex=60)
    own_redis.hset(locked, "10cked000000.1", journal.encode(charge(alice_token, 2)))
    own_redis.hset(journal_key(), "ours.1", journal.encode(charge(alice_token, 3)))  # this instance's own

    assert journal.replay_orphans(refused=refused) == 0
    assert balances(alice_token) == (0, 0, 0)
    assert own_redis.hlen(alive) == own_redis.hlen(locked) == own_redis.hlen(journal_key()) == 1


@pytest.mark.django_db(transaction=True)  # the ledger's write closes old connections, as its own thread does
def test_the_ledger_removes_what_it_wrote_from_the_journal(alice_token, own_redis):
    c = charge(alice_token, 1)
    own_redis.hset(journal_key(), c.charge_id, journal.encode(c))
    ledger.settle(c, reserved=0)
    ledger.flush_all()
    assert balances(alice_token) == (100, 100, 1)
    assert not own_redis.exists(journal_key())


def test_the_journal_of_an_instance_on_another_database_is_never_replayed_here(alice_token, own_redis):
    elsewhere = journal_prefix().replace("oneapi:ledger:", "oneapi:ledger:0ther0ther:") + "e1sewhere000"
    own_redis.hset(elsewhere, "e1sewhere000.1", journal.encode(charge(alice_token, 1)))
    assert journal.replay_orphans(refused=refused) == 0
    assert balances(alice_token) == (0, 0, 0) and own_redis.hlen(elsewhere) == 1


def test_an_entry_too_old_to_replay_safely_is_dropped_not_written(alice_token, own_redis):
    dead = journal_prefix() + "01d000000000"
    old = dataclasses.replace(charge(alice_token, 1), created_at=now_ts() - journal.REPLAY_MAX_AGE - 60)
    own_redis.hset(dead, old.charge_id, journal.encode(old))
    assert journal.replay_orphans(refused=refused) == 0
    assert balances(alice_token) == (0, 0, 0)
    assert not own_redis.exists(dead)


def test_ids_of_charges_written_long_ago_are_pruned(alice_token):
    charges_apply([charge(alice_token, 1), charge(alice_token, 2)])
    WrittenCharge.objects.filter(charge_id="deadbeef0000.1").update(
        created_at=now_ts() - journal.WRITTEN_KEPT_SECONDS - 1)
    assert journal.prune_written() == 1
    assert list(WrittenCharge.objects.values_list("charge_id", flat=True)) == ["deadbeef0000.2"]


def test_an_entry_that_cannot_be_read_is_kept_apart_and_the_rest_is_written(alice_token, own_redis, caplog):
    dead = journal_prefix() + "deadbeef0001"
    own_redis.hset(dead, "deadbeef0001.1", journal.encode(charge(alice_token, 1)))
    own_redis.hset(dead, "deadbeef0001.2", b'{"user_id": 1, "a field of another version": true}')
    own_redis.hset(dead, "deadbeef0001.3", b"not json")

    assert journal.replay_orphans(refused=refused) == 1
    assert balances(alice_token) == (100, 100, 1)
    assert not own_redis.exists(dead)
    assert set(own_redis.hgetall(f"{dead}:unreadable")) == {b"deadbeef0001.2", b"deadbeef0001.3"}
    assert [r.levelname for r in caplog.records if "cannot be read" in r.getMessage()] == ["ERROR"]
    assert journal.replay_orphans(refused=refused) == 0


def test_an_outage_is_one_line_per_thread_however_many_beats_it_lasts(monkeypatch, caplog, settings):
    # Before, each beat (every 3 s) logged again, and the replay's line said "Redis is unreachable", as the
    # cache's one-per-outage line does: a test counting that line failed (MariaDB + Redis CI).
    settings.REDIS_CONN_STRING = "redis://127.0.0.1:1/0"
    tries = {"beat": 0, "replay": 0}

    class Down:
        def set(self, *args, **kwargs):
            tries["beat"] += 1
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:1")

    def replay_down(**kwargs):
        tries["replay"] += 1
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:1")

    monkeypatch.setattr(shared, "_sync", lambda: Down())
    monkeypatch.setattr(journal, "replay_orphans", replay_down)
    monkeypatch.setattr(journal, "BEAT_SECONDS", 0.01)
    keeper = journal.Keeper()
    keeper.start(refused=refused)
    try:
        for _ in range(500):
            if min(tries.values()) >= 5:
                break
            keeper._stop.wait(0.01)
    finally:
        keeper.stop()
    assert min(tries.values()) >= 5
    lines = [r.getMessage() for r in caplog.records if r.name == "billing.journal"]
    assert sum("cannot mark itself alive" in line for line in lines) == 1, lines
    assert sum("journals of stopped instances cannot be replayed" in line for line in lines) == 1, lines
    assert not any("Redis is unreachable" in line for line in lines)
