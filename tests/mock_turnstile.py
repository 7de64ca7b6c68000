"""A local Cloudflare Turnstile siteverify for the tests (as tests/mock_idp.py is a local OAuth provider).

A real HTTP server in a thread, so the gateway's httpx call goes over a socket as it would to Cloudflare.
It answers as Cloudflare documents (https://developers.cloudflare.com/turnstile/get-started/server-side-validation/):
POST form-encoded `secret`, `response`, `remoteip` to /turnstile/v0/siteverify -> JSON
{"success": bool, "error-codes": [...]}. Tokens are single-use, a second look is "timeout-or-duplicate",
and a wrong secret is "invalid-input-secret". Every request is recorded for the tests to inspect.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

PATH = "/turnstile/v0/siteverify"


@dataclass
class Recorded:
    content_type: str
    form: dict[str, str]


@dataclass
class MockTurnstile:
    secret: str = "turnstile-secret-key-value"
    site_key: str = "0x4AAAAAAAtest-site-key"
    requests: list[Recorded] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._tokens: set[str] = set()
        self._used: set[str] = set()
        self._failures: deque[tuple[int, bytes]] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._tokens.clear()
            self._used.clear()
            self._failures.clear()

    def issue(self) -> str:
        """A token as the widget would get it after the visitor passed the challenge."""
        token = "0.tok-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens.add(token)
        return token

    def fail(self, status: int, body: bytes, *, times: int = 1) -> None:
        """The next `times` requests get this raw answer instead of a verdict."""
        with self._lock:
            self._failures.extend([(status, body)] * times)

    def start(self) -> "MockTurnstile":
        mock = self

        class Handler(_Handler):
            pass

        Handler.mock = mock
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True, name="mock-turnstile").start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def verdict(self, content_type: str, form: dict[str, str]) -> tuple[int, bytes]:
        with self._lock:
            self.requests.append(Recorded(content_type, form))
            if self._failures:
                return self._failures.popleft()
            if form.get("secret", "") != self.secret:
                codes = ["missing-input-secret"] if not form.get("secret") else ["invalid-input-secret"]
                return 200, json.dumps({"success": False, "error-codes": codes}).encode()
            token = form.get("response", "")
            if not token:
                return 200, json.dumps({"success": False, "error-codes": ["missing-input-response"]}).encode()
            if token in self._tokens:
                self._tokens.discard(token)
                self._used.add(token)
                return 200, json.dumps({"success": True, "error-codes": [], "hostname": "testserver",
                                        "challenge_ts": "2024-01-01T00:00:00.000Z"}).encode()
            code = "timeout-or-duplicate" if token in self._used else "invalid-input-response"
            return 200, json.dumps({"success": False, "error-codes": [code]}).encode()


class _Handler(BaseHTTPRequestHandler):
    mock: MockTurnstile
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        content_type = self.headers.get("Content-Type", "")
        form = dict(parse_qsl(raw.decode(), keep_blank_values=True)) if "urlencoded" in content_type else {}
        status, body = (404, b"not found") if self.path != PATH else self.mock.verdict(content_type, form)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
