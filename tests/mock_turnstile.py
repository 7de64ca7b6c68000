"""A local Cloudflare Turnstile siteverify for the tests (as tests/mock_idp.py is a local OAuth provider).

A real HTTP server in a thread (tests/mock_http.py), so the gateway's httpx call goes over a socket as it would
to Cloudflare. It answers as Cloudflare documents (https://developers.cloudflare.com/turnstile/get-started/server-side-validation/):
POST form-encoded `secret`, `response`, `remoteip` to /turnstile/v0/siteverify -> JSON
{"success": bool, "error-codes": [...]}. Tokens are single-use, a second look is "timeout-or-duplicate",
and a wrong secret is "invalid-input-secret". Every request is recorded for the tests to inspect; `fail(PATH, ...)`
queues raw answers in place of verdicts.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from tests.mock_http import Answer, MockServer, Recorded

PATH = "/turnstile/v0/siteverify"


@dataclass
class MockTurnstile(MockServer):
    secret: str = "turnstile-secret-key-value"
    site_key: str = "0x4AAAAAAAtest-site-key"

    name = "mock-turnstile"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._tokens: set[str] = set()
        self._used: set[str] = set()

    @property
    def url(self) -> str:
        return f"{self.base_url}{PATH}"

    def reset(self) -> None:
        self.clear()
        with self._lock:
            self._tokens.clear()
            self._used.clear()

    def issue(self) -> str:
        """A token as the widget would get it after the visitor passed the challenge."""
        token = "0.tok-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens.add(token)
        return token

    def handle(self, request: Recorded) -> Answer:
        if request.method != "POST" or request.path != PATH:
            return 404, {}, b"not found"
        form = request.form if "urlencoded" in request.content_type else {}
        if form.get("secret", "") != self.secret:
            codes = ["missing-input-secret"] if not form.get("secret") else ["invalid-input-secret"]
            return 200, {}, {"success": False, "error-codes": codes}
        token = form.get("response", "")
        if not token:
            return 200, {}, {"success": False, "error-codes": ["missing-input-response"]}
        with self._lock:
            if token in self._tokens:
                self._tokens.discard(token)
                self._used.add(token)
                return 200, {}, {"success": True, "error-codes": [], "hostname": "testserver",
                                 "challenge_ts": "2024-01-01T00:00:00.000Z"}
            code = "timeout-or-duplicate" if token in self._used else "invalid-input-response"
        return 200, {}, {"success": False, "error-codes": [code]}
