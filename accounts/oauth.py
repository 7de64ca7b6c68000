"""Sign-in through GitHub OAuth and generic OIDC (one-api's controller/auth/github.go and oidc.go).

A provider knows three things: its authorize URL, how to exchange a code for an access token, and how
to read the user with that token. It raises `OAuthError`, whose text is fit to show the user: no
secrets, no tokens, no raw provider bodies (those go to the log, secrets never).

The flow, shared by the pages and /api/oauth/...:
- `flow_start` keeps a one-use state in the session (for OIDC also a PKCE S256 verifier, which one-api
  lacks) and gives the URL to send the browser to;
- `flow_finish` checks the state, talks to the provider and finds, links or creates the account
  (`sign_in`); the caller logs the user in.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import string
import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx
from django.conf import settings
from django.db.models import Max
from django.urls import reverse
from django.utils.translation import gettext as _

from accounts import selectors
from accounts.models import User
from accounts.services.oauth import user_oauth_link, user_oauth_register
from accounts.services.users import USERNAME_MAX_LENGTH
from oneapi_site import options
from oneapi_site.lib.address import page_address
from oneapi_site.lib.errors import ServiceError

log = logging.getLogger("oneapi.oauth")

TIMEOUT = 10.0  # seconds for each call to a provider
STATE_LENGTH = 12  # one-api's /api/oauth/state
STATE_MAX_AGE = 600  # seconds a started sign-in stays valid
PENDING_MAX = 5  # sign-ins started in other tabs that stay valid at once
SESSION_KEY = "oauth_pending"
DISCOVERY_TTL = 3600  # seconds an OIDC discovery document is kept
_STATE_ALPHABET = string.ascii_letters + string.digits


class OAuthError(Exception):
    """A sign-in that did not work; str() is the message for the user."""


@dataclass(frozen=True)
class Identity:
    """Who the provider says the user is."""

    provider: str
    id: str
    username: str = ""  # the provider's handle: GitHub login, OIDC preferred_username
    display_name: str = ""
    email: str = ""


# --- HTTP ----------------------------------------------------------------------------

def _call(provider: Provider, method: str, url: str, *, what: str, **kwargs: Any) -> Any:
    """One request to the provider, its JSON body back; failures become an OAuthError naming the provider.

    Secrets travel in the body or headers, never in the URL, so neither the URL nor these messages hold them.
    """
    label = provider.label
    kwargs.setdefault("headers", {}).setdefault("Accept", "application/json")
    try:
        with httpx.Client(timeout=TIMEOUT) as client:
            response = client.request(method, url, **kwargs)
    except httpx.TimeoutException:
        log.warning("oauth %s: %s timed out (%s)", provider.name, what, url)
        raise OAuthError(_("%(provider)s did not answer in time. Please try again.") % {"provider": label}) from None
    except httpx.HTTPError as exc:
        log.warning("oauth %s: %s failed: %s (%s)", provider.name, what, type(exc).__name__, url)
        raise OAuthError(_("Could not reach %(provider)s. Please try again later.") % {"provider": label}) from None
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if response.status_code >= 400 or error:
        code = error if isinstance(error, str) else ""
        log.warning("oauth %s: %s answered HTTP %s %s", provider.name, what, response.status_code, code)
        if code:
            raise OAuthError(_("%(provider)s refused the sign-in (%(error)s). Please try again.")
                             % {"provider": label, "error": code[:60]})
        raise OAuthError(_("%(provider)s answered with an error (HTTP %(status)s). Please try again later.")
                         % {"provider": label, "status": response.status_code})
    if body is None:
        log.warning("oauth %s: %s answered with a body that is not JSON", provider.name, what)
        raise OAuthError(_("%(provider)s sent an answer that could not be read.") % {"provider": label})
    return body


def _access_token(provider: Provider, body: Any) -> str:
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise OAuthError(_("%(provider)s did not return an access token.") % {"provider": provider.label})
    return token


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


# --- Providers -----------------------------------------------------------------------

class Provider:
    name: ClassVar[str]
    label: ClassVar[str]  # as shown to users
    id_field: ClassVar[str]  # the User column holding the provider's id (one-api's name)
    username_prefix: ClassVar[str]  # new accounts are <prefix><n> (one-api)
    uses_pkce: ClassVar[bool] = False
    redirect_uri_required: ClassVar[bool] = False

    def enabled(self) -> bool:
        raise NotImplementedError

    def authorize_url(self, *, state: str, redirect_uri: str, code_challenge: str = "") -> str:
        raise NotImplementedError

    def exchange(self, *, code: str, redirect_uri: str, code_verifier: str = "") -> str:
        """The access token for an authorization code."""
        raise NotImplementedError

    def identity(self, *, access_token: str) -> Identity:
        raise NotImplementedError


class GitHubProvider(Provider):
    """https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps"""

    name = "github"
    label = "GitHub"
    id_field = "github_id"
    username_prefix = "github_"

    @staticmethod
    def _oauth_base() -> str:
        return settings.GITHUB_OAUTH_BASE.rstrip("/")

    @staticmethod
    def _api_base() -> str:
        return settings.GITHUB_API_BASE.rstrip("/")

    def enabled(self) -> bool:
        return bool(options.get("GitHubOAuthEnabled"))

    def authorize_url(self, *, state: str, redirect_uri: str, code_challenge: str = "") -> str:
        # redirect_uri may be a subdirectory of the app's registered callback, so an app registered
        # with one-api's {ServerAddress}/oauth/github keeps working.
        query = {"client_id": options.get("GitHubClientId"), "redirect_uri": redirect_uri,
                 "state": state, "scope": "user:email"}
        return f"{self._oauth_base()}/login/oauth/authorize?{urlencode(query)}"

    def exchange(self, *, code: str, redirect_uri: str, code_verifier: str = "") -> str:
        # GitHub answers a bad code with HTTP 200 and {"error": "bad_verification_code"}: _call checks both.
        data = {"client_id": options.get("GitHubClientId"), "client_secret": options.get("GitHubClientSecret"),
                "code": code}
        if redirect_uri:
            data["redirect_uri"] = redirect_uri
        body = _call(self, "POST", f"{self._oauth_base()}/login/oauth/access_token", what="token exchange", data=data)
        return _access_token(self, body)

    def identity(self, *, access_token: str) -> Identity:
        headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/vnd.github+json"}
        user = _call(self, "GET", f"{self._api_base()}/user", what="user", headers=dict(headers))
        github_id = user.get("id") if isinstance(user, dict) else None
        if github_id in (None, "") or isinstance(github_id, bool):
            raise OAuthError(_("%(provider)s did not return a user id.") % {"provider": self.label})
        login = _text(user.get("login"))
        # /user shows the public address only; with the user:email scope the primary verified one is there.
        email = _text(user.get("email")) or self._primary_email(headers)
        return Identity(provider=self.name, id=str(github_id), username=login,
                        display_name=_text(user.get("name")) or login, email=email)

    def _primary_email(self, headers: dict) -> str:
        try:
            emails = _call(self, "GET", f"{self._api_base()}/user/emails", what="emails", headers=dict(headers))
        except OAuthError:
            return ""  # an address is nice to have, not a reason to refuse the sign-in
        for item in emails if isinstance(emails, list) else []:
            if isinstance(item, dict) and item.get("primary") and item.get("verified"):
                return _text(item.get("email"))
        return ""


_discovery: dict[str, tuple[float, dict]] = {}
_discovery_lock = threading.Lock()


def discovery_cache_clear() -> None:
    with _discovery_lock:
        _discovery.clear()


class OidcProvider(Provider):
    """OpenID Connect, authorization code flow with PKCE; client_secret_post; the id is userinfo's `sub`."""

    name = "oidc"
    label = "OIDC"
    id_field = "oidc_id"
    username_prefix = "oidc_"
    uses_pkce = True
    redirect_uri_required = True
    ENDPOINTS = {"authorization_endpoint": "OidcAuthorizationEndpoint", "token_endpoint": "OidcTokenEndpoint",
                 "userinfo_endpoint": "OidcUserinfoEndpoint"}

    def enabled(self) -> bool:
        return bool(options.get("OidcEnabled"))

    def _discover(self, url: str) -> dict:
        """The discovery document's endpoints, kept DISCOVERY_TTL seconds per URL."""
        now = time.monotonic()
        with _discovery_lock:
            cached = _discovery.get(url)
        if cached and cached[0] > now:
            return cached[1]
        document = _call(self, "GET", url, what="discovery", follow_redirects=True)
        if not isinstance(document, dict):
            raise OAuthError(_("%(provider)s sent an answer that could not be read.") % {"provider": self.label})
        endpoints = {key: _text(document.get(key)) for key in self.ENDPOINTS}
        with _discovery_lock:
            _discovery[url] = (now + DISCOVERY_TTL, endpoints)
        return endpoints

    def endpoint(self, key: str) -> str:
        """An endpoint set in the options wins over the discovered one, so one can be overridden."""
        value = _text(options.get(self.ENDPOINTS[key]))
        if not value and _text(options.get("OidcWellKnown")):
            value = self._discover(_text(options.get("OidcWellKnown"))).get(key, "")
        if not value:
            log.warning("oauth oidc: no %s configured or discovered", key)
            raise OAuthError(_("OIDC sign-in is not fully configured. Please tell the administrator."))
        return value

    def authorize_url(self, *, state: str, redirect_uri: str, code_challenge: str = "") -> str:
        query = {"response_type": "code", "client_id": options.get("OidcClientId"), "redirect_uri": redirect_uri,
                 "scope": "openid profile email", "state": state}
        if code_challenge:
            query.update(code_challenge=code_challenge, code_challenge_method="S256")
        endpoint = self.endpoint("authorization_endpoint")
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}"

    def exchange(self, *, code: str, redirect_uri: str, code_verifier: str = "") -> str:
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "client_id": options.get("OidcClientId"), "client_secret": options.get("OidcClientSecret")}
        if code_verifier:
            data["code_verifier"] = code_verifier
        body = _call(self, "POST", self.endpoint("token_endpoint"), what="token exchange", data=data)
        return _access_token(self, body)

    def identity(self, *, access_token: str) -> Identity:
        claims = _call(self, "GET", self.endpoint("userinfo_endpoint"), what="userinfo",
                       headers={"Authorization": f"Bearer {access_token}"})
        sub = claims.get("sub") if isinstance(claims, dict) else None
        if isinstance(sub, int) and not isinstance(sub, bool):
            sub = str(sub)
        if not isinstance(sub, str) or not sub.strip() or len(sub) > 255:
            raise OAuthError(_("%(provider)s did not return a user id.") % {"provider": self.label})
        handle = _text(claims.get("preferred_username"))
        # An address the provider says it has not verified is not kept.
        email = "" if claims.get("email_verified") is False else _text(claims.get("email"))
        return Identity(provider=self.name, id=sub.strip(), username=handle,
                        display_name=_text(claims.get("name")) or handle, email=email)


PROVIDERS: dict[str, Provider] = {"github": GitHubProvider(), "oidc": OidcProvider()}


def provider_get(name: str) -> Provider | None:
    return PROVIDERS.get(name)


# --- State and PKCE in the session ---------------------------------------------------------

def redirect_uri_for(request, provider: Provider) -> str:
    """{ServerAddress}/oauth/<provider>/callback/; the request's own address while ServerAddress is unset."""
    return f"{page_address(request)}{reverse('oauth_callback', args=[provider.name])}"


def _pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)  # 64 characters; RFC 7636 allows 43 to 128
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def state_issue(session, *, provider: Provider | None = None, redirect_uri: str = "", aff: str = "",
                next_url: str = "") -> tuple[str, str]:
    """A new one-use state kept in the session; with a provider, also its authorize URL (PKCE included).

    Without a provider (one-api's bare GET /api/oauth/state) the client builds the URL itself, so no
    verifier is kept and the callback exchanges the code without one.
    """
    state = "".join(secrets.choice(_STATE_ALPHABET) for _ in range(STATE_LENGTH))
    entry = {"provider": provider.name if provider else "", "redirect_uri": redirect_uri, "verifier": "",
             "aff": (aff or "")[:32], "next": next_url, "at": int(time.time())}
    url = ""
    if provider is not None:
        challenge = ""
        if provider.uses_pkce:
            entry["verifier"], challenge = _pkce_pair()
        url = provider.authorize_url(state=state, redirect_uri=redirect_uri, code_challenge=challenge)
    now = int(time.time())
    pending = {s: e for s, e in (session.get(SESSION_KEY) or {}).items() if now - e.get("at", 0) < STATE_MAX_AGE}
    pending[state] = entry
    session[SESSION_KEY] = dict(sorted(pending.items(), key=lambda item: item[1]["at"])[-PENDING_MAX:])
    return state, url


def state_consume(session, *, provider: Provider, state: str) -> dict:
    """The entry the state was issued with, removed so it cannot be used twice."""
    pending = dict(session.get(SESSION_KEY) or {})
    entry = None
    for key in list(pending):
        if secrets.compare_digest(key.encode(), (state or "").encode()):
            entry = pending.pop(key)
    session[SESSION_KEY] = pending
    if (entry is None or time.time() - entry.get("at", 0) >= STATE_MAX_AGE
            or entry.get("provider") not in ("", provider.name)):
        raise OAuthError(_("This sign-in link has expired or was opened in another browser. Please try again."))
    return entry


# --- Accounts --------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    user: User
    action: str  # "login", "register" (a new account) or "bind" (linked to the signed-in user)
    next_url: str = ""


def _disabled() -> OAuthError:
    return OAuthError(_("This user has been disabled."))


def _next_username(provider: Provider, identity: Identity, attempt: int) -> str:
    handle = identity.username
    if (attempt == 0 and provider.name == "oidc" and handle and handle.isprintable() and " " not in handle
            and len(handle) <= USERNAME_MAX_LENGTH and not selectors.username_taken(handle)):
        return handle
    # one-api names the account after the next user id: github_12, oidc_12.
    n = (User.objects.aggregate(m=Max("id"))["m"] or 0) + 1 + attempt
    return f"{provider.username_prefix}{n}"


def sign_in(*, identity: Identity, current_user: Any = None, aff: str = "") -> Outcome:
    """Find the account linked to `identity`, link it to the signed-in user, or create one (RegisterEnabled)."""
    provider = PROVIDERS[identity.provider]
    # Deleted accounts included: as in one-api, an identity stays with the account an administrator
    # deleted (as its e-mail address does), so deletion is no way to a fresh account and its gifts.
    owner = User.objects.filter(**{provider.id_field: identity.id}).order_by("status", "id").first()
    if current_user is not None and getattr(current_user, "is_authenticated", False):
        if not current_user.is_active:
            raise _disabled()
        if owner is not None and owner.pk != current_user.pk:
            raise OAuthError(_("This %(provider)s account is already linked to another user.")
                             % {"provider": provider.label})
        try:
            user_oauth_link(user=current_user, id_field=provider.id_field, external_id=identity.id)
        except ServiceError:
            raise OAuthError(_("This %(provider)s account is already linked to another user.")
                             % {"provider": provider.label}) from None
        return Outcome(user=current_user, action="bind")
    if owner is not None:
        if not owner.is_active:
            raise _disabled()
        return Outcome(user=owner, action="login")
    if not options.get("RegisterEnabled"):
        raise OAuthError(_("New registrations have been turned off by the administrator."))
    for attempt in range(5):
        username = _next_username(provider, identity, attempt)
        try:
            user = user_oauth_register(
                id_field=provider.id_field, external_id=identity.id, username=username,
                display_name=identity.display_name, email=identity.email, aff_code=aff)
        except ServiceError as exc:
            if exc.field == "username":  # another sign-up took the name meanwhile: take the next number
                continue
            raise OAuthError(str(exc)) from None
        log.info("oauth %s: created user %s (id %s)", provider.name, user.username, user.pk)
        return Outcome(user=user, action="register")
    raise OAuthError(_("Could not create an account. Please try again."))


def flow_start(request, *, provider: Provider, aff: str = "", next_url: str = "") -> str:
    """The provider's authorize URL for this browser; the state waits in its session."""
    if not provider.enabled():
        raise OAuthError(_("%(provider)s sign-in is not enabled.") % {"provider": provider.label})
    _state, url = state_issue(request.session, provider=provider, redirect_uri=redirect_uri_for(request, provider),
                              aff=aff, next_url=next_url)
    return url


def flow_finish(request, *, provider: Provider, code: str, state: str, error: str = "",
                current_user: Any = None) -> Outcome:
    """Check the state, get the identity from the provider, then sign in (see `sign_in`).

    `current_user` is the signed-in user, if any (the page's request.user; /api passes DRF's).
    """
    if not provider.enabled():
        raise OAuthError(_("%(provider)s sign-in is not enabled.") % {"provider": provider.label})
    entry = state_consume(request.session, provider=provider, state=state)
    if error:
        raise OAuthError(_("The sign-in was cancelled or refused at %(provider)s (%(error)s).")
                         % {"provider": provider.label, "error": error[:60]})
    if not code:
        raise OAuthError(_("No authorization code came back from %(provider)s. Please try again.")
                         % {"provider": provider.label})
    # The token request repeats the authorize request's redirect_uri. A client that built the authorize
    # URL itself (bare /api/oauth/state) sent GitHub none, so none goes now; OIDC always needs one.
    redirect_uri = entry.get("redirect_uri") or ""
    if not redirect_uri and provider.redirect_uri_required:
        redirect_uri = redirect_uri_for(request, provider)
    access_token = provider.exchange(code=code, redirect_uri=redirect_uri, code_verifier=entry.get("verifier", ""))
    identity = provider.identity(access_token=access_token)
    outcome = sign_in(identity=identity, current_user=current_user, aff=entry.get("aff", ""))
    return Outcome(user=outcome.user, action=outcome.action, next_url=entry.get("next", ""))
