"""Management API auth: a session cookie, or `Authorization: <access token>` (one-api)."""

from __future__ import annotations

from django.contrib.auth import logout
from rest_framework import authentication, exceptions
from rest_framework import permissions as drf_permissions

from accounts import permissions
from accounts.api import origin_check
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
    """The session cookie of the web pages (and of one-api's front end); disabled users lose it at once."""

    def authenticate(self, request):
        user = getattr(request._request, "user", None)
        if not user or not user.is_authenticated:
            return None
        if not user.is_active:
            logout(request._request)
            raise exceptions.AuthenticationFailed("this user has been disabled")
        self.enforce_csrf(request)
        return user, None

    def enforce_csrf(self, request):
        # One rule for one-api's front end, scripts and the console: see accounts/api/origin_check.py.
        origin_check.check_write(request._request)


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


class SameSiteSession(drf_permissions.BasePermission):
    """A GET that changes something must not work from another site's link, which carries the session
    cookie (SameSite=Lax). Access-token callers are no browser riding on a cookie, and pass."""

    message = "refused: this request came from another site"

    def has_permission(self, request, view):
        if request.auth is None and origin_check.cross_site(request._request):
            self.message = origin_check.refusal().detail
            return False
        return True
