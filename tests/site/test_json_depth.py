"""Deeply nested JSON is a 400 naming the problem, never a RecursionError (a 500 with a traceback; issue 8)."""

from __future__ import annotations

import json
import logging

import pytest

from oneapi_site.lib import json_depth
from tests.factories import ChannelFactory

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000 + "]" * 100_000
UNCLOSED = '{"a": ' + "[" * 100_000
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


@pytest.fixture
def no_error_logged(caplog):
    caplog.set_level(logging.ERROR)
    yield
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("method, path, signed_in", [
    ("post", "/api/user/login", False),
    ("post", "/api/user/register", False),
    ("post", "/api/user/reset", False),
    ("post", "/api/token/", True),
    ("put", "/api/user/self", True),
    ("put", "/api/option/", True),
])
@pytest.mark.parametrize("body", [DEEP, UNCLOSED], ids=["deep", "unclosed"])
def test_a_deeply_nested_body_on_api_is_a_400_naming_the_problem(client, root, no_error_logged, method, path,
                                                                  signed_in, body):
    if signed_in:
        client.force_login(root)
    response = getattr(client, method)(path, body, content_type="application/json")
    assert response.status_code == 400
    payload = response.json()
    assert payload["success"] is False
    assert "nested deeper than 64 levels" in payload["message"]


def test_nesting_up_to_the_limit_is_parsed_as_before(client, root):
    client.force_login(root)
    at_limit = json.dumps({"name": "deep", "extra": json.loads(nested(json_depth.MAX_DEPTH - 1))})
    assert client.post("/api/token/", at_limit, content_type="application/json").json()["success"] is True
    over = json.dumps({"name": "deeper", "extra": json.loads(nested(json_depth.MAX_DEPTH))})
    assert client.post("/api/token/", over, content_type="application/json").status_code == 400


def test_brackets_inside_strings_do_not_count(client, root):
    client.force_login(root)
    body = json.dumps({"name": "[{[{[{", "extra": "[" * 10_000 + '\\"' + "{" * 10_000})
    assert client.post("/api/token/", body, content_type="application/json").json()["success"] is True


def test_a_deep_option_value_is_refused_with_its_name(client, root, no_error_logged):
    client.force_login(root)
    # Short enough to pass the options' length bound (65,535 characters), so the depth check answers.
    response = client.put("/api/option/", json.dumps({"key": "ModelRatio", "value": "[" * 1000 + "]" * 1000}),
                          content_type="application/json")
    assert response.status_code == 200  # one-api's envelope: a refused value is a business failure
    payload = response.json()
    assert payload["success"] is False and "ModelRatio" in payload["message"]
    assert "nested deeper than 64 levels" in payload["message"]


def test_a_deep_model_mapping_through_the_api_is_refused(client, root, no_error_logged):
    client.force_login(root)
    response = client.post("/api/channel/", json.dumps({"type": 1, "name": "c", "key": "sk-x", "models": "m",
                                                        "model_mapping": DEEP}), content_type="application/json")
    payload = response.json()
    assert payload["success"] is False and "nested deeper than 64 levels" in payload["message"]


def test_the_channel_form_reports_a_deep_model_mapping_as_a_form_error(client, root, no_error_logged):
    client.force_login(root)
    channel = ChannelFactory(name="c")
    response = client.post(f"/admin/providers/channel/{channel.pk}/change/",
                           {"type": 1, "name": "c", "models": "m", "group": "default", "priority": 0, "weight": 0,
                            "status": 1, "model_mapping": DEEP, "config": "{}"})
    assert response.status_code == 200  # the form again, with the error
    assert "nested deeper than 64 levels" in response.content.decode()


# The relay parses with orjson, which has its own limit (1024 levels): a 400 on both sides of it.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("depth", [100_000, 1_023, 1_030])
async def test_the_relay_answers_deep_json_with_a_400(relay_client, world, no_error_logged, depth):
    body = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "x": ' + nested(depth) + "}"
    response = await relay_client.post("/v1/chat/completions", content=body, headers=world.auth)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_json"
    assert "nested deeper than 255 levels" in error["message"] or "recursion depth exceeded" in error["message"]


def test_check_depth_points_at_the_bracket_too_deep():
    with pytest.raises(json.JSONDecodeError) as caught:
        json_depth.loads('{\n "a": ' + nested(100))
    # The object is the first level, so the 64th "[" (column 6 + 64) is one too deep.
    assert caught.value.lineno == 2 and caught.value.colno == 6 + json_depth.MAX_DEPTH
    assert json_depth.loads(b'{"a": "\\"[[[["}') == {"a": '"[[[['}
