"""Admin routes: /api/redemption/ codes, and POST /api/topup."""

from __future__ import annotations

from rest_framework.views import APIView

from accounts.api.authentication import IsAdmin
from billing import selectors, services
from billing.api.serializers import RedemptionCreateInput, RedemptionUpdateInput, TopUpInput, redemption_json
from billing.models import RedemptionCode
from oneapi_site.api import SEARCH_LIMIT, fail, ok, page_window

NOT_FOUND = "redemption code not found"


class AdminView(APIView):
    permission_classes = [IsAdmin]


class RedemptionsView(AdminView):
    def get(self, request):
        offset, limit = page_window(request)
        return ok([redemption_json(c) for c in selectors.redemption_list(offset=offset, limit=limit)])

    def post(self, request):
        body = RedemptionCreateInput(data=request.data)
        body.is_valid(raise_exception=True)
        keys = services.redemption_create_batch(creator=request.user, **body.validated_data)
        return ok(keys)

    def put(self, request):
        body = RedemptionUpdateInput(data=request.data)
        body.is_valid(raise_exception=True)
        fields = dict(body.validated_data)
        code = RedemptionCode.objects.filter(pk=fields.pop("id")).first()
        if code is None:
            return fail(NOT_FOUND, field="id")
        status_only = (request.query_params.get("status_only") or "").strip().lower() not in ("", "0", "false")
        code = services.redemption_update(code=code, status_only=status_only, **fields)
        return ok(redemption_json(code))


class RedemptionSearchView(AdminView):
    def get(self, request):
        codes = selectors.redemption_search(keyword=request.query_params.get("keyword", ""), limit=SEARCH_LIMIT)
        return ok([redemption_json(c) for c in codes])


class RedemptionDetailView(AdminView):
    def get(self, request, code_id: int):
        code = RedemptionCode.objects.filter(pk=code_id).first()
        if code is None:
            return fail(NOT_FOUND)
        return ok(redemption_json(code))

    def delete(self, request, code_id: int):
        if not services.redemption_delete(code_id=code_id):
            return fail(NOT_FOUND)
        return ok()


class TopUpView(AdminView):
    """An admin credits a user, e.g. from an external payment page (one-api's POST /api/topup)."""

    def post(self, request):
        body = TopUpInput(data=request.data)
        body.is_valid(raise_exception=True)
        services.user_topup(by=request.user, **body.validated_data)
        return ok()
