"""Opt-in capture of /v1 request and response bodies, for debugging one token's traffic.

A token is captured while its id is listed in the BodyCaptureTokenIds option (comma-separated); nothing is
read or copied for any other request. Each side keeps its first CAPTURE_LIMIT bytes. Credentials travel in
headers, which are never captured; a request body's fields that commonly hold keys (api_key, password, ...)
are masked at any depth before it is stored. Captures have their own, short retention
(BodyCaptureRetentionHours, pruned hourly by billing/retention.py).
"""

from __future__ import annotations

import json
from functools import lru_cache

from billing.models import BodyCapture
from oneapi_site import options
from oneapi_site.lib.timeutil import now_ts

CAPTURE_LIMIT = 64 * 1024
MASK = "[removed]"
SECRET_FIELDS = frozenset({"api_key", "apikey", "key", "secret", "client_secret", "password", "token",
                           "access_token", "refresh_token", "authorization", "x-api-key", "x-goog-api-key",
                           "aws_secret_access_key", "secret_access_key", "credentials", "private_key"})


@lru_cache(maxsize=4)
def _token_ids(raw: str) -> frozenset[int]:
    return frozenset(int(part) for part in raw.replace(" ", "").split(",") if part.isdigit())


def wanted(token_id: int) -> bool:
    """Whether this token's requests are captured now (one set lookup; the option's text is parsed once)."""
    raw = options.get("BodyCaptureTokenIds")
    return bool(raw) and token_id in _token_ids(raw)


def _masked(value):
    if isinstance(value, dict):
        return {k: MASK if isinstance(k, str) and k.lower() in SECRET_FIELDS else _masked(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def request_text(raw: bytes) -> tuple[str, bool]:
    """The request body as stored: secret fields masked, cut to CAPTURE_LIMIT; (text, whether cut)."""
    try:
        text = json.dumps(_masked(json.loads(raw)), ensure_ascii=False)
    except (ValueError, RecursionError):
        text = raw.decode("utf-8", "replace")   # not JSON (a multipart upload is not captured at all)
    return _cut(text)


def _cut(text: str) -> tuple[str, bool]:
    data = text.encode()
    if len(data) <= CAPTURE_LIMIT:
        return text, False
    return data[:CAPTURE_LIMIT].decode("utf-8", "ignore"), True


class Tee:
    """Wraps an ASGI `send`, copying the status and the first CAPTURE_LIMIT bytes of the body it sends."""

    def __init__(self, send) -> None:
        self.send = send
        self.status = 0
        self.parts: list[bytes] = []
        self.size = 0
        self.cut = False

    async def __call__(self, message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body" and not self.cut:
            body = message.get("body", b"")
            room = CAPTURE_LIMIT - self.size
            if len(body) > room:
                body, self.cut = body[:room], True
            self.parts.append(body)
            self.size += len(body)
        await self.send(message)


def body_capture_record(*, tee: Tee, raw: bytes, request_id: str, user_id: int, token_id: int, path: str) -> None:
    request, request_cut = request_text(raw)
    BodyCapture.objects.create(
        created_at=now_ts(), request_id=request_id, user_id=user_id, token_id=token_id, path=path[:255],
        status=tee.status, request_body=request, request_truncated=request_cut,
        response_body=b"".join(tee.parts).decode("utf-8", "ignore"), response_truncated=tee.cut)


def captures_prune(*, now: int | None = None) -> int:
    hours = options.get("BodyCaptureRetentionHours")
    deleted, _ = BodyCapture.objects.filter(created_at__lt=(now or now_ts()) - hours * 3600).delete()
    return deleted
