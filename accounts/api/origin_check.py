"""Cookie-authenticated writes on /api without a CSRF token: refused only when a browser says another site
sent them.

one-api's front end, and every script that signs in and keeps the cookie, sends no CSRF token, so Django's
token check refused all their writes. Browsers tell where a request comes from in headers no page can set:
Fetch Metadata's `Sec-Fetch-Site` (every current browser), else `Origin` (sent with every cross-origin
write and with same-origin ones too). That is the header-based protection of Go's
`net/http.CrossOriginProtection`: trust `same-origin`/`none`, refuse any other site, compare `Origin` with
the host when Fetch Metadata is absent, and let through a request with neither header, which no browser
sends for a write, so no victim's cookie rides on it. A request that does carry a CSRF token (the console's
pages) still meets Django's check when it comes from another site, as before.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.utils.http import is_same_domain
from django.utils.translation import gettext
from rest_framework import exceptions
from rest_framework.authentication import CSRFCheck

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
DEFAULT_PORTS = {"http": 80, "https": 443}
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def refusal() -> exceptions.PermissionDenied:
    return exceptions.PermissionDenied(
        gettext("This request came from another site. Open this site itself to do this."))


def cross_site(request) -> bool:
    """Whether the browser says another site sent this request: Fetch Metadata, else the Origin header.

    `same-site` counts as another site too: a sibling subdomain is someone else's origin, and SameSite=Lax
    cookies go along even with its scripts' requests. Fetch Metadata is the browser's own word, so it wins
    over an Origin that differs only because a reverse proxy rewrote the Host. No such header: not a
    browser, or an old one.
    """
    site = request.META.get("HTTP_SEC_FETCH_SITE", "").strip().lower()
    if site:
        return site not in ("same-origin", "none")
    origin = request.META.get("HTTP_ORIGIN", "").strip()
    if not origin:
        return False
    return not (origin_is_this_site(request, origin) or origin_is_trusted(origin))


def _origin_parts(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) with the scheme's default port filled in; None for "null" or a garbled one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def origin_is_this_site(request, origin: str) -> bool:
    """The request's own scheme (a trusted proxy's X-Forwarded-Proto included, see oneapi_site/proxy.py),
    host and port: `https://example.com` is `https://example.com:443`."""
    theirs = _origin_parts(origin)
    return theirs is not None and theirs == _origin_parts(f"{request.scheme}://{request.get_host()}")


def origin_is_trusted(origin: str) -> bool:
    """Listed in CSRF_TRUSTED_ORIGINS, exactly or under a `https://*.example.com` wildcard, as Django reads it."""
    theirs = urlsplit(origin) if _origin_parts(origin) else None
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        if trusted == origin:
            return True
        if theirs is not None and "*" in trusted:
            ours = urlsplit(trusted)
            if ours.scheme == theirs.scheme and is_same_domain(theirs.netloc, ours.netloc[1:]):
                return True
    return False


def carries_csrf_token(request) -> bool:
    """A token in the header the console's scripts use, or in a form's hidden field."""
    if request.META.get(settings.CSRF_HEADER_NAME, "").strip():
        return True
    if request.method == "POST" and request.content_type in FORM_TYPES:
        try:
            return bool(request.POST.get("csrfmiddlewaretoken", "").strip())
        except OSError:  # the body could not be read: Django's check meets the same and refuses
            return True
    return False


def check_write(request) -> None:
    """Raise PermissionDenied for a write another site's page sent with this site's cookie (`request` is
    Django's HttpRequest): a token it carries is checked by Django as on the pages; without one it is refused."""
    if request.method in SAFE_METHODS or not cross_site(request):
        return
    if not carries_csrf_token(request):
        raise refusal()
    check = CSRFCheck(lambda _request: None)
    check.process_request(request)  # reads the CSRF cookie, as the middleware would
    reason = check.process_view(request, None, (), {})
    if reason:
        raise exceptions.PermissionDenied(f"CSRF Failed: {reason}")
