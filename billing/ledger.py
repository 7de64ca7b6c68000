"""The in-process ledger: reservations for requests in flight, and charges on their way to the database.

The relay never writes quota on the request path. Before a call it reserves the
pre-consumed amount here (refused if the cached balance minus what is spent and
reserved cannot cover it); after the call it settles the exact charge, which a
background thread writes in batches with `billing.services.charges_apply`.
A failed request only releases its reservation, so it costs nothing and
nothing needs refunding; a write that fails stays queued and is retried.

Balances the relay sees are "database value when cached, minus what this
instance settled since"; budget spending likewise, per budget period. With Redis
(billing/shared_quota.py) admission happens there and this ledger only writes,
and counts in case Redis goes away. Cache loads take `flush_lock` so that a load and a
flush cannot interleave and count a charge twice or not at all.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import defaultdict

from django.conf import settings
from django.db import close_old_connections

from billing.services import Charge, charges_apply

log = logging.getLogger(__name__)

COALESCE_SECONDS = 0.1
MAX_BATCH = 500  # charges per transaction: bounds how long one flush holds the GIL and row locks


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

    def _count_budget(self, charge: Charge, sign: int) -> None:
        for subject, period_start in ((("u", charge.user_id), charge.user_period_start),
                                      (("t", charge.token_id), charge.token_period_start)):
            if period_start and charge.quota:
                if sign > 0:
                    spent = self.spent_budget.setdefault(subject, {})
                    spent[period_start] = spent.get(period_start, 0) + charge.quota
                unflushed = self.unflushed_budget.setdefault(subject, {})
                unflushed[period_start] = unflushed.get(period_start, 0) + sign * charge.quota
                if not unflushed[period_start]:
                    del unflushed[period_start]

    def settle(self, charge: Charge, *, reserved: int) -> None:
        """Swap the reservation for the real charge and queue its write. Never raises, never awaits."""
        limited = not charge.unlimited
        with self.lock:
            self._count_budget(charge, 1)
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
        """Write every queued charge in one transaction; keep them queued if the write fails."""
        with self.flush_lock:
            with self.lock:
                batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
            if not batch:
                return 0
            try:
                close_old_connections()
                charges_apply(batch)
            except Exception:
                self.failures += 1
                log.exception("writing %d charges failed; they stay queued and are retried", len(batch))
                with self.lock:
                    self.pending[:0] = batch
                return 0
            with self.lock:
                for c in batch:
                    self._count_budget(c, -1)
                    self.unflushed_user[c.user_id] -= c.quota
                    if not c.unlimited:
                        self.unflushed_token[c.token_id] -= c.quota
            return len(batch)

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
                if not self.flush():
                    self._stop.wait(1)  # the database is down: back off instead of spinning
                    break
        self.flush_all()

    def flush_all(self) -> int:
        """Everything queued is written when this returns, including a batch the writer thread
        had already taken (flush waits for flush_lock), or the database refused it."""
        written = self.flush()
        while self.pending:
            done = self.flush()
            if not done:
                break
            written += done
        return written

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="oneapi-ledger", daemon=True)
            self._thread.start()
            atexit.register(self.stop)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.flush_all()


ledger = Ledger()
