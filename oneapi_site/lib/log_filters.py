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
