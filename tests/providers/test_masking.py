"""Channel credentials masked out of upstream text: the whole key, its parts, partial echoes, 8+ runs."""

import orjson
import pytest

from providers.adapters import adapter_for
from providers.adapters.base import UpstreamError
from providers.masking import MASK, mask_bytes, mask_error, mask_text
from tests.providers.vendor_harness import TEST_CHANNEL

KEY = "sk-proj-9fQ2xL7vR4mK8tW1zB6nYc3D"


def secrets_of(type_id: int, key: str, **config) -> tuple[str, ...]:
    from dataclasses import replace

    return adapter_for(type_id).secrets(replace(TEST_CHANNEL, type=type_id, key=key, config=config))


@pytest.mark.parametrize("echo", [
    pytest.param(KEY, id="whole"),
    pytest.param(f"{KEY[:8]}{'*' * 20}{KEY[-4:]}", id="openai-partial"),
    pytest.param(f"{KEY[:3]}***{KEY[-4:]}", id="first-3-last-4"),
    pytest.param(f"{KEY[:6]}...{KEY[-3:]}", id="dots"),
    pytest.param(f"{KEY[:7]}…", id="ellipsis"),
    pytest.param(KEY[10:22], id="inner-run"),
    pytest.param(KEY[-8:], id="last-8"),
])
def test_a_key_echoed_in_any_recognisable_form_is_masked(echo):
    text = f"Incorrect API key provided: {echo}. You can find your API key at https://platform.openai.com."
    masked = mask_text(text, secrets_of(1, KEY))
    assert masked == f"Incorrect API key provided: {MASK}. You can find your API key at https://platform.openai.com."


def test_text_without_the_key_is_left_alone():
    text = "The server had an error while processing your request. Sorry about that! sk-... means a key."
    assert mask_text(text, secrets_of(1, KEY)) == text
    assert mask_text(KEY[:7] + " and " + KEY[-7:], secrets_of(1, KEY)) == KEY[:7] + " and " + KEY[-7:]


@pytest.mark.parametrize("type_id, key, config, hidden, kept", [
    pytest.param(15, "Ak3VnP8qLrT5wXz2Yb7M|Sk9dF4gH6jK2lQ8wE5rT1yU3iO7pA0sD", {},
                 ["Ak3VnP8qLrT5wXz2Yb7M", "Sk9dF4gH6jK2lQ8wE5rT1yU3iO7pA0sD"], [], id="baidu-ak|sk"),
    pytest.param(33, "AKIAIOSFODNN7EXAMPLE|wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY|us-east-1", {},
                 ["AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"], ["us-east-1"],
                 id="bedrock-ak|sk|region"),
    pytest.param(33, "", {"ak": "AKIAIOSFODNN7EXAMPLE", "sk": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                          "region": "eu-west-3", "session_token": "FwoGZXIvYXdzEBYaDH0123456789abcdef"},
                 ["AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                  "FwoGZXIvYXdzEBYaDH0123456789abcdef"], ["eu-west-3"], id="bedrock-config"),
    pytest.param(18, "5f8a9c2b|NjY4ZDBkM2E5YTQ3ZjY5ZTk0ZGQ2ZmQ4|2f8e6c4a9b1d3e5f7a9c0b2d4e6f8a1c", {},
                 ["5f8a9c2b", "NjY4ZDBkM2E5YTQ3ZjY5ZTk0ZGQ2ZmQ4", "2f8e6c4a9b1d3e5f7a9c0b2d4e6f8a1c"], [],
                 id="xunfei-appid|secret|key"),
    pytest.param(3, "8f14e45fceea167a5a36dedd4bea2543", {}, ["8f14e45fceea167a5a36dedd4bea2543"], [], id="azure"),
])
def test_each_part_of_a_multi_part_key_is_masked_and_nothing_else(type_id, key, config, hidden, kept):
    secrets = secrets_of(type_id, key, **config)
    text = " / ".join(f"part {part} refused" for part in [*hidden, *kept])
    masked = mask_text(text, secrets)
    assert all(part not in masked for part in hidden), masked
    assert all(part in masked for part in kept), masked


def test_a_vertex_service_account_masks_its_private_key_not_the_rest_of_the_json():
    pem_lines = ["MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7",
                 "Zq8xV2nL4pR6tY8uI0oP2aS4dF6gH8jK0lZ2xC4vB6nM8qW0eR2t"]
    adc = orjson.dumps({"type": "service_account", "project_id": "demo-project",
                        "private_key_id": "a1b2c3d4e5f6a7b8c9d0",
                        "private_key": "-----BEGIN PRIVATE KEY-----\n" + "\n".join(pem_lines)
                                       + "\n-----END PRIVATE KEY-----\n",
                        "client_email": "relay@demo-project.iam.gserviceaccount.com"}).decode()
    secrets = secrets_of(42, "", vertex_ai_adc=adc)
    text = f"key {pem_lines[1][5:40]} id a1b2c3d4e5f6a7b8c9d0 for relay@demo-project.iam.gserviceaccount.com"
    masked = mask_text(text, secrets)
    assert pem_lines[1][5:40] not in masked and "a1b2c3d4e5f6a7b8c9d0" not in masked
    assert "relay@demo-project.iam.gserviceaccount.com" in masked


def test_an_error_is_masked_in_its_message_and_the_vendors_error_object():
    err = UpstreamError(status=401, message=f"Incorrect API key provided: {KEY}", code="invalid_api_key",
                        error_body={"message": f"Incorrect API key provided: {KEY}", "details": [{"key": KEY}]})
    masked = mask_error(err, secrets_of(1, KEY))
    assert KEY not in masked.message and KEY not in orjson.dumps(masked.error_body).decode()
    assert (masked.status, masked.code) == (401, "invalid_api_key")
    clean = UpstreamError(status=500, message="The server had an error.")
    assert mask_error(clean, secrets_of(1, KEY)) is clean


def test_bytes_are_masked_and_returned_untouched_when_clean():
    data = orjson.dumps({"error": {"message": f"bad key {KEY}"}})
    assert KEY.encode() not in mask_bytes(data, secrets_of(1, KEY))
    clean = b'{"error": {"message": "overloaded"}}'
    assert mask_bytes(clean, secrets_of(1, KEY)) is clean
