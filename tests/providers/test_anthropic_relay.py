"""Anthropic channels end to end: OpenAI requests through the ASGI app to a mock Messages API.

What every vendor owes (answers, streams, usage, refusals, failover) is in test_vendor_contract.py;
here is what is Anthropic's own: the Messages request, model mapping and tools."""

import orjson
import pytest

from providers.selectors import models_by_channel_type
from tests.helpers import consume_log, events_of
from tests.providers.mock_anthropic import MockAnthropic
from tests.providers.vendor_harness import serve
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "sk-ant-api03-upstream-secret"
MODEL = "claude-sonnet-4-5-20250929"
CHAT = {"model": MODEL, "messages": [{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": "Say hello"}]}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a place",
                                           "parameters": {"type": "object",
                                                          "properties": {"location": {"type": "string"}}}}}]


anthropic_server = serve(MockAnthropic)


@pytest.fixture
def claude(transactional_db, anthropic_server):
    return new_world(anthropic_server, username="alice", type=14, name="claude", key=KEY,
                     models=f"{MODEL},claude-haiku",
                     model_mapping={"claude-haiku": "claude-haiku-4-5-20251001"}, config={"api_version": "2023-06-01"})


async def test_a_chat_is_sent_to_the_messages_api_with_the_key_and_version(relay_client, claude):
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=claude.auth)
    assert response.status_code == 200, response.text
    sent = claude.upstream.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/v1/messages")
    assert sent.headers["x-api-key"] == KEY and sent.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in sent.headers
    assert sent.body == {"model": MODEL, "max_tokens": 4096, "system": "Be brief.",
                         "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}]}


async def test_mapped_model_is_sent_upstream(relay_client, claude):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "model": "claude-haiku"},
                                       headers=claude.auth)
    assert response.status_code == 200, response.text
    assert claude.upstream.requests[-1].body["model"] == "claude-haiku-4-5-20251001"
    assert (await consume_log()).model_name == "claude-haiku"


async def test_a_stream_is_asked_for_as_server_sent_events(relay_client, claude):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=claude.auth)
    assert response.status_code == 200
    sent = claude.upstream.requests[-1]
    assert sent.body["stream"] is True and "stream_options" not in sent.body
    assert sent.headers["Accept"] == "text/event-stream"


async def test_tool_call_answer_reaches_the_client_as_tool_calls(relay_client, claude):
    claude.upstream.then(answer="tool_call")
    body = {**CHAT, "tools": TOOLS, "tool_choice": "required"}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=claude.auth)
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert orjson.loads(call["function"]["arguments"])["location"] == "San Francisco, CA"
    sent = claude.upstream.requests[-1].body
    assert sent["tools"][0]["input_schema"] == TOOLS[0]["function"]["parameters"]
    assert sent["tool_choice"] == {"type": "any"}
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (384 + 20 + 100, 58)


async def test_tool_call_stream_reaches_the_client_as_tool_call_chunks(relay_client, claude):
    claude.upstream.then(answer="tool_call")
    body = {**CHAT, "tools": TOOLS, "stream": True}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=claude.auth)
    chunks = [orjson.loads(e) for e in events_of(response.content)[:-1]]
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if "tool_calls" in c["choices"][0]["delta"]]
    assert calls[0]["id"] == "toolu_01T1x1fJ34qAmk2tNTrN7Up6" and calls[0]["function"]["name"] == "get_weather"
    assert orjson.loads("".join(c["function"]["arguments"] for c in calls)) == {"location": "San Francisco, CA"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (472, 89)


async def test_tool_history_round_trip_is_sent_as_tool_use_and_tool_result(relay_client, claude):
    body = {"model": MODEL, "tools": TOOLS, "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "toolu_1", "type": "function", "function": {
            "name": "get_weather", "arguments": '{"location": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C and sunny"},
    ]}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=claude.auth)
    assert response.status_code == 200, response.text
    messages = claude.upstream.requests[-1].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"][0]["input"] == {"location": "Paris"}
    assert messages[2]["content"][0]["tool_use_id"] == "toolu_1"


def test_api_models_lists_claude_models_for_type_14():
    listed = models_by_channel_type()[14]
    assert MODEL in listed and all(m.startswith("claude-") for m in listed)
