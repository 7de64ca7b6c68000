"""Where a page may send the visitor next: only back into this site (no open redirects)."""

from __future__ import annotations

from django.utils.http import url_has_allowed_host_and_scheme


def local_url(request, url: str | None) -> str:
    """`url` when it points into this site (over HTTPS when the request came that way); else ""."""
    if url and url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()},
                                               require_https=request.is_secure()):
        return url
    return ""
