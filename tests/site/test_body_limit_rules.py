"""Which limit a request body gets, and what the refusal says (the server side is tests/e2e/test_body_limit.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from twisted.web.http_headers import Headers

from oneapi_site.body_limit import _target_path, area_of, has_credential, refusal

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("target, area", [
    (b"/v1/chat/completions", "relay"),
    (b"/v1/audio/transcriptions?x=1", "relay"),
    (b"/%761/chat/completions", "relay"),  # Daphne decodes the path before routing; so do we
    (b"/dashboard/billing/usage", "relay"),
    (b"/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", "relay"),
    (b"/api/user/login", "api"),
    (b"/api", "api"),
    (b"/login/", "web"),
    (b"/admin/", "web"),
    (b"/static/../api/x", "web"),
    (b"", "web"),
])
def test_each_path_gets_the_limit_of_the_app_it_is_routed_to(target, area):
    assert area_of(_target_path(target)) == area


def test_the_relay_refusal_is_openais_error_json(settings):
    settings.RELAY_MAX_BODY_MB = 7
    content_type, body = refusal("relay", cookies={}, accept_language="")
    assert content_type == b"application/json"
    assert json.loads(body) == {"error": {"message": "The request body is larger than 7 MB.",
                                          "type": "invalid_request_error", "param": None,
                                          "code": "request_too_large"}}


def test_the_refusal_on_the_messages_api_is_anthropics_error_json(settings):
    settings.RELAY_MAX_BODY_MB = 7
    _, body = refusal("relay", cookies={}, accept_language="", path="/v1/messages/")
    assert json.loads(body) == {"type": "error", "error": {"type": "request_too_large",
                                                           "message": "The request body is larger than 7 MB."}}


def test_the_refusal_on_geminis_api_is_googles_error_json(settings):
    settings.RELAY_MAX_BODY_MB = 7
    _, body = refusal("relay", cookies={}, accept_language="", path="/v1beta/models/x:generateContent")
    assert json.loads(body) == {"error": {"code": 413, "message": "The request body is larger than 7 MB.",
                                          "status": "INVALID_ARGUMENT"}}


def test_pages_follow_the_language_cookie_before_the_browser(settings):
    settings.WEB_MAX_BODY_MB = 5
    _, body = refusal("web", cookies={settings.LANGUAGE_COOKIE_NAME: "zh-hans"}, accept_language="en")
    assert json.loads(body) == {"success": False, "message": "请求内容超过 5 MB。"}
    _, body = refusal("web", cookies={}, accept_language="en-US,en;q=0.9")
    assert json.loads(body)["message"] == "The request body is larger than 5 MB."


@pytest.mark.parametrize("name", ["RELAY_MAX_BODY_MB", "API_MAX_BODY_MB", "WEB_MAX_BODY_MB"])
def test_a_bad_limit_stops_start_up_naming_it(name, tmp_path):
    env = {**os.environ, name: "0", "SQLITE_PATH": str(tmp_path / "x.db"), "SESSION_SECRET": "limits-test"}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                            text=True)
    assert result.returncode != 0
    assert name in result.stderr


@pytest.mark.parametrize("headers, target, named", [
    ({b"Authorization": [b"Bearer sk-abc"]}, b"/v1/chat/completions", True),
    ({b"authorization": [b"sk-abc"]}, b"/v1/chat/completions", True),
    ({b"X-Api-Key": [b"sk-ant-abc"]}, b"/v1/messages", True),
    ({b"x-goog-api-key": [b"AIza-abc"]}, b"/v1beta/models/x", True),
    ({b"api-key": [b"azure"]}, b"/v1/chat/completions", True),
    ({}, b"/v1beta/models/x:generateContent?alt=sse&key=AIza-abc", True),
    ({}, b"/v1/chat/completions", False),
    ({b"Authorization": [b""]}, b"/v1/chat/completions", False),
    ({b"Cookie": [b"key=abc"]}, b"/v1/chat/completions?key=&monkey=1", False),
])
def test_a_key_is_named_by_any_header_or_query_a_relay_client_may_use(headers, target, named):
    assert has_credential(Headers(headers), target) is named
