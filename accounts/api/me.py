"""The signed-in user's own routes: /api/user/self, /token, /aff, /available_models, /topup, /dashboard."""

from __future__ import annotations

from django.contrib.auth import logout, update_session_auth_hash
from rest_framework.views import APIView

from accounts.api.authentication import IsUser, SameSiteSession
from accounts.api.serializers import RedeemInput, SelfUpdateInput, user_json
from accounts.services.users import user_access_token_reset, user_aff_code_ensure, user_delete, user_profile_update
from billing import selectors as billing_selectors
from billing import services as billing_services
from oneapi_site.api import ok
from providers import selectors as provider_selectors


class UserView(APIView):
    permission_classes = [IsUser]


class SelfView(UserView):
    def get(self, request):
        return ok(user_json(request.user))

    def put(self, request):
        body = SelfUpdateInput(data=request.data)
        body.is_valid(raise_exception=True)
        user = user_profile_update(user=request.user, **body.validated_data)
        if body.validated_data.get("password") and request.auth is None:
            # A session user keeps their session after changing their password.
            update_session_auth_hash(request._request, user)
        return ok(user_json(user))

    def delete(self, request):
        user_delete(user=request.user)
        if request.auth is None:
            logout(request._request)
        return ok()


class AccessTokenView(UserView):
    """A new management access token; the old one stops working (one-api's GET /api/user/token).

    A GET for one-api's front end, so a link on another site could rotate it: that is refused.
    """

    permission_classes = [IsUser, SameSiteSession]

    def get(self, request):
        return ok(user_access_token_reset(user=request.user))


class AffCodeView(UserView):
    def get(self, request):
        return ok(user_aff_code_ensure(user=request.user))


class AvailableModelsView(UserView):
    def get(self, request):
        return ok(provider_selectors.group_models(group=request.user.group))


class RedeemView(UserView):
    def post(self, request):
        body = RedeemInput(data=request.data)
        body.is_valid(raise_exception=True)
        quota = billing_services.redemption_redeem(user_id=request.user.pk, key=body.validated_data["key"])
        return ok(quota)


class DashboardView(UserView):
    def get(self, request):
        return ok(billing_selectors.user_dashboard(user_id=request.user.pk))
