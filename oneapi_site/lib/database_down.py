"""Telling a database that cannot be reached from a bug, so /api and the pages answer 503 for the first (the
operator's outage: try again later) and keep 500 for the second.

Only the exception decides, never the connection's state: Django may build the error response in another
thread (its async handler does), whose connection is not the one that failed.
"""

from __future__ import annotations

import logging
from types import TracebackType

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.utils.translation import gettext

log = logging.getLogger(__name__)

# Django opens the connection in BaseDatabaseWrapper.ensure_connection (-> connect -> the backend's
# get_new_connection): an error raised through one of them was raised connecting.
_CONNECTING = frozenset({"ensure_connection", "get_new_connection"})

# MySQL/MariaDB client errors for a server that refuses, is unknown or went away mid-request
# (CR_CONNECTION_ERROR, CR_CONN_HOST_ERROR, CR_UNKNOWN_HOST, CR_SERVER_GONE_ERROR, CR_SERVER_LOST), and the
# server refusing more connections (ER_CON_COUNT_ERROR). Lock waits and deadlocks (1205, 1213) are not here.
_MYSQL_UNREACHABLE = frozenset({2002, 2003, 2005, 2006, 2013, 1040})

RETRY_AFTER = "30"  # seconds, for the 503: a guess that keeps clients from hammering a database restarting


def _through_connect(tb: TracebackType | None) -> bool:
    while tb is not None:
        if tb.tb_frame.f_code.co_name in _CONNECTING:
            return True
        tb = tb.tb_next
    return False


def database_unreachable(exc: BaseException | None) -> bool:
    """Whether `exc` says the database cannot be reached (refused, unknown host, gone away), not that a
    statement was wrong: a missing table or a deadlock stays a server error."""
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    if _through_connect(exc.__traceback__):
        return True
    if isinstance(exc, InterfaceError):
        # The driver's connection is closed or unusable, except for sqlite3, which raises it for a value of
        # a type it cannot bind: a bug.
        return not type(exc.__cause__).__module__.startswith("sqlite3")
    code = exc.args[0] if exc.args else None
    if isinstance(code, int) and code in _MYSQL_UNREACHABLE:
        return True
    # psycopg: SQLSTATE class 08 is "connection exception"; a connection that dropped has no SQLSTATE at all.
    cause = exc.__cause__
    if cause is not None and type(cause).__module__.startswith(("psycopg", "psycopg2")):
        state = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        return state is None or str(state).startswith("08")
    return False


def unreachable_message() -> str:
    return gettext("The database cannot be reached. Try again in a moment.")


def unavailable(*, api: bool) -> HttpResponse:
    """The 503: in /api's envelope, or as a plain page (no frame: its context may read the database)."""
    message, retry = unreachable_message(), {"Retry-After": RETRY_AFTER}
    if api:
        return JsonResponse({"success": False, "message": message}, status=503, headers=retry)
    return HttpResponse(message, status=503, content_type="text/plain; charset=utf-8", headers=retry)


def log_unreachable(exc: BaseException, path: str) -> None:
    """The class and the driver's error number, never the driver's message (it may name the host and user)."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else ""
    log.warning("database unreachable (%s %s): answered %s with 503", type(exc).__name__, code, path)
