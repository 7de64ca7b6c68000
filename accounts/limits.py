"""one-api's "critical" rate limit: sign-in, sign-up, verification codes and password resets.

20 requests per 20 minutes per IP (one-api's CriticalRateLimitNum/Duration), counted in the shared
cache and in one budget for the pages and /api together, so switching between them gains nothing.
"""

from __future__ import annotations

import functools

from django.shortcuts import render
from django_ratelimit.core import is_ratelimited

CRITICAL_RATE = "20/20m"
CRITICAL_GROUP = "oneapi-critical"


def critical_limited(request) -> bool:
    """Count this request; True once the address is over the limit."""
    return bool(is_ratelimited(request, group=CRITICAL_GROUP, key="ip", rate=CRITICAL_RATE, increment=True))


def critical_page(view):
    """For pages: every POST counts; over the limit the visitor gets a 429 page instead of the form."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.method == "POST" and critical_limited(request):
            return render(request, "accounts/rate_limited.html", status=429)
        return view(request, *args, **kwargs)

    return wrapped
