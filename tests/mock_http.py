"""The skeleton the tests' local stand-ins for outside services share (tests/mock_idp.py, tests/mock_turnstile.py).

A real HTTP server in a thread, so the gateway's httpx calls go over a socket as they would to the real
service. Every request is recorded for the tests to inspect, and a test can queue failures for a path
(a status, a body, a delay) that the next requests to it get instead of the real answer. A subclass
answers the rest in `handle`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# What `handle` answers: (status, extra headers, body); a dict or list body goes out as JSON.
Answer = tuple[int, dict[str, str], Any]


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names in lower case
    form: dict[str, str]  # a urlencoded or JSON-object body

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


@dataclass
class Failure:
    status: int
    body: Any = None
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class MockServer:
    requests: list[Recorded] = field(default_factory=list)
    port: int = 0

    name = "mock-server"  # the thread's name

    def __post_init__(self) -> None:
        self._failures: dict[str, deque[Failure]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        mock = self

        class Handler(_Handler):
            pass

        Handler.mock = mock
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True, name=self.name).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def clear(self) -> None:
        """Forget the recorded requests and the queued failures (a subclass's reset adds its own state)."""
        with self._lock:
            self.requests.clear()
            self._failures.clear()

    def fail(self, path: str, *, status: int = 500, body: Any = None, delay: float = 0.0, times: int = 1,
             headers: dict[str, str] | None = None) -> None:
        """The next `times` requests to `path` get this answer instead of the real one."""
        with self._lock:
            queue = self._failures.setdefault(path, deque())
            queue.extend([Failure(status, body, delay, dict(headers or {}))] * times)

    def recorded(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    def answer(self, request: Recorded) -> Answer:
        """Record the request; a queued failure for its path, else the subclass's answer."""
        with self._lock:
            self.requests.append(request)
            queue = self._failures.get(request.path)
            failure = queue.popleft() if queue else None
        if failure is None:
            return self.handle(request)
        if failure.delay:
            time.sleep(failure.delay)
        body = failure.body if failure.body is not None else {"message": "mock failure"}
        return failure.status, failure.headers, body

    def handle(self, request: Recorded) -> Answer:
        return 404, {}, {"message": "Not Found"}


def _form(raw: bytes, content_type: str) -> dict[str, str]:
    if not raw:
        return {}
    if "json" in content_type:
        try:
            loaded = json.loads(raw)
        except ValueError:
            return {}
        return {k: str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
    return dict(parse_qsl(raw.decode(errors="replace"), keep_blank_values=True))


class _Handler(BaseHTTPRequestHandler):
    mock: MockServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet
        pass

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = Recorded(self.command, parts.path, dict(parse_qsl(parts.query, keep_blank_values=True)), headers,
                           _form(raw, headers.get("content-type", "")))
        status, extra_headers, body = self.mock.answer(request)
        if isinstance(body, (dict, list)):
            payload = json.dumps(body).encode()
            content_type = "application/json; charset=utf-8"
        else:
            payload = body if isinstance(body, bytes) else str(body).encode()
            content_type = "text/plain; charset=utf-8"
        extra_headers = dict(extra_headers)
        self.send_response(status)
        self.send_header("Content-Type", extra_headers.pop("Content-Type", content_type))
        for name, value in extra_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _serve
