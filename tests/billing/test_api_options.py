"""Root-only settings through /api/option/."""

import json

import pytest

from billing.models import Option
from oneapi_site import options
from tests.api_fixtures import envelope

pytestmark = pytest.mark.django_db


def test_option_get_lists_defaults_and_stored_values(root_api):
    Option.objects.create(key="SystemName", value="Stored Name")
    values = {o["key"]: o["value"] for o in envelope(root_api.get("/api/option/"))}
    assert values["SystemName"] == "Stored Name"
    assert values["QuotaPerUnit"] == "500000"
    assert values["RegisterEnabled"] == "true"
    assert json.loads(values["GroupRatio"]) == {"default": 1, "vip": 1, "svip": 1}


def test_option_get_hides_secrets(root_api):
    Option.objects.create(key="GitHubClientSecret", value="gh-secret-value")
    Option.objects.create(key="SMTPToken", value="smtp-secret-value")
    response = root_api.get("/api/option/")
    keys = {o["key"] for o in envelope(response)}
    assert "GitHubClientSecret" not in keys and "SMTPToken" not in keys and "TurnstileSecretKey" not in keys
    assert "GitHubClientId" in keys
    assert b"gh-secret-value" not in response.content and b"smtp-secret-value" not in response.content


def test_option_put_stores_and_applies(root_api):
    envelope(root_api.put("/api/option/", {"key": "QuotaForNewUser", "value": "777"}, format="json"))
    assert Option.objects.get(key="QuotaForNewUser").value == "777"
    assert options.get("QuotaForNewUser") == 777


def test_option_put_takes_booleans_as_text_or_json(root_api):
    envelope(root_api.put("/api/option/", {"key": "RegisterEnabled", "value": "false"}, format="json"))
    assert options.get("RegisterEnabled") is False
    envelope(root_api.put("/api/option/", {"key": "RegisterEnabled", "value": True}, format="json"))
    assert Option.objects.get(key="RegisterEnabled").value == "true"


@pytest.mark.parametrize("value", ["maybe", "2", "", "yes please", 3])
def test_option_put_refuses_a_switch_that_is_not_true_or_false(root_api, value):
    envelope(root_api.put("/api/option/", {"key": "RegisterEnabled", "value": "false"}, format="json"))
    body = envelope(root_api.put("/api/option/", {"key": "RegisterEnabled", "value": value}, format="json"),
                    success=False)
    assert body["field"] == "RegisterEnabled" and "true or false" in body["message"]
    assert Option.objects.get(key="RegisterEnabled").value == "false"
    assert options.get("RegisterEnabled") is False


def test_option_put_rejects_invalid_json_in_model_ratio_naming_the_key(root_api):
    body = envelope(root_api.put("/api/option/", {"key": "ModelRatio", "value": '{"gpt-4o": 1.25,'},
                                 format="json"), success=False)
    assert body["field"] == "ModelRatio" and "ModelRatio" in body["message"]
    assert not Option.objects.filter(key="ModelRatio").exists()


def test_option_put_rejects_a_bad_number(root_api):
    body = envelope(root_api.put("/api/option/", {"key": "RetryTimes", "value": "three"}, format="json"),
                    success=False)
    assert body["field"] == "RetryTimes"


def test_option_put_rejects_an_unknown_key(root_api):
    body = envelope(root_api.put("/api/option/", {"key": "SystemNmae", "value": "x"}, format="json"), success=False)
    assert body["field"] == "key"
    assert not Option.objects.filter(key="SystemNmae").exists()


def test_options_are_root_only(staff_api, alice_api, anon):
    assert staff_api.get("/api/option/").status_code == 403
    assert staff_api.put("/api/option/", {"key": "SystemName", "value": "x"}, format="json").status_code == 403
    assert alice_api.get("/api/option/").status_code == 403
    assert anon.get("/api/option/").status_code == 401
    assert not Option.objects.filter(key="SystemName").exists()


def test_cache_ratios_are_listed_and_set_under_new_apis_names(root_api):
    values = {o["key"]: o["value"] for o in envelope(root_api.get("/api/option/"))}
    assert json.loads(values["CacheRatio"])["claude-opus-4-6"] == 0.1
    assert json.loads(values["CreateCacheRatio"])["claude-opus-4-6"] == 1.25
    envelope(root_api.put("/api/option/", {"key": "CacheRatio", "value": '{"gpt-5": 0.1, "my-model": 0.3}'},
                          format="json"))
    assert options.get("CacheRatio") == {"gpt-5": 0.1, "my-model": 0.3}
    body = envelope(root_api.put("/api/option/", {"key": "CreateCacheRatio", "value": '{"m": 1e400}'},
                                 format="json"), success=False)
    assert body["field"] == "CreateCacheRatio"
    assert not Option.objects.filter(key="CreateCacheRatio").exists()


@pytest.mark.parametrize("key, value, says", [
    ("ModelPrice", '{"dall-e-3": -0.04}', 'ModelPrice "dall-e-3" must be at least 0'),
    ("ModelPrice", "not json", "ModelPrice is not valid JSON"),
    ("ModelTierPricing", '{"m": {"tiers": [{"min_tokens": 100, "input_price": 1, "completion_price": 1}]}}',
     "the first tier must start at 0 tokens"),
    ("ModelTierPricing", {"m": {"tiers": [{"input_price": 1, "completion_price": -2}]}},
     "completion_price must be at least 0"),
    ("AudioRatio", '{"m": "16"}', "AudioRatio must be a JSON object of names to non-negative numbers"),
])
def test_option_put_refuses_bad_prices_naming_the_key_and_keeps_the_old_value(root_api, key, value, says):
    body = envelope(root_api.put("/api/option/", {"key": key, "value": value}, format="json"), success=False)
    assert body["field"] == key and says in body["message"]
    assert not Option.objects.filter(key=key).exists()


def test_option_put_stores_new_api_price_tables_as_they_are(root_api):
    tiers = {"gemini-2.5-pro": {"enabled": True, "basis": "prompt_tokens", "tiers": [
        {"min_tokens": 0, "max_tokens": 200000, "input_price": 1.25, "completion_price": 10},
        {"min_tokens": 200000, "input_price": 2.5, "completion_price": 15}]}}
    envelope(root_api.put("/api/option/", {"key": "ModelTierPricing", "value": json.dumps(tiers)}, format="json"))
    envelope(root_api.put("/api/option/", {"key": "ModelPrice", "value": {"dall-e-3": 0.04}}, format="json"))
    values = {o["key"]: o["value"] for o in envelope(root_api.get("/api/option/"))}
    assert json.loads(values["ModelTierPricing"]) == tiers and json.loads(values["ModelPrice"]) == {"dall-e-3": 0.04}
    assert options.get("ModelTierPricing").tiers["gemini-2.5-pro"][1].min_tokens == 200000
