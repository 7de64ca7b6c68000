"""The in-process ledger: reservations for requests in flight, and charges on their way to the database.

The relay never writes quota on the request path. Before a call it reserves the
pre-consumed amount here (refused if the cached balance minus what is spent and
reserved cannot cover it); after the call it settles the exact charge, which a
background thread writes in batches with `billing.services.charges_apply`.
A failed request only releases its reservation, so it costs nothing and
nothing needs refunding.

Balances the relay sees are "database value when cached, minus what this
instance settled since". Cache loads take `flush_lock` so that a load and a
flush cannot interleave and count a charge twice or not at all: a flush holds
it from taking its batch until every part of it is written, put back or parked.

A failed write is one of two things. The database may be unreachable, locked or
misconfigured (OperationalError, InterfaceError, a missing table): every charge of
the batch goes back to the head of the queue, in order, and is retried until it is
written. Or the database refused what the batch holds (DataError, IntegrityError,
MySQL's value refusals, a value the driver cannot send): that batch would fail the
same way for ever and hold back every charge queued behind it. It is written in
halves instead, each half its own transaction, down to the charges the database
refuses alone, so every other charge is written exactly once.

A refused charge is still a request that was answered, so its user pays: it is
written again with its log row fitted to the columns (text cut to the column, NUL
and unpaired surrogates replaced, token counts and times clamped to their integer
columns), logged at ERROR since the log row lost what did not fit; its quota is
never changed. Only a charge refused even so (its quota cannot move the balances)
is parked: logged once at ERROR with its request id, user, token, model and quota,
kept in `parked` (bounded; `parked_count` goes on counting), never retried. Its
quota is not taken, and the relay stops counting it (unflushed and spent), so the
balances it sees stay those of the database, where the charge never arrived.

When every charge is refused (PARKED_IN_A_ROW_MAX parked and nothing written since)
the fault is the writer's (a bug, a schema out of step), not the charges': what is
left stays queued, as for a database that is down, until a charge is written again.
The held charge goes behind the rest of its batch, so a run of refused charges
never keeps the good ones queued after it from being written.

Budget spending is counted the same way, per budget period. With Redis
(billing/shared_quota.py) admission happens there and this ledger only writes,
and counts in case Redis goes away; a parked charge is given back there too.

After a batch is written the owners' balances are checked against
QuotaRemindThreshold (billing/reminders.py), outside `flush_lock`.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import defaultdict, deque
from dataclasses import replace

from django.conf import settings
from django.db import DataError, IntegrityError, OperationalError, close_old_connections

from billing import journal, reminders
from billing.models import Log
from billing.services import Charge, charges_apply
from billing.shared_quota import shared
from oneapi_site import metrics
from oneapi_site.lib import numbers

log = logging.getLogger(__name__)

COALESCE_SECONDS = 0.1
MAX_BATCH = 500  # charges per transaction: bounds how long one flush holds the GIL and row locks
PARKED_KEPT = 1000  # parked charges kept for an operator to inspect; the count goes on past it
# Charges parked with nothing written since: past this, a refusal is taken for the writer's fault (a bug, a
# schema out of step), not the charge's, and what is left stays queued instead of being parked in turn.
PARKED_IN_A_ROW_MAX = 3

# MySQL reports these refusals of a value as OperationalError (mysqlclient maps only some codes to DataError):
# data truncated, incorrect value, incorrect string value, illegal value for the type.
MYSQL_VALUE_REFUSALS = frozenset({1265, 1292, 1366, 1367})

# Charge fields written to the log's columns under another name.
_LOG_COLUMN = {"elapsed_ms": "elapsed_time"}
_TEXT_FIELDS = ("username", "token_name", "model_name", "request_id", "client_protocol", "content")
_COUNT_FIELDS = ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens",
                 "cache_write_1h_tokens", "reasoning_tokens", "elapsed_ms", "created_at")


def refused(exc: BaseException) -> bool:
    """Whether the database refused a write for the values it holds, so it would refuse it again; False when
    the database could not take any write (down, locked, a schema it lacks), which a retry may get past."""
    if isinstance(exc, DataError | IntegrityError):
        return True
    if isinstance(exc, OperationalError):
        return bool(exc.args) and exc.args[0] in MYSQL_VALUE_REFUSALS
    # Raised by the driver before the database saw the row: an int past 64 bits for SQLite, a string that is
    # not Unicode. Django's own database errors subclass neither.
    return isinstance(exc, ValueError | OverflowError)


def _clean(text: str) -> str:
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def fitted(charge: Charge) -> Charge:
    """The charge with its log row cut to what the log's columns hold; the quota and ids untouched."""
    changes = {}
    for name in _TEXT_FIELDS:
        value = getattr(charge, name)
        text = _clean(value if isinstance(value, str) else str(value or ""))
        limit = Log._meta.get_field(_LOG_COLUMN.get(name, name)).max_length
        changes[name] = text[:limit] if limit else text
    for name in _COUNT_FIELDS:
        low, high = numbers.column_range(Log._meta.get_field(_LOG_COLUMN.get(name, name)))
        value = getattr(charge, name)
        changes[name] = min(max(value, low), high) if isinstance(value, int) else 0
    return replace(charge, **changes)


class Ledger:
    def __init__(self) -> None:
        self.lock = threading.Lock()  # guards the dicts below; held for microseconds
        self.flush_lock = threading.Lock()  # held while writing a batch or reading balances
        self.reserved_user: dict[int, int] = defaultdict(int)
        self.reserved_token: dict[int, int] = defaultdict(int)
        self.spent_user: dict[int, int] = defaultdict(int)  # settled since the cached value was read
        self.spent_token: dict[int, int] = defaultdict(int)
        self.unflushed_user: dict[int, int] = defaultdict(int)
        self.unflushed_token: dict[int, int] = defaultdict(int)
        # Budget spending settled since the cached value was read, and not yet written: (kind, id) ->
        # {period_start: quota}, kind "u" or "t".
        self.spent_budget: dict[tuple[str, int], dict[int, int]] = {}
        self.unflushed_budget: dict[tuple[str, int], dict[int, int]] = {}
        self.pending: list[Charge] = []
        self.parked: deque[Charge] = deque(maxlen=PARKED_KEPT)  # charges the database refused for good
        self.parked_count = 0
        self._parked_in_a_row = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0
    # --- request path (event loop; no I/O) ---------------------------------

    def reserve(self, *, user_id: int, user_quota: int, token_id: int, token_quota: int | None,
                amount: int, user_budget: tuple[int, int, int] | None = None,
                token_budget: tuple[int, int, int] | None = None) -> str | None:
        """Hold `amount` for a request; returns None, or "user"/"token" naming whose balance cannot cover it,
        or "user_budget"/"token_budget". A budget is (limit, period_start, spent in the database when cached);
        its reservations are the subject's, as every reservation is spent in the current period."""
        with self.lock:
            if user_quota - self.spent_user[user_id] - self.reserved_user[user_id] < amount:
                return "user"
            if token_quota is not None and (
                token_quota - self.spent_token[token_id] - self.reserved_token[token_id] < amount
            ):
                return "token"
            if user_budget is not None and self._over_budget(("u", user_id), user_budget,
                                                             self.reserved_user[user_id] + amount):
                return "user_budget"
            if token_budget is not None and self._over_budget(("t", token_id), token_budget,
                                                              self.reserved_token[token_id] + amount):
                return "token_budget"
            self.reserved_user[user_id] += amount
            if token_quota is not None:
                self.reserved_token[token_id] += amount
        return None

    def release(self, *, user_id: int, token_id: int, amount: int, limited: bool) -> None:
        with self.lock:
            self.reserved_user[user_id] -= amount
            if limited:
                self.reserved_token[token_id] -= amount

    def _over_budget(self, subject: tuple[str, int], budget: tuple[int, int, int], wanted: int) -> bool:
        limit, period_start, cached_spent = budget
        spent = cached_spent + self.spent_budget.get(subject, {}).get(period_start, 0)
        return spent + wanted > limit

    def budget_spent(self, kind: str, subject_id: int, period_start: int) -> int:
        """What this instance settled in the period since the subject was cached."""
        return self.spent_budget.get((kind, subject_id), {}).get(period_start, 0)

    def _count_budget(self, charge: Charge, sign: int, *, spent: bool) -> None:
        """Count a charge's budget spending (sign 1, at settlement), or stop counting it as unflushed (sign -1,
        written) and as spent too (`spent`, parked). Call holding `lock`."""
        for subject, period_start in ((("u", charge.user_id), charge.user_period_start),
                                      (("t", charge.token_id), charge.token_period_start)):
            if period_start and charge.quota:
                if spent:
                    counts = self.spent_budget.setdefault(subject, {})
                    counts[period_start] = counts.get(period_start, 0) + sign * charge.quota
                unflushed = self.unflushed_budget.setdefault(subject, {})
                unflushed[period_start] = unflushed.get(period_start, 0) + sign * charge.quota
                if not unflushed[period_start]:
                    del unflushed[period_start]

    def settle(self, charge: Charge, *, reserved: int) -> None:
        """Swap the reservation for the real charge and queue its write. Never raises, never awaits."""
        limited = not charge.unlimited
        with self.lock:
            self._count_budget(charge, 1, spent=True)
            self.reserved_user[charge.user_id] -= reserved
            self.spent_user[charge.user_id] += charge.quota
            self.unflushed_user[charge.user_id] += charge.quota
            if limited:
                self.reserved_token[charge.token_id] -= reserved
                self.spent_token[charge.token_id] += charge.quota
                self.unflushed_token[charge.token_id] += charge.quota
            self.pending.append(charge)
        self._wake.set()

    def user_spent(self, user_id: int) -> int:
        return self.spent_user.get(user_id, 0)

    def token_spent(self, token_id: int) -> int:
        return self.spent_token.get(token_id, 0)

    # --- cache loads (worker threads) --------------------------------------

    def rebase_user(self, user_id: int) -> None:
        """Call while holding flush_lock, right after reading the user's quota from the database."""
        with self.lock:
            self.spent_user[user_id] = self.unflushed_user.get(user_id, 0)
            self.spent_budget[("u", user_id)] = dict(self.unflushed_budget.get(("u", user_id), {}))

    def rebase_token(self, token_id: int) -> None:
        with self.lock:
            self.spent_token[token_id] = self.unflushed_token.get(token_id, 0)
            self.spent_budget[("t", token_id)] = dict(self.unflushed_budget.get(("t", token_id), {}))

    # --- writer -------------------------------------------------------------

    def flush(self) -> int:
        """Write up to MAX_BATCH queued charges; returns how many were written (see the module docstring for
        what happens to those that were not)."""
        return self._flush()[0]

    def _flush(self) -> tuple[int, bool]:
        """(charges written, whether the queue moved): False when the database took nothing and the batch is
        back at the head of the queue."""
        with self.flush_lock:
            with self.lock:
                batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
            if not batch:
                return 0, True
            started = time.perf_counter()
            written, left = self._write(batch)
            metrics.ledger_flushed(started, len(written))
            if left:
                with self.lock:
                    self.pending[:0] = left
        if written:
            self._after_write(written)
        return len(written), len(left) < len(batch)

    def _write(self, batch: list[Charge]) -> tuple[list[Charge], list[Charge]]:
        """(written, left to retry) of `batch`; what is in neither was parked."""
        try:
            self._apply(batch)
        except Exception as exc:
            if not refused(exc):
                return [], self._unreachable(batch, exc)
            if len(batch) > 1:
                log.warning("the database refused a batch of %d charges (%s: %s); writing it in parts",
                            len(batch), type(exc).__name__, exc)
            return self._write_apart(batch, exc)
        return batch, []

    def _write_apart(self, batch: list[Charge], exc: BaseException) -> tuple[list[Charge], list[Charge]]:
        """Halve a refused batch until every charge is written or stands alone (then written fitted, or
        parked). A part the database cannot take at all goes back to the queue with every part after it, in
        order. A charge held because every charge is refused goes to the back, so the charges behind it are
        tried (one written lets the next refusal be parked again); until one is, parts are held whole."""
        written: list[Charge] = []
        held: list[Charge] = []
        parts: deque[tuple[list[Charge], BaseException | None]] = deque([(batch, exc)])
        while parts:
            part, exc = parts.popleft()
            if exc is None:  # not tried yet
                try:
                    self._apply(part)
                except Exception as error:
                    exc = error
                else:
                    written += part
                    continue
                if not refused(exc):
                    return written, self._unreachable(part + _joined(parts) + held, exc)
            if held and self._parked_in_a_row >= PARKED_IN_A_ROW_MAX:
                held += part
            elif len(part) > 1:
                parts.extendleft((half, None) for half in reversed(_halves(part)))
            else:
                outcome = self._write_alone(part[0], exc)
                if outcome is _DOWN:
                    return written, self._unreachable(part + _joined(parts) + held, exc)
                if outcome is _WRITTEN:
                    written += part
                elif outcome is _HELD:
                    held += part
        if held:
            return written, self._unreachable(held, exc)
        return written, []

    def _write_alone(self, charge: Charge, exc: BaseException) -> object:
        """Write a refused charge with its log row fitted to the columns, or park it: _WRITTEN, _PARKED,
        _DOWN (the database could not take the write at all) or _HELD (it refuses every charge)."""
        fit = fitted(charge)
        if fit != charge:
            try:
                self._apply([fit])
            except Exception as again:
                if not refused(again):
                    return _DOWN
                exc = again
            else:
                # ERROR although nothing is lost from the balances: the log row lost what did not fit, and a
                # value got this far past the clamps meant to stop it (the fuzz tests watch for ERROR).
                log.error("charge of request %s (user %s) did not fit the log's columns (%s: %s); written "
                          "with its log row cut to fit", _short(charge.request_id), charge.user_id,
                          type(exc).__name__, exc)
                return _WRITTEN
        if self._parked_in_a_row >= PARKED_IN_A_ROW_MAX:
            return _HELD
        self._park(charge, exc)
        return _PARKED

    def _apply(self, charges: list[Charge]) -> None:
        """Write `charges` in one transaction, then stop counting them as unflushed (still under flush_lock,
        so a cache load sees either both or neither)."""
        close_old_connections()
        charges_apply(charges)
        self._parked_in_a_row = 0
        journal.forget([c.charge_id for c in charges])
        with self.lock:
            for c in charges:
                self._count_budget(c, -1, spent=False)
                self.unflushed_user[c.user_id] -= c.quota
                if not c.unlimited:
                    self.unflushed_token[c.token_id] -= c.quota

    def _unreachable(self, charges: list[Charge], exc: BaseException) -> list[Charge]:
        self.failures += 1
        metrics.ledger_failed("unreachable")
        log.error("writing %d charges failed; they stay queued and are retried", len(charges), exc_info=exc)
        return charges

    def _park(self, charge: Charge, exc: BaseException) -> None:
        """Drop a charge the database refuses for good. It never reaches the balances, so neither counter of
        the relay's balances keeps it (spent includes it whether settled or rebased since: unflushed did)."""
        with self.lock:
            self._count_budget(charge, -1, spent=True)
            self.unflushed_user[charge.user_id] -= charge.quota
            self.spent_user[charge.user_id] -= charge.quota
            if not charge.unlimited:
                self.unflushed_token[charge.token_id] -= charge.quota
                self.spent_token[charge.token_id] -= charge.quota
            self.parked.append(charge)
            self.parked_count += 1
            self._parked_in_a_row += 1
        metrics.ledger_failed("parked")
        shared.refund(charge)
        journal.forget([charge.charge_id])
        log.error("charge of request %s parked: the database refuses it (%s: %s); user %s, token %s, model %s, "
                  "quota %s not taken", _short(charge.request_id), type(exc).__name__, exc, charge.user_id,
                  charge.token_id, _short(charge.model_name), charge.quota)

    def _after_write(self, charges: list[Charge]) -> None:
        try:
            reminders.quota_reminders_send(user_ids={c.user_id for c in charges})
        except Exception:  # a reminder is worth less than the next batch: never raised into the writer
            log.exception("checking balances for low-quota reminders failed")

    def _run(self) -> None:
        interval = settings.BATCH_UPDATE_INTERVAL if settings.BATCH_UPDATE_ENABLED else None
        while not self._stop.is_set():
            if interval:
                self._stop.wait(interval)
            else:
                self._wake.wait(5)
                self._wake.clear()
                # Gather what arrives in the next moment into the same transaction: under load one
                # write per request would cost more CPU than the relay itself.
                self._stop.wait(COALESCE_SECONDS)
            while self.pending and not self._stop.is_set():
                if not self._flush()[1]:
                    self._stop.wait(1)  # the database is down: back off instead of spinning
                    break
        self.flush_all()

    def flush_all(self) -> int:
        """Everything queued is written (or parked) when this returns, including a batch the writer thread
        had already taken (flush waits for flush_lock), unless the database cannot take writes."""
        written, moved = self._flush()
        while moved and self.pending:
            done, moved = self._flush()
            written += done
        return written

    def writer_stopped(self) -> bool:
        """The writer thread was started and is no longer running (nothing queued would be written)."""
        return self._thread is not None and not self._thread.is_alive()

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="oneapi-ledger", daemon=True)
            self._thread.start()
            journal.keeper.start(refused=refused)
            atexit.register(self.stop)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.flush_all()


# What became of a charge written alone.
_WRITTEN, _PARKED, _DOWN, _HELD = object(), object(), object(), object()


def _joined(parts) -> list[Charge]:
    return [c for part, _exc in parts for c in part]


def _halves(charges: list[Charge]) -> tuple[list[Charge], list[Charge]]:
    middle = len(charges) // 2
    return charges[:middle], charges[middle:]


def _short(text: str, limit: int = 80) -> str:
    """A request id or model name for a log line: whatever the client sent, bounded."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


ledger = Ledger()
