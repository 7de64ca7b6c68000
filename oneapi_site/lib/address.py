"""The address people reach this site at, for links that leave the page: invitations, password resets, OAuth.

The operator's ServerAddress option wins. Until it is set (its default, one-api's http://localhost:3000, means
"not set"), a link shown on a page uses the address that page was opened at: request.get_host(), which Django
has checked against ALLOWED_HOSTS. A link mailed to someone other than the requester (a password reset) is
different: the requester writes the Host header, and a reset mail pointing at their host hands them the
victim's token. Such a link uses the request's host only when the operator named it in ALLOWED_HOSTS, never
through the "*" wildcard.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from oneapi_site import options

log = logging.getLogger("oneapi")

UNSET = options.DEFAULTS["ServerAddress"]
_warned = threading.Event()


def configured_address() -> str:
    """ServerAddress without its trailing slash; "" while empty or still the default."""
    value = str(options.get("ServerAddress") or "").strip().rstrip("/")
    return "" if value == UNSET.rstrip("/") else value


def page_address(request) -> str:
    """Base of a link shown to the visitor on the page they opened."""
    return configured_address() or f"{request.scheme}://{request.get_host()}"


def host_is_named(host: str) -> bool:
    """Whether ALLOWED_HOSTS names `host` itself (or its domain), not merely lets every host through."""
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, [h for h in settings.ALLOWED_HOSTS if h != "*"])


def mail_address(request) -> str:
    """Base of a link mailed to an account holder because of this request (captured now: the mail goes out
    in the background)."""
    configured = configured_address()
    if configured:
        return configured
    host = request.get_host()
    if host_is_named(host):
        return f"{request.scheme}://{host}"
    if not _warned.is_set():
        _warned.set()
        log.warning("Password reset links point at %s: set the ServerAddress option (console, Options) or name "
                    "this site's host in ALLOWED_HOSTS so that they carry the site's address", UNSET)
    return UNSET
