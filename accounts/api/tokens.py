"""A user's own relay tokens: /api/token/. Another user's token answers "not found", never its data."""

from __future__ import annotations

from rest_framework.views import APIView

from accounts import selectors
from accounts.api.authentication import IsUser
from accounts.api.serializers import TokenInput, token_json
from accounts.services.tokens import token_create, token_delete, token_update
from oneapi_site.api import SEARCH_LIMIT, fail, ok, page_window
from oneapi_site.lib.limit_values import BUDGET_FIELDS, LIMIT_FIELDS

NOT_FOUND = "token not found"


class TokenView(APIView):
    permission_classes = [IsUser]


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false")


class TokensView(TokenView):
    def get(self, request):
        offset, limit = page_window(request)
        tokens = selectors.token_list(user=request.user, offset=offset, limit=limit,
                                      order=request.query_params.get("order", ""))
        return ok([token_json(t) for t in tokens])

    def post(self, request):
        body = TokenInput(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        token = token_create(
            user=request.user, by=request.user, name=(data.get("name") or "").strip(),
            remain_quota=data.get("remain_quota", 0), unlimited_quota=data.get("unlimited_quota", False),
            expired_time=data.get("expired_time", -1), models=data.get("models") or "", subnet=data.get("subnet") or "",
            **{name: data[name] for name in (*LIMIT_FIELDS, *BUDGET_FIELDS) if name in data},
        )
        return ok(token_json(token))

    def put(self, request):
        body = TokenInput(data=request.data)
        body.is_valid(raise_exception=True)
        fields = dict(body.validated_data)
        token_id = fields.pop("id", None)
        if not token_id:
            return fail("id is required", field="id")
        token = selectors.token_of(user=request.user, token_id=token_id)
        if token is None:
            return fail(NOT_FOUND, field="id")
        if "name" in fields:
            fields["name"] = (fields["name"] or "").strip()
        token = token_update(token=token, by=request.user,
                             status_only=_flag(request.query_params.get("status_only")), **fields)
        return ok(token_json(token))


class TokenSearchView(TokenView):
    def get(self, request):
        tokens = selectors.token_search(user=request.user, keyword=request.query_params.get("keyword", ""),
                                        limit=SEARCH_LIMIT)
        return ok([token_json(t) for t in tokens])


class TokenDetailView(TokenView):
    def get(self, request, token_id: int):
        token = selectors.token_of(user=request.user, token_id=token_id)
        if token is None:
            return fail(NOT_FOUND)
        return ok(token_json(token))

    def delete(self, request, token_id: int):
        token = selectors.token_of(user=request.user, token_id=token_id)
        if token is None:
            return fail(NOT_FOUND)
        token_delete(token=token, by=request.user)
        return ok()
