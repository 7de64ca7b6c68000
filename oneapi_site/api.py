"""One-api's management envelope: {"success", "message", "data"}."""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from oneapi_site.lib import database_down, numbers
from oneapi_site.lib.errors import ServiceError


def ok(data: Any = None, message: str = "", **extra: Any) -> Response:
    body = {"success": True, "message": message, "data": data}
    body.update(extra)
    return Response(body)


def fail(message: str, *, http_status: int = status.HTTP_200_OK, field: str | None = None) -> Response:
    """Business failures answer HTTP 200 with success false, as one-api's clients expect."""
    body: dict[str, Any] = {"success": False, "message": message}
    if field:
        body["field"] = field
    return Response(body, status=http_status)


def envelope_exception_handler(exc, context):
    if database_down.database_unreachable(exc):
        database_down.log_unreachable(exc, context["request"].path)
        return database_down.unavailable(api=True)
    if isinstance(exc, ServiceError):
        return fail(str(exc), field=exc.field)
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        if isinstance(detail, dict) and detail:
            field, errors = next(iter(detail.items()))
            message = errors[0] if isinstance(errors, list) and errors else errors
            return fail(f"{field}: {message}", field=str(field))
        return fail(str(detail[0] if isinstance(detail, list) and detail else detail))
    if isinstance(exc, exceptions.ParseError):
        return fail(f"invalid JSON body: {exc.detail}", http_status=400)
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        return fail(str(exc.detail) or "not logged in and no access token given", http_status=401)
    if isinstance(exc, exceptions.PermissionDenied):
        return fail(str(exc.detail) or "permission denied", http_status=403)
    response = exception_handler(exc, context)
    if response is not None:
        detail = getattr(exc, "detail", "") or response.data
        response.data = {"success": False, "message": str(detail)}
    return response


ITEMS_PER_PAGE = 10  # one-api's config.ItemsPerPage
MAX_PAGE_SIZE = 100
SEARCH_LIMIT = 100  # search endpoints are unpaginated; cap them so a short prefix stays cheap
MAX_PAGE = 10**9  # past any table; a larger offset overflows the database's integer (a 500, not an empty page)


def page_window(request) -> tuple[int, int]:
    """`?p=` is one-api's 0-based page index; `size` or `page_size` may widen the page up to 100."""
    page = _clamped_param(request, "p", 0, low=0, high=MAX_PAGE)
    # 0 or absent: the next parameter, then the default; a negative size is one row, as before.
    size = (_clamped_param(request, "size", 0, low=-1, high=MAX_PAGE_SIZE)
            or _clamped_param(request, "page_size", 0, low=-1, high=MAX_PAGE_SIZE) or ITEMS_PER_PAGE)
    return page * max(size, 1), max(size, 1)


def _clamped_param(request, name: str, default: int, *, low: int, high: int) -> int:
    """A paging parameter pulled into [low, high]: a page past the end is empty, not an error (one-api)."""
    try:
        return min(max(int_param(request, name, default), low), high)
    except ServiceError as exc:
        if exc.code in ("min_value", "max_value"):
            return low if exc.code == "min_value" else high
        raise


def int_param(request, name: str, default: int = 0) -> int:
    """A whole-number query parameter within BIGINT (every column it is compared with); a malformed or
    out-of-range one is a named validation error from the bounded parser."""
    raw = request.query_params.get(name, "")
    if raw.strip() == "":
        return default
    return numbers.parse_int(raw, field=name, minimum=numbers.BIGINT[0], maximum=numbers.BIGINT[1])


def api_path(route: str, view) -> list:
    """one-api's routes answer with and without a trailing slash (`/api/user/`, `/api/user/self`)."""
    route = route.rstrip("/")
    return [path(route, view), path(route + "/", view)] if route else [path("", view)]


@csrf_exempt  # it changes nothing: a write to an unknown path gets this 404, not Django's HTML CSRF page
def unknown_route(request, *args, **kwargs):
    """one-api answers an unknown /api path with 404 and an OpenAI-style error, not an HTML page."""
    return JsonResponse({"error": {"message": f"Invalid URL ({request.method} {request.path})",
                                   "type": "invalid_request_error"}}, status=404)
