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
