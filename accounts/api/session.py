"""Sign-in: POST /api/user/login, GET /api/user/logout, POST /api/user/register."""

from __future__ import annotations

from django.contrib.auth import login, logout
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.api.serializers import LoginInput, RegisterInput, login_json
from accounts.models import User
from billing import options
from oneapi_site.api import fail, ok


class PublicView(APIView):
    """No authentication, hence no CSRF check: a login form has no session yet."""

    authentication_classes: list = []
    permission_classes: list = []


WRONG_CREDENTIALS = "wrong username or password, or the user is disabled"


class LoginView(PublicView):
    def post(self, request):
        if not options.get("PasswordLoginEnabled"):
            return fail("password login has been turned off by the administrator")
        body = LoginInput(data=request.data)
        body.is_valid(raise_exception=True)
        username, password = body.validated_data["username"], body.validated_data["password"]
        if not username:
            return fail("username is required", field="username")
        if not password:
            return fail("password is required", field="password")
        user = selectors.user_by_login(login=username)
        if user is None:
            User().set_password(password)  # hash anyway, so the answer time does not reveal which names exist
            return fail(WRONG_CREDENTIALS)
        if not user.check_password(password) or not user.is_active:
            return fail(WRONG_CREDENTIALS)
        login(request._request, user, backend="django.contrib.auth.backends.ModelBackend")
        return ok(login_json(user))


class LogoutView(PublicView):
    def get(self, request):
        logout(request._request)
        return ok()


class RegisterView(PublicView):
    def post(self, request):
        if not options.get("RegisterEnabled"):
            return fail("new registrations have been turned off by the administrator")
        if not options.get("PasswordRegisterEnabled"):
            return fail("registration with a password has been turned off; use another sign-in method")
        body = RegisterInput(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if options.get("EmailVerificationEnabled"):
            if not data["email"]:
                return fail("email verification is on: an email address is required", field="email")
            if not data["verification_code"]:
                return fail("email verification is on: enter the code sent to your email",
                            field="verification_code")
            # Codes are sent and checked by the email flow, which is not built yet: refuse rather than skip it.
            return fail("email verification codes cannot be checked on this server yet", field="verification_code")
        services.user_register(username=data["username"], password=data["password"],
                               display_name=data["display_name"], email=data["email"], aff_code=data["aff_code"])
        return ok()
