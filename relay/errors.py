"""OpenAI's error JSON, which every `/v1` failure answers with."""

from __future__ import annotations

import orjson


class RelayError(Exception):
    """A refusal or failure to report to the client as OpenAI's error object."""

    def __init__(self, status: int, message: str, *, type: str = "one_api_error", code: str | None = None,
                 param: str | None = None, body: dict | None = None,
                 headers: tuple[tuple[bytes, bytes], ...] = ()):
        super().__init__(message)
        self.headers = headers  # more response headers (a rate limit's Retry-After and x-ratelimit-*)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.body = body  # an upstream's own error object, kept whole (one-api does)
        self.headers = headers  # sent with the error (Retry-After)

    def to_json(self, request_id: str) -> bytes:
        error = dict(self.body) if self.body else {"type": self.type, "param": self.param, "code": self.code}
        error.setdefault("type", self.type)
        error.setdefault("param", self.param)
        error.setdefault("code", self.code)
        # The server's own refusals (oneapi_site/body_limit.py) come before any request id exists.
        error["message"] = f"{self.message} (request id: {request_id})" if request_id else self.message
        return orjson.dumps({"error": error})


def body_too_large(limit_mb: int) -> RelayError:
    return RelayError(413, f"The request body is larger than {limit_mb} MB.", type="invalid_request_error",
                      code="request_too_large")


def missing_api_key() -> RelayError:
    """The relay's answer to a request without a key (oneapi_site/body_limit.py gives it before the body)."""
    return RelayError(401, "No API key provided: send Authorization: Bearer sk-... or x-api-key: sk-...",
                      type="invalid_request_error", code="missing_api_key")


def bad_request(message: str, *, code: str = "invalid_request", param: str | None = None) -> RelayError:
    return RelayError(400, message, type="invalid_request_error", code=code, param=param)
