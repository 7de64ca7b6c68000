"""GroupRateLimit and GroupModelRateLimit: set through /api/option/, checked on save with errors naming the entry."""

import json

import pytest

from billing.models import Option
from oneapi_site import options
from tests.api_fixtures import envelope

pytestmark = pytest.mark.django_db


def test_both_options_default_to_no_limit_and_are_listed(root_api):
    values = {o["key"]: o["value"] for o in envelope(root_api.get("/api/option/"))}
    assert json.loads(values["GroupRateLimit"]) == {} and json.loads(values["GroupModelRateLimit"]) == {}
    assert {"GroupRateLimit", "GroupModelRateLimit"} <= set(options.GROUPS["operation"])


def test_limits_are_stored_and_applied(root_api):
    value = '{"vip": {"rpm": 600, "tpm": 1000000, "concurrency": 20, "rpd": 0}}'
    envelope(root_api.put("/api/option/", {"key": "GroupRateLimit", "value": value}, format="json"))
    assert options.get("GroupRateLimit") == {"vip": {"rpm": 600, "tpm": 1000000, "concurrency": 20, "rpd": 0}}
    value = '{"default": {"gpt-4o": {"rpm": 60}}}'
    envelope(root_api.put("/api/option/", {"key": "GroupModelRateLimit", "value": value}, format="json"))
    assert options.get("GroupModelRateLimit") == {"default": {"gpt-4o": {"rpm": 60}}}


@pytest.mark.parametrize(("key", "value", "says"), [
    ("GroupRateLimit", '{"vip": {"rpm": 60}', "is not valid JSON"),
    ("GroupRateLimit", "[1, 2]", "must be a JSON object"),
    ("GroupRateLimit", '{"vip": 60}', 'GroupRateLimit "vip" must be an object such as'),
    ("GroupRateLimit", '{"vip": {"rps": 60}}', 'unknown limit "rps"'),
    ("GroupRateLimit", '{"vip": {"rpm": -1}}', "rpm must be a whole number from 0 to 2147483647"),
    ("GroupRateLimit", '{"vip": {"rpm": 1.5}}', "rpm must be a whole number"),
    ("GroupRateLimit", '{"vip": {"tpm": "100"}}', "tpm must be a whole number"),
    ("GroupRateLimit", '{"vip": {"concurrency": true}}', "concurrency must be a whole number"),
    ("GroupModelRateLimit", '{"default": {"rpm": 60}}', 'GroupModelRateLimit "default/rpm" must be an object'),
    ("GroupModelRateLimit", '{"default": 5}', 'GroupModelRateLimit "default" must be an object of model names'),
    ("GroupModelRateLimit", '{"default": {"gpt-4o": {"rpd": 10000000000}}}', 'default/gpt-4o": rpd must be'),
])
def test_a_bad_value_is_refused_naming_the_entry(root_api, key, value, says):
    body = envelope(root_api.put("/api/option/", {"key": key, "value": value}, format="json"), success=False)
    assert body["field"] == key and says in body["message"], body["message"]
    assert not Option.objects.filter(key=key).exists()


def test_a_bad_stored_value_falls_back_to_no_limit():
    options.snapshot.load({"GroupRateLimit": '{"vip": {"rpm": "many"}}'})
    assert options.get("GroupRateLimit") == {}
