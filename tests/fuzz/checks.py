"""What every fuzzed answer must be, whatever was sent."""

from __future__ import annotations

import json

# The relay may honestly answer these when an upstream or the routing fails; a 500 is always a bug.
UPSTREAM_STATUSES = (502, 503, 504)


def _json(content: bytes, what: str) -> object:
    try:
        return json.loads(content)
    except ValueError:
        raise AssertionError(f"{what} is not JSON: {content[:300]!r}") from None


def assert_openai_answer(status: int, content_type: str, content: bytes) -> None:
    """No 500; a refusal is OpenAI's error object, {"error": {"message", "type", "code"}}."""
    assert status != 500, (status, content[:1000])
    assert status < 500 or status in UPSTREAM_STATUSES, (status, content[:1000])
    if status < 400:
        return
    assert content_type.startswith("application/json"), (status, content_type, content[:300])
    body = _json(content, f"the {status} answer")
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict), body
    assert isinstance(error.get("message"), str) and error["message"], body
    assert "type" in error and "code" in error, body


def assert_anthropic_answer(status: int, content_type: str, content: bytes) -> None:
    """No 500; a refusal is Anthropic's error object, {"type": "error", "error": {"type", "message"}}."""
    assert status != 500, (status, content[:1000])
    assert status < 500 or status in UPSTREAM_STATUSES, (status, content[:1000])
    if status < 400:
        return
    assert content_type.startswith("application/json"), (status, content_type, content[:300])
    body = _json(content, f"the {status} answer")
    assert isinstance(body, dict) and body.get("type") == "error", body
    error = body.get("error")
    assert isinstance(error, dict) and isinstance(error.get("type"), str), body
    assert isinstance(error.get("message"), str) and error["message"], body


def assert_gemini_answer(status: int, content_type: str, content: bytes) -> None:
    """No 500; a refusal is Google's error object, {"error": {"code", "message", "status"}}."""
    assert status != 500, (status, content[:1000])
    assert status < 500 or status in UPSTREAM_STATUSES, (status, content[:1000])
    if status < 400:
        return
    assert content_type.startswith("application/json"), (status, content_type, content[:300])
    body = _json(content, f"the {status} answer")
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict) and error.get("code") == status, body
    assert isinstance(error.get("message"), str) and error["message"], body
    assert isinstance(error.get("status"), str) and error["status"].isupper(), body


def assert_envelope(status: int, content_type: str, content: bytes) -> dict:
    """No 5xx; the answer is one-api's envelope, and any 4xx says success false with a message."""
    assert status < 500, (status, content[:1000])
    assert content_type.startswith("application/json"), (status, content_type, content[:300])
    body = _json(content, f"the {status} answer")
    assert isinstance(body, dict), body
    assert isinstance(body.get("success"), bool), body
    assert isinstance(body.get("message"), str), body
    if status >= 400:
        assert body["success"] is False, body
    return body


def assert_page(status: int, content: bytes) -> None:
    """A page answers, redirects or refuses; it never fails."""
    assert status < 500, (status, content[:1000])
