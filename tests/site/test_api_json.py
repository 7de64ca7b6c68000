"""/api reads strict JSON text: a lone UTF-16 surrogate is refused as bad JSON (it once reached the database)."""

import pytest

from accounts.models import Token
from billing.models import Option
from providers.models import Channel
from tests.api_fixtures import envelope

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/api/token/", rb'{"name": "k", "models": "gpt\ud800"}'),
    ("POST", "/api/token/", rb'{"name": "k", "models": ["gpt-4o", "\udfff"]}'),
    ("POST", "/api/channel/", rb'{"type": 1, "name": "c", "key": "sk-x", "models": "gpt\ud800"}'),
    ("POST", "/api/channel/", rb'{"type": 1, "name": "c", "key": "sk-x", "models": "a", "group": "d\ud800"}'),
    ("POST", "/api/channel/", rb'{"type": 1, "name": "c", "key": "sk-x", "models": "a", '
                              rb'"model_mapping": {"a": "\ud800"}}'),
    ("POST", "/api/channel/", rb'{"type": 1, "name": "c", "key": "sk-x", "models": "a", "config": {"\ud800": "x"}}'),
    ("PUT", "/api/option/", rb'{"key": "SystemName", "value": "\ud800"}'),
    ("POST", "/api/user/login", rb'{"username": "\udc00", "password": "x"}'),
])
def test_a_lone_surrogate_is_refused_as_bad_json_and_nothing_is_stored(root_api, method, path, body):
    response = root_api.generic(method, path, body, content_type="application/json")
    assert "surrogate" in envelope(response, success=False, status=400)["message"]
    assert not Token.objects.exists() and not Channel.objects.exists() and not Option.objects.exists()


def test_a_surrogate_pair_is_text(root_api):
    body = rb'{"name": "\ud83d\ude00 key"}'
    response = root_api.generic("POST", "/api/token/", body, content_type="application/json")
    assert envelope(response)["name"] == "😀 key"


# PostgreSQL refuses a NUL character in text (DataError), so each of these was a 500 there: bodies and query
# parameters of /api that reach a query or a column.
@pytest.mark.parametrize("method, path, body", [
    ("POST", "/api/channel/batch", rb'{"ids": [1], "action": "tag", "value": "t\u0000"}'),
    ("PUT", "/api/channel/tag", rb'{"tag": "t", "new_tag": "n\u0000"}'),
    ("POST", "/api/channel/", rb'{"type": 1, "name": "c", "key": "sk-x", "models": "a", "config": {"a": "\u0000"}}'),
    ("PUT", "/api/option/", rb'{"key": "Notice", "value": "a\u0000"}'),
    ("POST", "/api/user/login", rb'{"username": "\u0000", "password": "x"}'),
])
def test_a_nul_character_in_a_body_is_refused_and_nothing_is_stored(root_api, method, path, body):
    response = root_api.generic(method, path, body, content_type="application/json")
    assert "NUL" in envelope(response, success=False, status=400)["message"]
    assert not Channel.objects.exists() and not Option.objects.exists()


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/channel/search?keyword=%00"),
    ("GET", "/api/channel/?tag=a%00"),
    ("GET", "/api/user/search?keyword=%00"),
    ("GET", "/api/log/?model_name=%00"),
    ("POST", "/api/channel/copy/1?suffix=%00"),
])
def test_a_nul_character_in_a_query_parameter_is_refused(root_api, method, path):
    Channel.objects.create(name="c", type=1, key="sk-x")
    response = root_api.generic(method, path)
    assert "NUL" in envelope(response, success=False, status=400)["message"]
    assert Channel.objects.count() == 1


def test_the_refusal_of_a_nul_in_a_query_parameter_speaks_the_browsers_language(root_api):
    response = root_api.get("/api/channel/search?keyword=%00", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "查询参数含有 NUL 字符" in envelope(response, success=False, status=400)["message"]
    response = root_api.get("/api/channel/search?keyword=%00", HTTP_ACCEPT_LANGUAGE="en")
    assert "a query parameter holds a NUL" in envelope(response, success=False, status=400)["message"]
