"""An OpenAI channel left to its default (Responses natively) that points at a chat-only server: the Responses
client still gets its answer, over the bridge on that same channel, and later requests go straight there."""

from __future__ import annotations

import logging

import openai
import pytest
from asgiref.sync import sync_to_async

from relay import native_fallback
from tests.helpers import consume_logs
from tests.mock_upstream import REPLY
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "gpt-4o-mini"
NOT_FOUND = {"raw": b"404 page not found", "status": 404, "content_type": "text/plain"}


@pytest.fixture
def world(transactional_db, upstream):
    """A type-1 channel with no config at the chat mock, whose first answer is scripted per test."""
    return new_world(upstream, username="olga", type=1, name="chat-only-proxy", key="sk-upstream-secret",
                     models=MODEL)


@pytest.fixture
def sdk(world, sdk_http):
    return openai.AsyncOpenAI(base_url="http://testserver/v1", api_key=f"sk-{world.token.key}",
                              http_client=sdk_http, max_retries=0)


def paths(world) -> list[str]:
    return [recorded.path for recorded in world.upstream.requests]


async def test_a_channel_without_responses_answers_over_the_bridge_and_is_remembered(sdk, world, caplog):
    world.upstream.then(**NOT_FOUND)
    with caplog.at_level(logging.WARNING, logger="oneapi.relay"):
        first = await sdk.responses.create(model=MODEL, input="Say hello", store=False)
        second = await sdk.responses.create(model=MODEL, input="Say hello again", store=False)
    assert first.output_text == REPLY and second.output_text == REPLY
    # The second request does not ask for /v1/responses again.
    assert paths(world) == ["/v1/responses", "/v1/chat/completions", "/v1/chat/completions"]
    assert world.upstream.requests[1].body["messages"] == [{"role": "user", "content": "Say hello"}]
    [line] = [r.getMessage() for r in caplog.records if "/responses" in r.getMessage()]
    assert f"channel #{world.channel.pk} answered 404" in line and "sk-upstream-secret" not in line
    logs = await consume_logs()
    assert [(log.client_protocol, log.channel_id) for log in logs] == [("responses", world.channel.pk)] * 2
    assert all(log.prompt_tokens == 11 and log.completion_tokens == 7 for log in logs)


async def test_a_stream_falls_back_on_405_and_ends_with_response_completed(sdk, world):
    world.upstream.then(raw=b"", status=405, content_type="text/plain")
    stream = await sdk.responses.create(model=MODEL, input="Say hello", stream=True)
    events = [event async for event in stream]
    assert events[-1].type == "response.completed" and events[-1].response.output_text == REPLY
    assert paths(world) == ["/v1/responses", "/v1/chat/completions"]


async def test_the_channel_is_asked_again_once_the_memory_lapses(sdk, world, monkeypatch):
    monkeypatch.setattr(native_fallback, "REMEMBER_SECONDS", 0.0)
    for _ in range(2):
        world.upstream.then(**NOT_FOUND)  # the mock's script is per request, whatever its path
        assert (await sdk.responses.create(model=MODEL, input="Say hello")).output_text == REPLY
    assert paths(world) == ["/v1/responses", "/v1/chat/completions"] * 2


async def test_a_missing_model_is_the_clients_404_not_a_missing_endpoint(sdk, world):
    world.upstream.then(status=404, error={"error": {"message": "The model `gpt-4o-mini` does not exist.",
                                                     "type": "invalid_request_error", "param": None,
                                                     "code": "model_not_found"}})
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.create(model=MODEL, input="Say hello")
    assert paths(world) == ["/v1/responses"] and not native_fallback.bridged(world.channel.pk, "responses")


async def test_a_channel_configured_to_serve_responses_is_taken_at_its_word(sdk_http, transactional_db, upstream):
    world = await sync_to_async(new_world)(upstream, username="pia", type=1, name="says-it-serves", models=MODEL,
                                           config={"responses_api": "true"})
    world.upstream.then(**NOT_FOUND)
    sdk = openai.AsyncOpenAI(base_url="http://testserver/v1", api_key=f"sk-{world.token.key}",
                             http_client=sdk_http, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.create(model=MODEL, input="Say hello")
    assert paths(world) == ["/v1/responses"]


async def test_input_tokens_are_counted_locally_where_the_endpoint_is_missing_or_the_channel_bridged(sdk, world):
    world.upstream.then(**NOT_FOUND)
    assert (await sdk.responses.input_tokens.count(model=MODEL, input="Say hello")).input_tokens > 0
    assert paths(world) == ["/v1/responses/input_tokens"]
    world.upstream.then(**NOT_FOUND)
    await sdk.responses.create(model=MODEL, input="Say hello")  # the channel goes on the bridge
    assert (await sdk.responses.input_tokens.count(model=MODEL, input="Say hello")).input_tokens > 0
    assert paths(world) == ["/v1/responses/input_tokens", "/v1/responses", "/v1/chat/completions"]
