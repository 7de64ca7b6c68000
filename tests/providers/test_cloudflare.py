"""Cloudflare Workers AI: OpenAI-compatible URLs under the account (or an AI Gateway), and one relay run."""

from pathlib import Path

import orjson
import pytest
from asgiref.sync import sync_to_async

from billing.models import Log
from providers.adapters import ADAPTERS, adapter_for
from providers.adapters.base import ChannelInfo, UpstreamError
from providers.adapters.cloudflare import CloudflareAdapter
from providers.adapters.openai import OpenAIAdapter
from tests.helpers import flush
from tests.providers.vendor_harness import call_context
from tests.world import new_world

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "cloudflare"
ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
MODEL = "@cf/meta/llama-3.1-8b-instruct"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}]}


def channel(base_url="", config=None, key="cf-api-token"):
    return ChannelInfo(id=1, type=37, name="cf", key=key, base_url=base_url, models=(MODEL,), model_mapping={},
                       config={"user_id": ACCOUNT} if config is None else config, system_prompt="", priority=0,
                       weight=0)


def build(mode="chat", body=CHAT, **kwargs):
    return adapter_for(37).build_request(call_context(channel(**kwargs), mode=mode, body=body))


def test_cloudflare_is_registered_as_an_openai_protocol_vendor():
    assert ADAPTERS[37] is CloudflareAdapter and issubclass(CloudflareAdapter, OpenAIAdapter)
    assert CloudflareAdapter.label == "Cloudflare Workers AI"
    assert CloudflareAdapter.default_base_url == "https://api.cloudflare.com"
    assert CloudflareAdapter.config_fields == ("user_id",)


def test_chat_and_embeddings_go_under_the_account():
    request = build()
    assert request.url == f"https://api.cloudflare.com/client/v4/accounts/{ACCOUNT}/ai/v1/chat/completions"
    assert request.headers["Authorization"] == "Bearer cf-api-token"
    assert orjson.loads(request.body) == CHAT  # OpenAI's body, forwarded as sent
    request = build(mode="embeddings", body={"model": "@cf/baai/bge-m3", "input": ["a"]},
                    config={"user_id": f" {ACCOUNT} "})
    assert request.url == f"https://api.cloudflare.com/client/v4/accounts/{ACCOUNT}/ai/v1/embeddings"


def test_an_ai_gateway_base_gets_the_openai_path_appended():
    gateway = f"https://gateway.ai.cloudflare.com/v1/{ACCOUNT}/my-gateway/workers-ai"
    assert build(base_url=gateway + "/", config={}).url == gateway + "/v1/chat/completions"
    assert build(mode="embeddings", base_url=gateway, config={}).url == gateway + "/v1/embeddings"


def test_a_missing_account_id_is_a_clear_error():
    with pytest.raises(UpstreamError) as caught:
        build(config={})
    err = caught.value
    assert err.code == "channel_misconfigured" and not err.retryable
    assert "Account ID" in err.message and "user_id" in err.message and "cf-api-token" not in err.message


def test_completions_mode_is_refused_and_there_is_no_balance_endpoint():
    with pytest.raises(UpstreamError) as caught:
        build(mode="completions", body={"model": MODEL, "prompt": "hi"})
    assert caught.value.status == 400
    assert adapter_for(37).balance_requests(channel()) == []


def test_cloudflare_error_envelope_keeps_its_message():
    err = adapter_for(37).parse_error(call_context(), status=401, body=(FIXTURES / "error_auth.json").read_bytes())
    assert (err.status, err.message, err.code, err.type) == (401, "Authentication error", "10000",
                                                             "authentication_error")
    assert not err.retryable
    assert adapter_for(37).parse_error(call_context(), status=429,
                                       body=b'{"errors":[{"code":3040,"message":"Capacity"}]}').retryable
    openai_style = adapter_for(37).parse_error(call_context(), status=400,
                                               body=b'{"error":{"message":"bad","type":"x"}}')
    assert openai_style.message == "bad"


@pytest.mark.django_db(transaction=True)
async def test_chat_through_the_relay_reaches_the_account_url_and_is_billed(relay_client, upstream):
    cf = await sync_to_async(new_world)(upstream, username="cf-user", token_name="cf-key", type=37, name="cloudflare",
                                        key="cf-api-token", models=MODEL, config={"user_id": ACCOUNT})
    auth = cf.auth
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["role"] == "assistant"
    sent = upstream.requests[-1]
    assert sent.path == f"/client/v4/accounts/{ACCOUNT}/ai/v1/chat/completions"
    assert sent.headers["Authorization"] == "Bearer cf-api-token" and sent.body["model"] == MODEL

    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth)
    assert response.content.endswith(b"data: [DONE]\n\n")
    await flush()
    logs = await sync_to_async(list)(Log.objects.filter(type=Log.Type.CONSUME).order_by("id"))
    assert [(log.prompt_tokens, log.completion_tokens) for log in logs] == [(11, 7), (11, 7)]
