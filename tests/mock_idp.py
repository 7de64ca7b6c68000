"""A local identity provider for the sign-in tests: GitHub's OAuth and API hosts, and an OIDC provider.

A real HTTP server in a thread (tests/mock_http.py), so the gateway's httpx calls go over a
socket exactly as they would to GitHub or Keycloak. It checks what a strict provider checks (client
credentials, one-use codes, redirect_uri, PKCE S256) and records every request so tests can assert
what the gateway sent.

GitHub (point GITHUB_OAUTH_BASE and GITHUB_API_BASE at `url`):
  GET  /login/oauth/authorize       -> 302 to redirect_uri with code and state (the user "agrees")
  POST /login/oauth/access_token    -> {"access_token"}; errors as GitHub sends them: HTTP 200 {"error"}
  GET  /user, /user/emails          -> `github_user`, `github_emails` for a valid Bearer token
OIDC (discovery at `well_known_url`):
  GET  /oidc/.well-known/openid-configuration, GET /oidc/authorize, POST /oidc/token, GET /oidc/userinfo
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlencode

from tests.mock_http import Answer, MockServer, Recorded


@dataclass
class Grant:
    provider: str
    client_id: str
    redirect_uri: str
    claims: dict
    code_challenge: str = ""
    code_challenge_method: str = ""


@dataclass
class MockIdP(MockServer):
    github_client_id: str = "gh-client-id"
    github_client_secret: str = "gh-client-secret-value"
    oidc_client_id: str = "oidc-client-id"
    oidc_client_secret: str = "oidc-client-secret-value"
    github_user: dict = field(default_factory=dict)
    github_emails: list = field(default_factory=list)
    oidc_claims: dict = field(default_factory=dict)

    name = "mock-idp"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._codes: dict[str, Grant] = {}
        self._tokens: dict[str, Grant] = {}
        self.reset()

    # --- set-up --------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.base_url

    @property
    def issuer(self) -> str:
        return f"{self.url}/oidc"

    @property
    def well_known_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def reset(self) -> None:
        self.github_user = {"id": 4242, "login": "octocat", "name": "The Octocat", "email": "octocat@github.example"}
        self.github_emails = [{"email": "octo-primary@github.example", "primary": True, "verified": True}]
        self.oidc_claims = {"sub": "oidc-subject-1", "preferred_username": "dora", "name": "Dora Explorer",
                            "email": "dora@idp.example", "email_verified": True}
        self.clear()
        self._codes.clear()
        self._tokens.clear()

    def issue_code(self, *, provider: str, redirect_uri: str = "", code_challenge: str = "") -> str:
        """A code as /authorize would give it, for tests that skip the browser leg (the /api variants)."""
        claims = dict(self.github_user if provider == "github" else self.oidc_claims)
        client_id = self.github_client_id if provider == "github" else self.oidc_client_id
        code = secrets.token_urlsafe(16)
        self._codes[code] = Grant(provider, client_id, redirect_uri, claims, code_challenge,
                                  "S256" if code_challenge else "")
        return code

    # --- answers ---------------------------------------------------------------

    def handle(self, request: Recorded) -> Answer:
        route = {
            ("GET", "/login/oauth/authorize"): self._github_authorize,
            ("POST", "/login/oauth/access_token"): self._github_token,
            ("GET", "/user"): self._github_user,
            ("GET", "/user/emails"): self._github_emails,
            ("GET", "/oidc/.well-known/openid-configuration"): self._oidc_discovery,
            ("GET", "/oidc/authorize"): self._oidc_authorize,
            ("POST", "/oidc/token"): self._oidc_token,
            ("GET", "/oidc/userinfo"): self._oidc_userinfo,
        }.get((request.method, request.path))
        if route is None:
            return super().handle(request)
        return route(query=request.query, headers=request.headers, form=request.form)

    @staticmethod
    def _redirect(redirect_uri: str, **params: str):
        sep = "&" if "?" in redirect_uri else "?"
        return 302, {"Location": f"{redirect_uri}{sep}{urlencode(params)}"}, b""

    def _bearer(self, headers: dict, provider: str) -> Grant | None:
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            return None
        grant = self._tokens.get(token.strip())
        return grant if grant and grant.provider == provider else None

    # GitHub ---------------------------------------------------------------

    def _github_authorize(self, *, query, headers, form):
        if query.get("client_id") != self.github_client_id:
            return 404, {}, b"unknown client"
        redirect_uri = query.get("redirect_uri", "")
        if not redirect_uri:
            return 400, {}, b"this mock needs a redirect_uri"
        code = self.issue_code(provider="github", redirect_uri=redirect_uri)
        return self._redirect(redirect_uri, code=code, state=query.get("state", ""))

    def _github_token(self, *, query, headers, form):
        # GitHub answers failures with HTTP 200 and an error field.
        if form.get("client_id") != self.github_client_id or form.get("client_secret") != self.github_client_secret:
            return 200, {}, {"error": "incorrect_client_credentials",
                             "error_description": "The client_id and/or client_secret passed are incorrect."}
        grant = self._codes.pop(form.get("code", ""), None)
        if grant is None or grant.provider != "github":
            return 200, {}, {"error": "bad_verification_code",
                             "error_description": "The code passed is incorrect or expired."}
        if form.get("redirect_uri") and form["redirect_uri"] != grant.redirect_uri:
            return 200, {}, {"error": "redirect_uri_mismatch"}
        token = "gho_" + secrets.token_hex(16)
        self._tokens[token] = grant
        if "application/json" not in headers.get("accept", ""):
            return 200, {"Content-Type": "application/x-www-form-urlencoded"}, urlencode(
                {"access_token": token, "scope": "user:email", "token_type": "bearer"}).encode()
        return 200, {}, {"access_token": token, "scope": "user:email", "token_type": "bearer"}

    def _github_user(self, *, query, headers, form):
        grant = self._bearer(headers, "github")
        if grant is None:
            return 401, {}, {"message": "Bad credentials"}
        return 200, {}, grant.claims

    def _github_emails(self, *, query, headers, form):
        if self._bearer(headers, "github") is None:
            return 401, {}, {"message": "Bad credentials"}
        return 200, {}, self.github_emails

    # OIDC -----------------------------------------------------------------

    def _oidc_discovery(self, *, query, headers, form):
        return 200, {}, {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        }

    def _oidc_authorize(self, *, query, headers, form):
        if query.get("client_id") != self.oidc_client_id:
            return 400, {}, b"unknown client"
        redirect_uri = query.get("redirect_uri", "")
        if query.get("response_type") != "code" or not redirect_uri:
            return 400, {}, b"bad request"
        if query.get("code_challenge") and query.get("code_challenge_method") != "S256":
            return self._redirect(redirect_uri, error="invalid_request", state=query.get("state", ""))
        code = self.issue_code(provider="oidc", redirect_uri=redirect_uri,
                               code_challenge=query.get("code_challenge", ""))
        return self._redirect(redirect_uri, code=code, state=query.get("state", ""))

    def _oidc_token(self, *, query, headers, form):
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        scheme, _, basic = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            client_id, _, client_secret = base64.b64decode(basic).decode().partition(":")
        if client_id != self.oidc_client_id or client_secret != self.oidc_client_secret:
            return 401, {}, {"error": "invalid_client"}
        if form.get("grant_type") != "authorization_code":
            return 400, {}, {"error": "unsupported_grant_type"}
        grant = self._codes.pop(form.get("code", ""), None)
        if grant is None or grant.provider != "oidc":
            return 400, {}, {"error": "invalid_grant", "error_description": "unknown or used code"}
        if form.get("redirect_uri") != grant.redirect_uri:
            return 400, {}, {"error": "invalid_grant", "error_description": "redirect_uri mismatch"}
        verifier = form.get("code_verifier", "")
        if grant.code_challenge:
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if not verifier or digest != grant.code_challenge:
                return 400, {}, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        elif verifier:
            # As Keycloak: a verifier for a code issued without a challenge is an error.
            return 400, {}, {"error": "invalid_grant", "error_description": "no code_challenge was sent"}
        token = "oidc_at_" + secrets.token_hex(16)
        self._tokens[token] = grant
        return 200, {}, {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                         "id_token": "not.checked.here"}

    def _oidc_userinfo(self, *, query, headers, form):
        grant = self._bearer(headers, "oidc")
        if grant is None or not headers.get("authorization", "").startswith("Bearer "):
            return 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}, {"error": "invalid_token"}
        return 200, {}, grant.claims
