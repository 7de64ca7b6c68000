"""Sign-in by GitHub and OIDC over /api: GET /api/oauth/state, /api/oauth/github, /api/oauth/oidc (one-api).

The callbacks answer as POST /api/user/login does (the session cookie and the user), or with the
message "bind" when a signed-in user linked the account: one-api's web client looks for that word.
"""

from __future__ import annotations

from django.contrib.auth import login
from django.utils.translation import gettext as _

from accounts import limits, oauth
from accounts.api.authentication import SessionAuthentication
from accounts.api.serializers import login_json
from accounts.api.session import PublicView
from oneapi_site.api import fail, ok


class StateView(PublicView):
    """A 12-character state kept in the session (one-api). `?provider=github|oidc` also returns
    `authorize_url`, with PKCE for OIDC, for clients that would rather not build it; `?aff=` is the
    inviter's code, used if the sign-in creates an account."""

    def get(self, request):
        django_request = request._request
        name = request.query_params.get("provider", "").strip()
        aff = request.query_params.get("aff", "").strip()
        if not name:
            state, _url = oauth.state_issue(django_request.session, aff=aff)
            return ok(state)
        provider = oauth.provider_get(name)
        if provider is None:
            return fail(_("Unknown sign-in provider."), field="provider")
        if not provider.enabled():
            return fail(_("%(provider)s sign-in is not enabled.") % {"provider": provider.label})
        try:
            state, url = oauth.state_issue(django_request.session, provider=provider, aff=aff,
                                           redirect_uri=oauth.redirect_uri_for(django_request, provider))
        except oauth.OAuthError as exc:
            return fail(str(exc))
        return ok(state, authorize_url=url)


class CallbackView(PublicView):
    """Public, but reads the session: a signed-in user's callback links the account instead."""

    authentication_classes = [SessionAuthentication]
    provider_name = ""

    def get(self, request):
        django_request = request._request
        if limits.critical_limited(django_request):
            return fail(_("Too many sign-in attempts. Please try again later."), http_status=429)
        provider = oauth.provider_get(self.provider_name)
        params = request.query_params
        try:
            outcome = oauth.flow_finish(django_request, provider=provider, code=params.get("code", ""),
                                        state=params.get("state", ""), error=params.get("error", ""),
                                        current_user=request.user)
        except oauth.OAuthError as exc:
            return fail(str(exc))
        if outcome.action == "bind":
            return ok(message="bind")
        login(django_request, outcome.user, backend="django.contrib.auth.backends.ModelBackend")
        return ok(login_json(outcome.user))


class GitHubView(CallbackView):
    provider_name = "github"


class OidcView(CallbackView):
    provider_name = "oidc"
