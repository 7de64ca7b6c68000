"""Failed upstream attempts, counted into the daily roll-up (billing/rollup.py) as `errors`.

A failure is not a charge, so it does not travel through the ledger: the relay counts it here (a dict under a
lock, on the event loop only when a call fails) and a thread adds the counts to the roll-up every
FLUSH_SECONDS with the same relative upserts. A crash loses at most that window of error counts, never a
charge; the dashboard's error rates tolerate that, an invoice would not.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import defaultdict

from django.db import close_old_connections, connection, transaction

from billing import rollup

log = logging.getLogger(__name__)

FLUSH_SECONDS = 10


class ErrorCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple, int] = defaultdict(int)
        self._thread: threading.Thread | None = None

    def count(self, *, created_at: int, group: str, model: str, channel_id: int, user_id: int,
              token_id: int) -> None:
        with self._lock:
            self._counts[(created_at, group, model, channel_id, user_id, token_id)] += 1

    def clear(self) -> None:
        """Forget the counts not yet written (tests start each from nothing)."""
        with self._lock:
            self._counts.clear()

    def flush(self) -> int:
        """Add the counts to the roll-up; on a database failure they are kept for the next flush."""
        with self._lock:
            counts, self._counts = self._counts, defaultdict(int)
        if not counts:
            return 0
        zeros = (0,) * (len(rollup.SUMS) - 1)
        rows = rollup.summed((*key, *zeros, n) for key, n in counts.items())
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                rollup.rollup_add(rows, cursor)
        except Exception:
            with self._lock:
                for key, n in counts.items():
                    self._counts[key] += n
            raise
        return sum(counts.values())

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(FLUSH_SECONDS):
                try:
                    self.flush()
                except Exception:
                    log.exception("adding failed attempts to the usage roll-up failed; kept for the next try")
                finally:
                    close_old_connections()

        self._thread = threading.Thread(target=loop, daemon=True, name="oneapi-usage-errors")
        self._thread.start()
        atexit.register(self._flush_quietly)

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except Exception as exc:  # the database may be gone at exit; these are statistics, not charges
            log.warning("adding failed attempts to the usage roll-up at exit failed: %s", exc)


errors = ErrorCounter()
