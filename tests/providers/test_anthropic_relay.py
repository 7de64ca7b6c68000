"""Anthropic channels end to end: OpenAI requests through the ASGI app to a mock Messages API."""

import orjson
import pytest
from asgiref.sync import sync_to_async

from billing.services import option_set
from providers.selectors import models_by_channel_type
from tests.factories import ChannelFactory
from tests.helpers import consume_log, events_of
from tests.providers.mock_anthropic import MockAnthropic
from tests.providers.vendor_harness import no_consume_log, sdk_chat_both_ways, serve, stream_chunks
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



async def test_plain_chat_is_converted_both_ways_and_billed_with_anthropic_usage(relay_client, claude):
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=claude.auth)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "Hello from Claude."}
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"]["prompt_tokens"] == 12 and answer["usage"]["completion_tokens"] == 6

    sent = claude.upstream.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/v1/messages")
    assert sent.headers["x-api-key"] == KEY and sent.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in sent.headers
    assert sent.body == {"model": MODEL, "max_tokens": 4096, "system": "Be brief.",
                         "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}]}

    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens, log.is_stream) == (12, 6, False)
    assert log.channel_id == claude.channel.pk


async def test_mapped_model_is_sent_upstream(relay_client, claude):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "model": "claude-haiku"},
                                       headers=claude.auth)
    assert response.status_code == 200, response.text
    assert claude.upstream.requests[-1].body["model"] == "claude-haiku-4-5-20251001"
    assert (await consume_log()).model_name == "claude-haiku"


async def test_stream_is_converted_to_openai_chunks_and_usage_hidden_unless_asked(relay_client, claude):
    async with relay_client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True},
                                   headers=claude.auth) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = b"".join([chunk async for chunk in response.aiter_bytes()])
    chunks = stream_chunks(raw)
    assert all(c["choices"] for c in chunks), "the usage-only chunk must not reach a client that did not ask"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hello from Claude."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    sent = claude.upstream.requests[-1]
    assert sent.body["stream"] is True and "stream_options" not in sent.body
    assert sent.headers["Accept"] == "text/event-stream"

    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens, log.is_stream) == (12, 6, True)


async def test_stream_ends_with_a_usage_chunk_when_the_client_asks(relay_client, claude):
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=claude.auth)
    last = orjson.loads(events_of(response.content)[-2])
    assert last["choices"] == [] and last["usage"]["prompt_tokens"] == 12
    assert last["usage"]["completion_tokens"] == 6 and last["usage"]["total_tokens"] == 18


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


async def test_vendor_error_keeps_its_message_and_type_and_never_shows_the_key(relay_client, claude):
    claude.upstream.then(status=401, error="error_authentication")
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=claude.auth)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["message"].startswith("invalid x-api-key") and error["type"] == "authentication_error"
    assert KEY not in response.text
    assert await no_consume_log()


async def test_overloaded_claude_fails_over_to_the_next_channel(relay_client, claude):
    await sync_to_async(option_set)(key="RetryTimes", value="1")
    backup = await sync_to_async(ChannelFactory)(type=14, name="claude-backup", base_url=claude.upstream.url,
                                                 key=KEY, models=MODEL, priority=-1)
    claude.upstream.then(status=529, error="error_overloaded")
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=claude.auth)
    assert response.status_code == 200, response.text
    assert len(claude.upstream.requests) == 2
    assert (await consume_log()).channel_id == backup.pk


async def test_overloaded_without_a_backup_reaches_the_client_with_anthropic_message(relay_client, claude):
    claude.upstream.then(status=529, error="error_overloaded")
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=claude.auth)
    assert response.status_code == 529
    assert response.json()["error"]["message"].startswith("Overloaded")
    assert response.json()["error"]["type"] == "overloaded_error"


async def test_stream_cut_off_mid_way_ends_with_an_error_event_and_bills_what_arrived(relay_client, claude):
    claude.upstream.then(cut_after=5)
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=claude.auth)
    assert response.status_code == 200
    events = events_of(response.content)
    assert events[-1] == b"[DONE]"
    assert orjson.loads(events[-2])["error"]["code"] == "stream_interrupted"
    log = await consume_log()
    assert log.completion_tokens > 0 and log.prompt_tokens > 0  # counted locally: no message_delta arrived


async def test_malformed_event_does_not_break_the_stream(relay_client, claude):
    claude.upstream.then(answer="malformed")
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=claude.auth)
    assert response.status_code == 200
    chunks = [orjson.loads(e) for e in events_of(response.content)[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hello again."
    assert response.content.endswith(b"data: [DONE]\n\n")
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (12, 4)


async def test_error_event_mid_stream_reaches_the_client_as_an_openai_error(relay_client, claude):
    claude.upstream.then(answer="error")
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=claude.auth)
    events = events_of(response.content)
    assert events[-1] == b"[DONE]"
    assert orjson.loads(events[-2])["error"] == {"message": "Overloaded", "type": "overloaded_error",
                                                 "code": "overloaded_error", "param": None}


async def test_embeddings_on_a_claude_channel_are_refused_without_calling_anthropic(relay_client, claude):
    await sync_to_async(ChannelFactory)(type=14, name="claude-embed", base_url=claude.upstream.url, key=KEY,
                                        models="claude-embed")
    response = await relay_client.post("/v1/embeddings", json={"model": "claude-embed", "input": "x"},
                                       headers=claude.auth)
    # The router skips channels whose adapter lacks the mode (503, no channel); a channel reached anyway
    # (pinned) is refused by the adapter itself (400). Either way Anthropic is never called.
    assert response.status_code in (400, 503)
    assert not claude.upstream.requests


async def test_the_openai_sdk_chats_and_streams_with_claude(relay_client, claude):
    sdk = claude.sdk(relay_client)
    answer, (text, usage, finish) = await sdk_chat_both_ways(sdk, MODEL, CHAT["messages"])
    assert answer.choices[0].message.content == "Hello from Claude."
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (12, 6)
    assert text == "Hello from Claude." and finish == "stop"
    assert (usage.prompt_tokens, usage.completion_tokens) == (12, 6)


def test_api_models_lists_claude_models_for_type_14():
    listed = models_by_channel_type()[14]
    assert MODEL in listed and all(m.startswith("claude-") for m in listed)
