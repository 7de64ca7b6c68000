"""Per-IP limits on the Django side, in one-api's units (requests per 3 minutes)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponseBadRequest, JsonResponse
from django.utils.translation import gettext
from django_ratelimit.core import is_ratelimited

from oneapi_site import options
from oneapi_site.pages import rate_limited as rate_limited_page


def ratelimited_view(request, exception=None):
    return JsonResponse({"success": False, "message": "too many requests, try again later"}, status=429)


class GlobalRateLimitMiddleware:
    """`/api` (and the dashboard routes) use GLOBAL_API_RATE_LIMIT, pages GLOBAL_WEB_RATE_LIMIT."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path
        if path.startswith("/static/"):
            return self.get_response(request)
        is_api = path.startswith(("/api/", "/dashboard/"))
        group, rate = ("api", settings.GLOBAL_API_RATE_LIMIT) if is_api else ("web", settings.GLOBAL_WEB_RATE_LIMIT)
        if is_ratelimited(request, group=f"global-{group}", key="ip", rate=f"{rate}/180s", increment=True):
            if is_api and path != "/dashboard/":  # the dashboard page is counted with /api but is a page
                return ratelimited_view(request)
            return rate_limited_page(request)
        return self.get_response(request)



class NulQueryMiddleware:
    """A query parameter holding a NUL character (`%00`) is refused with 400: PostgreSQL refuses the statement
    that compares or stores it (DataError), so every search, filter and `?suffix=` that met one was a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "%00" in request.META.get("QUERY_STRING", "") and any(
                "\x00" in text for name, values in request.GET.lists() for text in (name, *values)):
            message = gettext("a query parameter holds a NUL character (%00), which is not text this site keeps")
            if request.path.startswith(("/api/", "/dashboard/")):
                return JsonResponse({"success": False, "message": message}, status=400)
            return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


class FreshOptionsMiddleware:
    """Pages and /api read run-time options; make sure the snapshot they read is the stored one."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        options.ensure_fresh()
        return self.get_response(request)
