"""Settled charges kept in Redis until the database has them, so a SIGKILL loses none (with REDIS_CONN_STRING).

The ledger (billing/ledger.py) queues charges in memory and writes them in batches; a process killed outright
loses what it had not written yet. With Redis, each charge settled through the shared quota is also stored in
this instance's journal, the hash `oneapi:ledger:<database>:<instance>` (field: the charge's id, its lease; value: the
charge as JSON), by the same pipeline, so the same round trip, as its Redis settlement
(billing/shared_quota.py). The ledger deletes the fields once it has written them, and a charge it parks.

Each instance keeps `oneapi:ledger:<database>:<instance>:alive` (ALIVE_SECONDS) while it runs. An instance whose key is
gone died without emptying its journal: any running instance (a restarted one included: a new process is a
new instance) takes the journal's lock, writes what it holds and deletes it. Every write records the charge ids
in the database in the same transaction (billing.models.WrittenCharge) and skips ids already there, so a
charge the dead instance wrote just before it died, or that two instances replay, is taken once.

Not covered: a charge settled while Redis is unreachable (its settlement is replayed later, but it stays in
memory only), and one settled in the milliseconds before its pipeline reached Redis. Without Redis a SIGKILL
loses the charges not yet written: those of the last COALESCE_SECONDS, or with BATCH_UPDATE_ENABLED up to
BATCH_UPDATE_INTERVAL seconds of them.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

import orjson
import redis
from django.conf import settings
from django.db import close_old_connections

from billing.models import WrittenCharge
from billing.services import Charge, charges_apply
from billing.shared_quota import journal_key, journal_prefix, shared
from oneapi_site.lib.timeutil import now_ts

log = logging.getLogger(__name__)

ALIVE_SECONDS = 15  # an instance silent this long is taken for dead and its journal replayed
BEAT_SECONDS = 3
REPLAY_BATCH = 500
LOCK_SECONDS = 300  # a replay holds a journal's lock at most this long (then another instance may take it)
WRITTEN_KEPT_SECONDS = 7 * 24 * 3600  # ids of written charges kept this long
PRUNE_EVERY = 600  # seconds between prunings of those ids, by each instance
# A journal entry older than this may have been written with its id since pruned: dropped, never replayed (an
# entry the ledger wrote before its own journal write reached Redis can outlive its instance's clean stop).
REPLAY_MAX_AGE = 6 * 24 * 3600


_FIELDS = tuple(f.name for f in dataclasses.fields(Charge))


def encode(charge: Charge) -> bytes:
    """On the request path: field by field, as dataclasses.asdict's deep copies cost five times as much."""
    return orjson.dumps({name: getattr(charge, name) for name in _FIELDS})


def decode(raw: bytes | str) -> Charge:
    return Charge(**{k: v for k, v in orjson.loads(raw).items() if k in _FIELDS})


def enabled() -> bool:
    return bool(settings.REDIS_CONN_STRING)


def forget(charge_ids: list[str]) -> None:
    """Written (or parked): out of the journal. A failure leaves them to a replay, which skips written ids."""
    ids = [i for i in charge_ids if i]
    if not ids or not enabled():
        return
    try:
        shared._sync().hdel(journal_key(), *ids)
    except redis.RedisError as exc:
        log.warning("removing %d written charges from the Redis journal failed (%s); a replay will skip them",
                    len(ids), type(exc).__name__)


def drop_own() -> None:
    """At a clean stop, once the ledger has written every charge: nothing of this instance's is left to replay."""
    if not enabled():
        return
    try:
        shared._sync().delete(journal_key(), f"{journal_key()}:alive")
    except redis.RedisError as exc:
        log.warning("clearing this instance's Redis journal failed (%s); a replay will skip what it holds",
                    type(exc).__name__)


class Keeper:
    """Two threads: one says this instance is alive, the other replays the journals of instances that are not
    and prunes old ids. Apart, so a long replay never lets this instance's own key expire."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.refused = lambda exc: False  # the ledger's test for a charge the database refuses for good

    def start(self, *, refused) -> None:
        if not enabled() or any(t.is_alive() for t in self._threads):
            return
        self.refused = refused
        self._stop.clear()
        self._threads = [threading.Thread(target=self._beat, name="oneapi-journal-beat", daemon=True),
                         threading.Thread(target=self._replay, name="oneapi-journal-replay", daemon=True)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []

    def _beat(self) -> None:
        down = False  # one line when an outage starts and one when it ends, not one per beat
        while not self._stop.is_set():
            try:
                shared._sync().set(f"{journal_key()}:alive", "1", ex=ALIVE_SECONDS)
            except (redis.RedisError, ValueError) as exc:  # ValueError: REDIS_CONN_STRING is no Redis URL
                if not down:
                    log.warning("this instance cannot mark itself alive in Redis (%s)", type(exc).__name__)
                down = True
            else:
                if down:
                    log.info("this instance marks itself alive in Redis again")
                down = False
            self._stop.wait(BEAT_SECONDS)

    def _replay(self) -> None:
        pruned = 0.0
        down = False  # one line per outage, as the beat
        while not self._stop.is_set():
            try:
                close_old_connections()  # this thread's: a connection the database dropped is not reused
                replay_orphans(refused=self.refused)
                if time.monotonic() - pruned > PRUNE_EVERY:
                    pruned = time.monotonic()
                    prune_written()
                down = False
            except redis.RedisError as exc:
                if not down:
                    log.warning("the Redis journals of stopped instances cannot be replayed while Redis cannot be "
                                "reached (%s); tried again every %d s", type(exc).__name__, BEAT_SECONDS)
                down = True
            except Exception:
                log.exception("replaying the Redis journals of stopped instances failed")
            self._stop.wait(BEAT_SECONDS)


keeper = Keeper()


def replay_orphans(*, refused) -> int:
    """Write the journals of instances that are gone; how many charges were written."""
    client = shared._sync()
    written = 0
    prefix, ours = journal_prefix(), journal_key()
    for raw_key in client.scan_iter(f"{prefix}*", count=100):
        name = raw_key.decode()
        if ":" in name[len(prefix):] or name == ours:
            continue  # an :alive or :lock key, or ours
        if client.exists(f"{name}:alive"):
            continue
        lock = client.lock(f"{name}:lock", timeout=LOCK_SECONDS, blocking=False)
        if not lock.acquire():
            continue  # another instance replays it
        try:
            written += _replay(client, name, refused)
        finally:
            try:
                lock.release()
            except redis.exceptions.LockError:
                pass
    return written


def prune_written(limit: int = 5000) -> int:
    """Forget up to `limit` ids of charges written more than WRITTEN_KEPT_SECONDS ago (a bounded statement)."""
    old = list(WrittenCharge.objects.filter(created_at__lt=now_ts() - WRITTEN_KEPT_SECONDS)
               .values_list("pk", flat=True)[:limit])
    if old:
        WrittenCharge.objects.filter(pk__in=old).delete()
    return len(old)


def _replay(client, name: str, refused) -> int:
    written = 0
    for fields in _chunks(client, name):
        charges = _readable(client, name, fields)
        too_old = [c for c in charges if c.created_at < now_ts() - REPLAY_MAX_AGE]
        if too_old:
            log.error("%d charges in the Redis journal %s are too old to replay safely; dropped", len(too_old),
                      name)
            charges = [c for c in charges if c.created_at >= now_ts() - REPLAY_MAX_AGE]
        try:
            written += charges_apply(charges)
        except Exception as exc:
            if not refused(exc):
                raise  # the database is down: the journal stays, and the next round tries again
            written += _replay_alone(charges, refused)
        client.hdel(name, *fields)
    if written:
        log.warning("wrote %d charges an instance that stopped without writing them kept in Redis (%s)",
                    written, name.rsplit(":", 1)[-1])
    return written


def _readable(client, name: str, fields: dict) -> list[Charge]:
    """The chunk's charges; an entry that cannot be read (another version's, or damaged) is moved aside to
    `name:unreadable`, which no replay scans, and said once, so it neither blocks the journal nor is lost."""
    charges, unreadable = [], {}
    for field, raw in fields.items():
        try:
            charges.append(decode(raw))
        except (ValueError, TypeError) as exc:  # orjson's JSONDecodeError is a ValueError
            unreadable[field] = raw
            reason = type(exc).__name__
    if unreadable:
        client.hset(f"{name}:unreadable", mapping=unreadable)
        log.error("%d charges in the Redis journal %s cannot be read (%s); kept apart in %s:unreadable for an "
                  "operator", len(unreadable), name, reason, name)
    return charges


def _replay_alone(charges: list[Charge], refused) -> int:
    written = 0
    for charge in charges:
        try:
            written += charges_apply([charge])
        except Exception as exc:
            if not refused(exc):
                raise
            log.error("a charge replayed from Redis is refused by the database (%s); request %r, user %s, "
                      "quota %s not taken", type(exc).__name__, charge.request_id[:80], charge.user_id, charge.quota)
            shared.refund(charge)
    return written


def _chunks(client, name: str):
    cursor = 0
    while True:
        cursor, fields = client.hscan(name, cursor, count=REPLAY_BATCH)
        if fields:
            yield fields
        if cursor == 0:
            return
