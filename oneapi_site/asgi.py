"""The ASGI entry point: `/v1/...` to the bare relay, everything else to Django."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oneapi_site.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.cache import caches  # noqa: E402
from django.urls import re_path  # noqa: E402

from oneapi_site.static_files import StaticFiles  # noqa: E402
from relay.asgi import RelayApp  # noqa: E402


def _trim_daphne_per_request_work() -> None:
    """Turn off two things Twisted does on every request that Daphne never uses.

    Daphne hands the raw body to ASGI and never reads Twisted's parsed form arguments,
    yet Twisted parses every POST's Content-Type through the email package first (about
    a tenth of the relay's CPU on a JSON POST). And Twisted formats a combined-log line
    for its own log file beside Daphne's access log (another 3%).
    """
    try:
        from daphne.http_protocol import HTTPFactory, WebRequest
    except ImportError:  # not running under Daphne
        return
    if getattr(WebRequest, "_oneapi_patched", False):
        return
    HTTPFactory.log = lambda self, request: None
    original = WebRequest.__init__

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("parsePOSTFormSubmission", False)
        original(self, *args, **kwargs)

    WebRequest.__init__ = __init__
    WebRequest._oneapi_patched = True


_trim_daphne_per_request_work()

from oneapi_site import access_log, body_limit  # noqa: E402

body_limit.install()
access_log.install()


def _import_cache_backends() -> None:
    """Build every cache backend here, before any background thread or request can be the first to.

    The first request used to import django-redis (and so redis) while the change listener's thread
    imported redis too; two threads in redis's circular imports fail one of them, a 500 on /api/status
    or a listener dead from start-up (issue 8).
    """
    caches.all(initialized_only=False)


_import_cache_backends()
relay_app = RelayApp()

from accounts.sessions import start_session_cleaner  # noqa: E402
from billing.retention import start_log_pruner  # noqa: E402
from relay.cache import cache as relay_cache  # noqa: E402
from relay.probe import start_scheduler  # noqa: E402

start_scheduler()
start_session_cleaner()
start_log_pruner()
# At start, not at the first /v1 request: an instance serving only pages must hear option changes too.
relay_cache.start_listener()

from oneapi_site import health  # noqa: E402
from oneapi_site.proxy import ForwardedClientMiddleware  # noqa: E402

# Outermost: the relay (token IP allow-lists) and Django (per-IP limits) both see the real client.
application = ForwardedClientMiddleware(ProtocolTypeRouter({
    "http": URLRouter([
        re_path(r"^v1/", relay_app),
        re_path(r"^healthz$", health.healthz),
        re_path(r"^readyz$", health.readyz),
        re_path(r"^v1beta/", relay_app),  # Gemini's API (relay/codecs/gemini.py)
        # Chat UIs call these without the /v1 prefix, as one-api allows.
        re_path(r"^dashboard/billing/", relay_app),
        re_path(r"", StaticFiles(django_app)),
    ]),
}))
