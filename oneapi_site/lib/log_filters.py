"""Filters of the log configuration (settings.LOGGING)."""

from __future__ import annotations

import logging


class RefusedRequest(logging.Filter):
    """A client's oversized form or foreign Host header is the client's mistake: one warning line, no
    traceback. (Django refuses it with a 400 but logs it at ERROR with a traceback, as if the server had
    failed; every scanner on the internet would fill the log.)"""

    def filter(self, record: logging.LogRecord) -> bool:
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = record.exc_text = None
        return True


class RefusalWithoutTraceback(logging.Filter):
    """Django logs every 4xx it answers for an exception (a PermissionDenied, a Http404) with that exception's
    traceback. A refusal is not a failure: its warning line says what was refused; tracebacks stay for 5xx."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if status is not None and status < 500:
            record.exc_info = record.exc_text = None
        return True
