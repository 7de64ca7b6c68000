"""Where a page may send the visitor next: only back into this site (no open redirects)."""

from __future__ import annotations

from django.utils.http import url_has_allowed_host_and_scheme


def local_url(request, url: str | None) -> str:
    """`url` when it is a path into this site (over HTTPS when the request came that way); else "".

    A path, starting with "/": callers hand the result to redirect(), which reads anything without a
    "/" or "." as a view name to reverse ("0" was a 500, "logout" a redirect to the logout page)."""
    if url and url.startswith("/") and url_has_allowed_host_and_scheme(
            url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return url
    return ""
