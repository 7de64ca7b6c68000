"""Management API auth: a session cookie, or `Authorization: <access token>` (one-api)."""

from __future__ import annotations

from rest_framework import authentication, exceptions, permissions

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
            from django.contrib.auth import logout

            logout(request._request)
            raise exceptions.AuthenticationFailed("this user has been disabled")
        self.enforce_csrf(request)
        return user, None


class _RoleAtLeast(permissions.BasePermission):
    role = User.Role.COMMON
    message = "permission denied"

    def has_permission(self, request, view):
        user = request.user
        if not user or not getattr(user, "is_authenticated", False):
            raise exceptions.NotAuthenticated("not logged in and no access token given")
        return user.is_active and user.role >= self.role


class IsUser(_RoleAtLeast):
    role = User.Role.COMMON


class IsAdmin(_RoleAtLeast):
    role = User.Role.ADMIN
    message = "this needs an administrator"


class IsRoot(_RoleAtLeast):
    role = User.Role.ROOT
    message = "this needs the root user"
