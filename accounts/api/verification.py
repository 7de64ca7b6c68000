"""Codes and resets by e-mail: GET /api/verification, GET /api/reset_password, POST /api/user/reset (one-api)."""

from __future__ import annotations

from rest_framework import serializers

from accounts import limits, verification
from accounts.api.session import PublicView, rate_limited, turnstile_refused
from accounts.limits import critical_limited
from oneapi_site.api import ok
from oneapi_site.lib.address import mail_address


class VerificationView(PublicView):
    """Mail a registration code to `?email=`; the address must be unused and, if restricted, whitelisted.

    With Turnstile on, one-api's front end sends `&turnstile=<token>` too (so do register and reset_password).
    """

    def get(self, request):
        if critical_limited(request._request):
            return rate_limited()
        if refused := turnstile_refused(request):
            return refused
        verification.email_code_send(email=request.query_params.get("email", ""))
        return ok()


class ResetPasswordView(PublicView):
    """Mail a reset link to `?email=`. Success whether or not an account has it: nothing to enumerate."""

    def get(self, request):
        if critical_limited(request._request):
            return rate_limited()
        if refused := turnstile_refused(request):
            return refused
        verification.password_reset_send(email=request.query_params.get("email", ""),
                                          link_base=mail_address(request._request))
        return ok()


class ResetInput(serializers.Serializer):
    email = serializers.CharField(allow_blank=True)
    token = serializers.CharField(allow_blank=True)


class ResetView(PublicView):
    """Use the link's email and token: data is a new random 12-character password, as one-api answers."""

    def post(self, request):
        if critical_limited(request._request):
            return rate_limited()
        body = ResetInput(data=request.data)
        body.is_valid(raise_exception=True)
        email, token = body.validated_data["email"], body.validated_data["token"]
        user = verification.password_reset_user(email=email, token=token)
        password = verification.password_reset_complete(email=email, token=token)
        response = ok(password)
        if user is not None:  # the mailbox's owner: past a lock strangers keep (accounts/limits.py)
            limits.account_owner_proven(request._request, response, user)
        return response
