"""Expired sessions leave the database once a day; Django keeps them until someone runs clearsessions."""

from __future__ import annotations

import logging
import threading
from importlib import import_module

from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger(__name__)

INTERVAL = 24 * 3600
_cleaner: threading.Thread | None = None


def sessions_clear_expired() -> None:
    import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()


def start_session_cleaner() -> None:
    """Every instance runs it; deleting rows already gone costs nothing, so no lock is needed."""
    global _cleaner
    if _cleaner is not None and _cleaner.is_alive():
        return

    def loop() -> None:
        stop = threading.Event()
        while not stop.wait(INTERVAL):
            try:
                sessions_clear_expired()
            except Exception:
                log.exception("clearing expired sessions failed")
            finally:
                close_old_connections()

    _cleaner = threading.Thread(target=loop, daemon=True, name="oneapi-sessions")
    _cleaner.start()
