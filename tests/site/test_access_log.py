"""Daphne's access log never holds a key sent in the URL (`?key=`, as Gemini's clients may send it)."""

import io

import pytest
from daphne.access import AccessLogGenerator

from oneapi_site import access_log


@pytest.mark.parametrize("target, logged", [
    ("/v1beta/models/m:generateContent?key=sk-secret", "/v1beta/models/m:generateContent?key=***"),
    ("/v1beta/models/m:streamGenerateContent?alt=sse&KEY=sk-secret&x=1",
     "/v1beta/models/m:streamGenerateContent?alt=sse&KEY=***&x=1"),
    ("/v1/chat/completions?monkey=1", "/v1/chat/completions?monkey=1"),
    ("/v1/chat/completions", "/v1/chat/completions"),
])
def test_a_key_in_the_query_is_masked(target, logged):
    assert access_log.redact(target) == logged


def test_the_access_log_writes_the_masked_target():
    import oneapi_site.asgi  # noqa: F401 - installs the mask, as serving does

    stream = io.StringIO()
    AccessLogGenerator(stream)("http", "complete", {
        "client": "127.0.0.1:5000", "method": "POST", "status": 200, "size": 10,
        "path": "/v1beta/models/m:generateContent?key=sk-secret-value"})
    assert "sk-secret-value" not in stream.getvalue() and "key=***" in stream.getvalue()
