"""Deeply nested JSON is a 400 naming the problem, never a RecursionError (a 500 with a traceback; issue 8)."""

from __future__ import annotations

import json
import logging

import pytest
from asgiref.sync import sync_to_async

from billing.models import Log
from oneapi_site.lib import json_depth
from providers.models import Channel
from tests.factories import ChannelFactory, TokenFactory, UserFactory
from tests.helpers import flush

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


def deep_schema(levels: int) -> str:
    """A tool's JSON Schema nested `levels` levels deep (two per property), as agents send them."""
    return '{"type": "object", "properties": {"a": ' * (levels // 2) + '{"type": "string"}' + "}}" * (levels // 2)


def tool_call_body(model: str, levels: int) -> str:
    # JSON written by hand (a %-template: an f-string would double every brace), deeper than json.dumps goes.
    return ('{"model": "%s", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", '  # noqa: UP031
            '"function": {"name": "f", "parameters": %s}}]}' % (model, deep_schema(levels)))


# Each adapter writes the client's body again its own way, in build_request (most), in `complete` (DashScope
# images), or in the request frame of a WebSocket exchange (Spark). Past orjson's 255 levels, or past
# Python's recursion limit in a converter (Gemini's schema at 1000), the client gets a 400 and no channel
# is called: the channels point at a closed port, where any call would fail as a retryable 502.
DEEP_CASES = [
    pytest.param(1, "gpt-4o-mini", "chat", "sk-upstream-secret", {}, id="openai"),
    pytest.param(36, "deepseek-chat", "chat", "sk-upstream-secret", {}, id="deepseek"),
    pytest.param(14, "claude-sonnet-4-5", "chat", "sk-ant-upstream-secret", {}, id="anthropic"),
    pytest.param(24, "gemini-2.5-flash", "chat", "AIzaSy-upstream-secret", {}, id="gemini"),
    pytest.param(30, "llama3.2", "chat", "sk-ollama-upstream", {}, id="ollama"),
    pytest.param(33, "claude-3-haiku-20240307", "chat", "AKIAEXAMPLEKEY000000|secretsecretsecret|us-east-1", {},
                 id="bedrock-claude"),
    pytest.param(33, "amazon.nova-lite-v1:0", "chat", "AKIAEXAMPLEKEY000000|secretsecretsecret|us-east-1", {},
                 id="bedrock-converse"),
    pytest.param(35, "command-a-03-2025", "chat", "co-upstream-secret", {}, id="cohere"),
    pytest.param(16, "glm-4-plus", "chat", "zkeyid.zsecretvalue", {}, id="zhipu"),
    pytest.param(23, "hunyuan-turbo", "chat", "1300000000|AKIDupstreamsecret|upstreamsecretkey",
                 {"region": "ap-guangzhou"}, id="hunyuan"),
    pytest.param(17, "qwen-plus", "chat", "sk-dashscope-upstream", {}, id="dashscope-chat"),
    pytest.param(17, "wanx2.1-t2i-turbo", "images", "sk-dashscope-upstream", {}, id="dashscope-images"),
    pytest.param(18, "Spark-Max", "chat", "appid123|apisecret0123456789|apikey0123456789", {}, id="spark-websocket"),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("levels", [300, 1010])
@pytest.mark.parametrize("type_id, model, mode, key, config", DEEP_CASES)
async def test_every_adapter_answers_a_body_too_deep_to_write_with_a_400(relay_client, no_error_logged, type_id,
                                                                        model, mode, key, config, levels):
    def make():
        user = UserFactory(username="deep", quota=10_000_000)
        token = TokenFactory(user=user, name="deep-key", remain_quota=5_000_000)
        for name in ("first", "second"):  # a failover would reach the second one
            ChannelFactory(type=type_id, name=name, key=key, models=model, config=config,
                           base_url="http://127.0.0.1:9")
        return {"Authorization": f"Bearer sk-{token.key}"}

    auth = await sync_to_async(make)()
    if mode == "images":
        path = "/v1/images/generations"
        # prompt_extend: a Wanx parameter forwarded as given, and no OpenAI field whose type the relay checks.
        body = '{"model": "%s", "prompt": "a cat", "prompt_extend": %s}' % (model, nested(levels))  # noqa: UP031
    else:
        path, body = "/v1/chat/completions", tool_call_body(model, levels)
    response = await relay_client.post(path, content=body, headers=auth)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_json"
    assert "nested" in error["message"] and "255 levels" in error["message"]
    await flush()
    assert not await sync_to_async(Log.objects.filter(type=Log.Type.CONSUME).exists)()
    statuses = await sync_to_async(lambda: sorted(Channel.objects.values_list("status", flat=True)))()
    assert statuses == [Channel.Status.ENABLED] * 2  # no channel is held to blame


@pytest.mark.django_db(transaction=True)
async def test_a_deep_body_that_can_be_written_again_is_relayed(relay_client, world, no_error_logged):
    """Nesting alone is no fault: only a body that cannot be written again for the vendor is refused."""
    body = ('{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "metadata": {"deep": %s}}'  # noqa: UP031
            % nested(249))
    response = await relay_client.post("/v1/chat/completions", content=body, headers=world.auth)
    assert response.status_code == 200, response.text
    assert json.dumps(world.upstream.requests[-1].body["metadata"]["deep"]) == nested(249)
