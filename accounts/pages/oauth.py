"""Sign-in by GitHub and OIDC: /oauth/<provider>/ sends the browser to the provider, which sends it back
to /oauth/<provider>/callback/. A signed-in visitor links the account instead (one-api's bind)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.http import Http404
from django.shortcuts import redirect
from django.utils.translation import gettext as _

from accounts import limits, oauth
from accounts.pages.redirects import local_url


def _provider(name: str) -> oauth.Provider:
    provider = oauth.provider_get(name)
    if provider is None:
        raise Http404
    return provider


def _back(request):
    """Where a refusal is shown: the login page, or the settings page of a signed-in user linking an account."""
    return redirect("settings" if request.user.is_authenticated else "login")


def oauth_start(request, provider: str):
    provider_obj = _provider(provider)
    try:
        url = oauth.flow_start(request, provider=provider_obj, aff=request.GET.get("aff", "").strip(),
                               next_url=local_url(request, request.GET.get("next", "")))
    except oauth.OAuthError as exc:
        messages.error(request, str(exc))
        return _back(request)
    return redirect(url)


def oauth_callback(request, provider: str):
    provider_obj = _provider(provider)
    if limits.critical_limited(request):
        messages.error(request, _("Too many sign-in attempts. Please try again later."))
        return _back(request)
    try:
        outcome = oauth.flow_finish(request, provider=provider_obj, code=request.GET.get("code", ""),
                                    state=request.GET.get("state", ""), error=request.GET.get("error", ""),
                                    current_user=request.user)
    except oauth.OAuthError as exc:
        messages.error(request, str(exc))
        return _back(request)
    if outcome.action == "bind":
        messages.success(request, _("Your %(provider)s account is now linked. You can sign in with it.")
                         % {"provider": provider_obj.label})
        return redirect(local_url(request, outcome.next_url) or "settings")
    login(request, outcome.user, backend="django.contrib.auth.backends.ModelBackend")
    if outcome.action == "register":
        messages.success(request, _("Welcome! Your account %(username)s has been created.")
                         % {"username": outcome.user.username})
    return redirect(local_url(request, outcome.next_url) or "dashboard")
