"""Pages of the site as a whole: the favicon, and the 404, 500 and 429 answers in the site's frame.

/api keeps one-api's envelope ({"success": false, "message": ...}) for the same errors.
"""

from __future__ import annotations

import functools
import logging
import sys

from django.contrib.staticfiles import finders
from django.http import HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.template import loader
from django.utils.translation import gettext as _
from django.views.decorators.cache import cache_control

from oneapi_site.context import site
from oneapi_site.lib import database_down

log = logging.getLogger(__name__)

API_PREFIXES = ("/api/", "/dashboard/billing/")


@functools.cache
def _favicon() -> bytes:
    with open(finders.find("oneapi/favicon.ico"), "rb") as fh:
        return fh.read()


@cache_control(public=True, max_age=7 * 86400)
def favicon(request):
    """Browsers ask for /favicon.ico whatever the page says; the pages link the static copy."""
    return HttpResponse(_favicon(), content_type="image/x-icon")


def _is_api(request) -> bool:
    return request.path.startswith(API_PREFIXES)


def not_found(request, exception=None):
    """handler404: the site's frame with its header, so the visitor finds the way back."""
    if _is_api(request):
        return JsonResponse({"success": False, "message": _("No such API route.")}, status=404)
    return render(request, "404.html", status=404)


def _bare_page(request, template: str, status: int) -> HttpResponse:
    """The site's frame without the signed-in user: no session or user lookup, which may be what failed
    (500) or what a flood should not get for free (429). Language, branding and options are in memory."""
    context = {**site(request), "request": request, "csrf_token": get_token(request)}
    return HttpResponse(loader.get_template(template).render(context), status=status)


def server_error(request):
    """handler500: the frame if it can be drawn, else a line of text (and the reason in the log).

    A database that cannot be reached is an outage, not a bug: 503, in /api's envelope or as a plain page. It
    is told by the exception being handled: Django calls this inside its `except` (its async handler hands
    the exception to the thread that calls this, asgiref re-raising it there)."""
    if database_down.database_unreachable(sys.exc_info()[1]):
        return database_down.unavailable(api=_is_api(request))
    if _is_api(request):
        return JsonResponse({"success": False, "message": _("Internal server error.")}, status=500)
    try:
        return _bare_page(request, "500.html", 500)
    except Exception:
        log.exception("the error page itself failed")
        return HttpResponse(_("Server error. Try again in a moment."), status=500, content_type="text/plain")


def rate_limited(request) -> HttpResponse:
    """GlobalRateLimitMiddleware's answer on pages; /api keeps its JSON."""
    return _bare_page(request, "429.html", 429)
