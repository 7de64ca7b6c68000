"""Management API auth: a session cookie, or `Authorization: <access token>` (one-api)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import logout
from django.utils.translation import gettext
from rest_framework import authentication, exceptions
from rest_framework import permissions as drf_permissions

from accounts import permissions
from accounts.models import User


class AccessTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "").strip()
        if not header:
            return None
        token = header.removeprefix("Bearer ").strip()
        if not token or token.startswith("sk-"):
            return None
        user = User.objects.filter(access_token=token).first()
        if user is None:
            raise exceptions.AuthenticationFailed("invalid access token")
        if not user.is_active:
            raise exceptions.AuthenticationFailed("this user has been disabled")
        return user, token

    def authenticate_header(self, request):
        return "Bearer"


class SessionAuthentication(authentication.SessionAuthentication):
    """The session cookie of the web pages; disabled users lose it at once."""

    def authenticate(self, request):
        user = getattr(request._request, "user", None)
        if not user or not user.is_authenticated:
            return None
        if not user.is_active:
            logout(request._request)
            raise exceptions.AuthenticationFailed("this user has been disabled")
        self.enforce_csrf(request)
        return user, None


class _RoleAtLeast(drf_permissions.BasePermission):
    role = User.Role.COMMON
    message = "permission denied"

    def has_permission(self, request, view):
        user = request.user
        if not user or not getattr(user, "is_authenticated", False):
            raise exceptions.NotAuthenticated("not logged in and no access token given")
        return permissions.role_at_least(user, self.role)


class IsUser(_RoleAtLeast):
    role = User.Role.COMMON


class IsAdmin(_RoleAtLeast):
    role = User.Role.ADMIN
    message = "this needs an administrator"


class IsRoot(_RoleAtLeast):
    role = User.Role.ROOT
    message = "this needs the root user"


def cross_site(request) -> bool:
    """Whether the browser says another site sent this request: Fetch Metadata, else the Origin header.

    `same-site` counts as another site too: a sibling subdomain is someone else's origin, and SameSite=Lax
    cookies go along even with its scripts' requests. No such header: not a browser, or an old one.
    """
    site = request.META.get("HTTP_SEC_FETCH_SITE", "").strip().lower()
    if site:
        return site not in ("same-origin", "none")
    origin = request.META.get("HTTP_ORIGIN", "").strip()
    if not origin:
        return False
    return origin != f"{request.scheme}://{request.get_host()}" and origin not in settings.CSRF_TRUSTED_ORIGINS


class SameSiteSession(drf_permissions.BasePermission):
    """A GET that changes something must not work from another site's link, which carries the session
    cookie (SameSite=Lax). Access-token callers are no browser riding on a cookie, and pass."""

    message = "refused: this request came from another site"

    def has_permission(self, request, view):
        if request.auth is None and cross_site(request._request):
            self.message = gettext("This request came from another site. Open this site itself to do this.")
            return False
        return True
