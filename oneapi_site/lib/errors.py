"""The error every layer understands: bad input, with the field to fix.

Services raise it; /api answers it as the envelope, the console and the pages show it on the field
it names. It lives here, below the apps, so shared helpers such as the number parser can raise it too.
"""

from __future__ import annotations


class ServiceError(ValueError):
    """Bad input for a service; `field` names what to fix, `code` what kind of mistake it is (Django's
    form codes where one fits: "invalid", "min_value", "max_value"), so a page may say it its own way."""

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.field = field
        self.code = code
