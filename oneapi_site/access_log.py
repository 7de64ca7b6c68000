"""Daphne's access log (ACCESS_LOG=true) without the API keys Gemini's clients may put in the URL.

Gemini's API takes its key as `?key=` as well as in a header (https://ai.google.dev/api#authentication), and
the relay accepts it there on Gemini's routes; Daphne writes each request's whole target, query included,
to its access log. The key's value is masked before the line is written, so it never reaches a log.
"""

from __future__ import annotations

import re

KEY_IN_QUERY = re.compile(r"([?&]key=)[^&#\s]*", re.IGNORECASE)


def redact(target: str) -> str:
    """A request target with the value of any `key` query parameter masked."""
    return KEY_IN_QUERY.sub(r"\1***", target) if "key=" in target.lower() else target


def install() -> None:
    try:
        from daphne.access import AccessLogGenerator
    except ImportError:  # not running under Daphne
        return
    if getattr(AccessLogGenerator, "_oneapi_redacted", False):
        return
    original = AccessLogGenerator.__call__

    def __call__(self, protocol, action, details):
        if isinstance(details.get("path"), str):
            details = {**details, "path": redact(details["path"])}
        original(self, protocol, action, details)

    AccessLogGenerator.__call__ = __call__
    AccessLogGenerator._oneapi_redacted = True
