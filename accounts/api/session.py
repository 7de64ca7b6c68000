"""Sign-in: POST /api/user/login, GET /api/user/logout, POST /api/user/register."""

from __future__ import annotations

from django.contrib.auth import login, logout
from django.utils.translation import gettext as _
from rest_framework import status
from rest_framework.views import APIView

from accounts import limits, selectors, turnstile
from accounts.api import origin_check
from accounts.api.serializers import LoginInput, RegisterInput, login_json
from accounts.limits import critical_limited
from accounts.services.signup import user_signup
from oneapi_site import options
from oneapi_site.api import fail, ok


class PublicView(APIView):
    """No authentication, hence no session to check the origin of; a login checks it itself."""

    authentication_classes: list = []
    permission_classes: list = []


WRONG_CREDENTIALS = "wrong username or password, or the user is disabled"


def rate_limited():
    """one-api's critical limit (20 per 20 minutes per IP), in the envelope, with HTTP 429."""
    return fail(_("Too many attempts from your address; wait a few minutes and try again."),
                http_status=status.HTTP_429_TOO_MANY_REQUESTS)


def turnstile_refused(request):
    """None when the request passes Turnstile (or it is off), else the refusal: one-api's `?turnstile=<token>`."""
    try:
        turnstile.check(request._request, request.query_params.get(turnstile.API_PARAM, ""))
    except turnstile.TurnstileError as exc:
        return fail(str(exc), http_status=status.HTTP_403_FORBIDDEN)
    return None


class LoginView(PublicView):
    def post(self, request):
        # No session to ride on yet, but another site's page could sign a visitor in as someone else
        # (login CSRF): the same rule as a session's writes.
        origin_check.check_write(request._request)
        if critical_limited(request._request):
            return rate_limited()
        if refused := turnstile_refused(request):
            return refused
        if not options.get("PasswordLoginEnabled"):
            return fail("password login has been turned off by the administrator")
        body = LoginInput(data=request.data)
        body.is_valid(raise_exception=True)
        username, password = body.validated_data["username"], body.validated_data["password"]
        if not username:
            return fail("username is required", field="username")
        if not password:
            return fail("password is required", field="password")
        if limits.account_locked(request._request, username) and not limits.human_check_lifts_lock(
                request._request, request.query_params.get(turnstile.API_PARAM, "")):
            message = limits.LOCKED_CHECK_MESSAGE if turnstile.enabled() else limits.LOCKED_MESSAGE
            return fail(str(message), http_status=status.HTTP_429_TOO_MANY_REQUESTS)
        user = selectors.user_by_credentials(login=username, password=password)
        if user is None:
            limits.account_failed(request._request, username)
        if user is None or not user.is_active:
            return fail(WRONG_CREDENTIALS)
        login(request._request, user, backend="django.contrib.auth.backends.ModelBackend")
        response = ok(login_json(user))
        limits.account_owner_proven(request._request, response, user)
        return response


class LogoutView(PublicView):
    def get(self, request):
        logout(request._request)
        return ok()


class RegisterView(PublicView):
    """The page's rules too (user_signup): switches, e-mail code, password validators, gifts."""

    def post(self, request):
        if critical_limited(request._request):
            return rate_limited()
        if refused := turnstile_refused(request):
            return refused
        body = RegisterInput(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        user_signup(username=data["username"], password=data["password"],
                    display_name=data["display_name"], email=data["email"],
                    verification_code=data["verification_code"], aff_code=data["aff_code"])
        return ok()
