"""Logs: admin /api/log/ (all users) and /api/log/self (one's own). Newest first, no COUNT(*)."""

from __future__ import annotations

from rest_framework.views import APIView

from accounts.api.authentication import IsAdmin, IsUser
from billing import log_export, selectors, services
from billing.api.serializers import log_json
from billing.selectors import LogFilter
from oneapi_site.api import SEARCH_LIMIT, int_param, ok, page_window


def log_filter(request, *, user_id: int | None = None) -> LogFilter:
    """one-api's query parameters; a user's own view ignores username and channel."""
    params = request.query_params
    own = user_id is not None
    return LogFilter(
        user_id=user_id,
        type=int_param(request, "type", 0),
        start_timestamp=int_param(request, "start_timestamp", 0),
        end_timestamp=int_param(request, "end_timestamp", 0),
        username="" if own else params.get("username", "").strip(),
        token_name=params.get("token_name", "").strip(),
        model_name=params.get("model_name", "").strip(),
        channel_id=0 if own else int_param(request, "channel", 0),
    )


class LogsView(APIView):
    permission_classes = [IsAdmin]

    def get(self, request):
        offset, limit = page_window(request)
        logs = selectors.log_page(f=log_filter(request), offset=offset, limit=limit)
        return ok([log_json(log) for log in logs])

    def delete(self, request):
        count = services.logs_delete_before(timestamp=int_param(request, "target_timestamp", 0))
        return ok(count)


class LogStatView(APIView):
    permission_classes = [IsAdmin]

    def get(self, request):
        return ok({"quota": selectors.logs_quota_sum(f=log_filter(request))})


class LogSearchView(APIView):
    permission_classes = [IsAdmin]

    def get(self, request):
        logs = selectors.log_search(keyword=request.query_params.get("keyword", ""), limit=SEARCH_LIMIT)
        return ok([log_json(log) for log in logs])


class SelfLogsView(APIView):
    permission_classes = [IsUser]

    def get(self, request):
        offset, limit = page_window(request)
        logs = selectors.log_page(f=log_filter(request, user_id=request.user.pk), offset=offset, limit=limit)
        return ok([log_json(log) for log in logs])


class LogExportView(APIView):
    """All logs matching /api/log/'s filters, as a streamed CSV file."""

    permission_classes = [IsAdmin]

    def get(self, request):
        return log_export.csv_response(request, selectors.logs_filtered(log_filter(request)))


class SelfLogExportView(APIView):
    permission_classes = [IsUser]

    def get(self, request):
        logs = selectors.logs_filtered(log_filter(request, user_id=request.user.pk))
        return log_export.csv_response(request, logs, name="my-logs")


class SelfLogStatView(APIView):
    permission_classes = [IsUser]

    def get(self, request):
        return ok({"quota": selectors.logs_quota_sum(f=log_filter(request, user_id=request.user.pk))})


class SelfLogSearchView(APIView):
    """one-api's keyword here is a log type."""

    permission_classes = [IsUser]

    def get(self, request):
        logs = selectors.log_search(keyword=request.query_params.get("keyword", ""), limit=SEARCH_LIMIT,
                                    user_id=request.user.pk)
        return ok([log_json(log) for log in logs])
