"""A channel's param_override and header_override, end to end: requests through the ASGI app, and what the
mock upstream received. The override edits the vendor's body, after the client's request was translated."""

from __future__ import annotations

import logging

import pytest
from asgiref.sync import sync_to_async

from providers.models import Channel
from providers.services import channel_update
from relay.cache import cache
from tests.helpers import consume_logs
from tests.providers.mock_anthropic import MockAnthropic
from tests.providers.vendor_harness import serve
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}
CLAUDE = "claude-sonnet-4-5-20250929"
anthropic_server = serve(MockAnthropic)


async def configure(channel_id: int, **config) -> None:
    def update() -> None:
        channel = Channel.objects.get(pk=channel_id)
        channel_update(channel=channel, config={**channel.config, **config})

    await sync_to_async(update)()
    cache.clear()


async def test_the_plain_object_form_is_merged_into_the_body_sent_upstream(relay_client, world):
    await configure(world.channel.pk, param_override={"temperature": 0.1, "user": "gateway"})
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "temperature": 0.9}, headers=world.auth)
    assert response.status_code == 200, response.text
    sent = world.upstream.requests[-1].body
    assert (sent["temperature"], sent["user"], sent["messages"]) == (0.1, "gateway", CHAT["messages"])


async def test_operations_run_in_order_and_only_where_their_conditions_hold(relay_client, world):
    await configure(world.channel.pk, param_override={"operations": [
        {"path": "max_tokens", "mode": "delete"},
        {"path": "messages.0.content", "mode": "prepend", "value": "[team ml] "},
        {"path": "model", "mode": "set", "value": "gpt-3.5-turbo-0125",
         "conditions": [{"path": "model", "mode": "full", "value": "gpt-3.5-turbo"}]},
        {"path": "reasoning_effort", "mode": "set", "value": "low", "logic": "AND",
         "conditions": [{"path": "model", "mode": "prefix", "value": "gpt-4o"},
                        {"path": "stream", "mode": "full", "value": True}]},
    ]})
    for model in ("gpt-4o-mini", "gpt-3.5-turbo"):
        response = await relay_client.post("/v1/chat/completions", headers=world.auth,
                                           json={**CHAT, "model": model, "max_tokens": 50})
        assert response.status_code == 200, response.text
    mini, big = (request.body for request in world.upstream.requests)
    assert mini["model"] == "gpt-4o-mini" and big["model"] == "gpt-3.5-turbo-0125"
    assert "max_tokens" not in mini and mini["messages"][0]["content"] == "[team ml] Hello"
    assert "reasoning_effort" not in big
    response = await relay_client.post("/v1/chat/completions", headers=world.auth, json={**CHAT, "stream": True})
    assert response.status_code == 200 and "[DONE]" in response.text
    assert world.upstream.requests[-1].body["reasoning_effort"] == "low"


async def test_header_override_adds_and_replaces_headers_with_the_key_filled_in(relay_client, world, caplog):
    await configure(world.channel.pk, header_override={"authorization": "Key {api_key}", "X-Team": "ml",
                                                       "X-Upstream-Token": "tok-{api_key}"})
    caplog.set_level(logging.DEBUG)
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 200, response.text
    headers = {name.lower(): value for name, value in world.upstream.requests[-1].headers.items()}
    assert headers["authorization"] == "Key sk-upstream-secret"  # replaced whatever its case, not doubled
    assert headers["x-team"] == "ml" and headers["x-upstream-token"] == "tok-sk-upstream-secret"
    assert "tok-sk-upstream-secret" not in caplog.text


async def test_an_upstream_error_echoing_an_override_header_is_masked(relay_client, world):
    await configure(world.channel.pk, header_override={"X-Api-Token": "team-secret-token-value"})
    world.upstream.then(status=401, error={"error": {"message": "bad token team-secret-token-value",
                                                     "type": "invalid_request_error"}})
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=world.auth)
    assert response.status_code == 401
    assert "team-secret-token-value" not in response.text


async def test_return_error_refuses_before_anything_is_sent_and_bills_nothing(relay_client, world):
    await configure(world.channel.pk, param_override={"operations": [
        {"mode": "return_error", "value": {"message": "Streaming is off on this channel.", "status_code": 403},
         "conditions": [{"path": "stream", "mode": "full", "value": True}]}]})
    response = await relay_client.post("/v1/chat/completions", headers=world.auth, json={**CHAT, "stream": True})
    assert response.status_code == 403, response.text
    assert response.json()["error"]["message"].startswith("Streaming is off on this channel.")
    assert world.upstream.requests == []
    assert await consume_logs() == []
    response = await relay_client.post("/v1/chat/completions", headers=world.auth, json=CHAT)
    assert response.status_code == 200, response.text


@pytest.fixture
def claude(transactional_db, anthropic_server):
    return new_world(anthropic_server, username="claude-user", type=14, key="sk-ant-api03-upstream-secret",
                     models=CLAUDE)


async def test_the_override_edits_the_vendors_body_after_translation(relay_client, claude):
    # `system` and `top_k` are Claude's fields: they exist only once the OpenAI request became a Messages one.
    await configure(claude.channel.pk, param_override={"operations": [
        {"path": "top_k", "mode": "set", "value": 40,
         "conditions": [{"path": "system", "mode": "contains", "value": "brief"}]},
        {"path": "max_tokens", "mode": "set", "value": 1000}]},
        header_override={"anthropic-beta": "context-1m-2025-08-07"})
    chat = {"model": CLAUDE, "messages": [{"role": "system", "content": "Be brief."},
                                          {"role": "user", "content": "Say hello"}]}
    response = await relay_client.post("/v1/chat/completions", json=chat, headers=claude.auth)
    assert response.status_code == 200, response.text
    sent = claude.upstream.requests[-1]
    assert sent.body["system"] == "Be brief." and sent.body["top_k"] == 40 and sent.body["max_tokens"] == 1000
    assert sent.headers["anthropic-beta"] == "context-1m-2025-08-07"


async def test_the_override_applies_to_a_native_pass_through_too(relay_client, claude):
    await configure(claude.channel.pk, param_override={"operations": [
        {"path": "metadata.user_id", "mode": "set", "value": "gateway"}]})
    response = await relay_client.post("/v1/messages", headers=claude.auth, json={
        "model": CLAUDE, "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]})
    assert response.status_code == 200, response.text
    sent = claude.upstream.requests[-1].body
    assert sent["metadata"] == {"user_id": "gateway"} and sent["max_tokens"] == 64
