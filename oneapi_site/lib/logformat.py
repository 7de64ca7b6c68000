"""Log formats that settings.LOGGING names."""

from __future__ import annotations

import logging


class WithoutTraceback(logging.Formatter):
    """For refusals that are expected, not faults (a Host header outside ALLOWED_HOSTS): the one-line message.

    Django logs those with the exception attached, which would print a traceback for every scanner."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None}))
