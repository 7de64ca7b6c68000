"""Request guards of the web pages: root's default password, and Secure cookies behind HTTPS."""

from __future__ import annotations

from urllib.parse import urlencode

from django.shortcuts import redirect
from django.urls import reverse

from accounts.selectors import uses_default_password

# Reachable with the default password: what it takes to change it or leave, and what is no page.
# /api/ keeps its envelope for API clients (one-api has no such rule there).
EXEMPT_PREFIXES = ("/static/", "/i18n/", "/api/", "/v1/", "/favicon.ico")


class DefaultPasswordMiddleware:
    """A signed-in root who still has 123456 sees nothing but the change-password page, admin included."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path
        if not path.startswith(EXEMPT_PREFIXES) and path not in self._exempt_paths():
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated and uses_default_password(user):
                target = reverse("password_change_required")
                if request.method == "GET" and path != "/":
                    target += "?" + urlencode({"next": request.get_full_path()})
                return redirect(target)
        return self.get_response(request)

    @staticmethod
    def _exempt_paths() -> tuple[str, ...]:
        return reverse("password_change_required"), reverse("logout"), reverse("admin:logout")


class SecureCookieMiddleware:
    """Over HTTPS (directly, or behind a trusted proxy that sends X-Forwarded-Proto: oneapi_site/proxy.py) every
    cookie is Secure; a client that writes the header itself changes nothing.

    SESSION_COOKIE_SECURE would also break plain-HTTP installs, which one-api supports; deciding per
    request keeps both working. Sits above the session, CSRF and message middleware so that it sees
    the cookies they set on the way out.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.is_secure():
            for morsel in response.cookies.values():
                morsel["secure"] = True
        return response
