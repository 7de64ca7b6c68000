"""Anthropic's Messages API through the gateway to an OpenAI-protocol channel, with the official SDK as client.

The channel is the shared OpenAI mock (the `world` fixture); answers it cannot script itself (tool calls,
thinking) are served as raw bodies in OpenAI's shape."""

from __future__ import annotations

import json

import anthropic
import httpx2
import orjson
import pytest
from asgiref.sync import sync_to_async

from accounts.models import Token
from tests.helpers import consume_logs
from tests.providers.mock_anthropic import MockAnthropic
from tests.providers.vendor_harness import serve
from tests.relay.chat_answers import THINKING_THEN_TWO_CALLS, WEATHER_IN_PARIS, chat_answer, chat_stream
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "gpt-4o-mini"
HELLO = [{"role": "user", "content": "Say hello"}]
WEATHER = {"name": "get_weather", "description": "Weather for a place",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


anthropic_server = serve(MockAnthropic)


@pytest.fixture
def claude(world, sdk_http):
    """The official SDK with alice's key, sent as x-api-key."""
    return anthropic.AsyncAnthropic(base_url="http://testserver", api_key=f"sk-{world.token.key}",
                                    http_client=sdk_http, max_retries=0)


async def test_a_message_is_answered_through_an_openai_channel(claude, world):
    message = await claude.messages.create(model=MODEL, max_tokens=256, system="Be brief.", messages=HELLO)
    assert message.content[0].text == "Hello from the mock upstream."
    assert (message.role, message.model, message.stop_reason) == ("assistant", MODEL, "end_turn")
    assert (message.usage.input_tokens, message.usage.output_tokens) == (11, 7)
    sent = world.upstream.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.body == {"model": MODEL, "max_tokens": 256, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]}


async def test_a_streamed_message_arrives_as_text_and_as_a_final_message(claude, world):
    async with claude.messages.stream(model=MODEL, max_tokens=256, messages=HELLO) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "Hello from the mock upstream."
    assert final.content[0].text == text and final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (11, 7)
    assert world.upstream.requests[-1].body["stream_options"] == {"include_usage": True}


async def test_a_stream_the_channel_answers_whole_still_arrives_as_events(claude, world):
    world.upstream.then(raw=chat_answer({"content": "Whole."}, "stop"))  # a vendor ignoring `stream: true`
    async with claude.messages.stream(model=MODEL, max_tokens=256, messages=HELLO) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "Whole." and final.stop_reason == "end_turn" and final.usage.output_tokens == 9
    [log] = await consume_logs()
    assert (log.prompt_tokens, log.completion_tokens) == (20, 9)


async def test_a_tool_use_round_trip(claude, world):
    world.upstream.then(raw=WEATHER_IN_PARIS)
    asked = [{"role": "user", "content": "Weather in Paris?"}]
    first = await claude.messages.create(model=MODEL, max_tokens=256, tools=[WEATHER], messages=asked)
    assert first.stop_reason == "tool_use"
    [call] = first.content
    assert (call.type, call.id, call.name, call.input) == ("tool_use", "call_1", "get_weather", {"city": "Paris"})
    assert world.upstream.requests[-1].body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "parameters": WEATHER["input_schema"], "description": "Weather for a place"}}]

    second = await claude.messages.create(model=MODEL, max_tokens=256, tools=[WEATHER], messages=[
        *asked, {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "Sunny, 21 C"}]}])
    assert second.content[0].text == "Hello from the mock upstream."
    sent = world.upstream.requests[-1].body["messages"]
    assert sent[1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}
    assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"}


async def test_streamed_thinking_and_tool_calls_reach_the_sdk_as_blocks(claude, world):
    world.upstream.then(content_type="text/event-stream", raw=THINKING_THEN_TWO_CALLS)
    async with claude.messages.stream(model=MODEL, max_tokens=256, tools=[WEATHER], messages=HELLO) as stream:
        final = await stream.get_final_message()
    thinking, paris, rome = final.content
    assert (thinking.type, thinking.thinking) == ("thinking", "Paris, then Rome.")
    assert (paris.id, paris.input) == ("call_a", {"city": "Paris"})
    assert (rome.id, rome.input) == ("call_b", {"city": "Rome"})
    assert final.stop_reason == "tool_use" and final.usage.output_tokens == 9


async def test_streamed_tool_arguments_that_are_no_json_reach_the_sdk_as_an_empty_input(claude, world):
    world.upstream.then(content_type="text/event-stream", raw=chat_stream(
        {"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                         "function": {"name": "get_weather", "arguments": '{"city": Par'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "is}"}}]}, finish="tool_calls"))
    async with claude.messages.stream(model=MODEL, max_tokens=256, tools=[WEATHER], messages=HELLO) as stream:
        final = await stream.get_final_message()  # the SDK fails on an input_json_delta that is no JSON
    [call] = final.content
    assert (call.id, call.name, call.input) == ("call_a", "get_weather", {})
    assert final.stop_reason == "tool_use"


async def test_count_tokens_is_answered_locally_and_costs_nothing(claude, world):
    bare = await claude.messages.count_tokens(model=MODEL, messages=HELLO)
    with_tools = await claude.messages.count_tokens(model=MODEL, messages=HELLO, system="Be brief.", tools=[WEATHER])
    assert 0 < bare.input_tokens < with_tools.input_tokens
    assert world.upstream.requests == [] and await consume_logs() == []


async def test_a_bearer_key_works_as_well_as_x_api_key(world, sdk_http):
    bearer = anthropic.AsyncAnthropic(base_url="http://testserver", api_key=None, auth_token=f"sk-{world.token.key}",
                                      http_client=sdk_http, max_retries=0)
    message = await bearer.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
    assert message.content[0].text == "Hello from the mock upstream."


async def test_the_openai_routes_take_x_api_key_too(client, world):
    response = await client.post("/v1/chat/completions", json={"model": MODEL, "messages": HELLO},
                                 headers={"x-api-key": f"sk-{world.token.key}"})
    assert response.status_code == 200, response.text


async def test_a_bad_key_is_an_authentication_error(world, sdk_http):
    stranger = anthropic.AsyncAnthropic(base_url="http://testserver", api_key="sk-doesnotexist",
                                        http_client=sdk_http, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as refused:
        await stranger.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
    assert refused.value.body["error"]["type"] == "authentication_error"
    assert "Invalid API key" in refused.value.body["error"]["message"]


async def test_a_request_without_max_tokens_is_a_bad_request_in_anthropics_shape(claude, world):
    with pytest.raises(anthropic.BadRequestError) as refused:
        await claude.post("/v1/messages", cast_to=httpx2.Response, body={"model": MODEL, "messages": HELLO})
    assert refused.value.body["error"]["type"] == "invalid_request_error"
    assert refused.value.body["error"]["message"].startswith("max_tokens: Field required")
    assert world.upstream.requests == []


def nested(depth: int) -> list:
    return orjson.loads(b"[" * depth + b"]" * depth)


async def test_what_nests_too_deep_to_be_written_out_is_a_bad_request_not_a_failure(client, world):
    auth = {"x-api-key": f"sk-{world.token.key}"}
    call = {"role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"x": nested(400)}}]}
    sent = await client.post("/v1/messages", headers=auth, content=json.dumps(
        {"model": MODEL, "max_tokens": 16, "messages": [*HELLO, call]}))
    counted = await client.post("/v1/messages/count_tokens", headers=auth, content=json.dumps(
        {"model": MODEL, "messages": HELLO, "tools": [{"name": "f", "input_schema": {"x": nested(400)}}]}))
    for response in (sent, counted):
        assert response.status_code == 400, response.text
        assert response.json()["error"]["type"] == "invalid_request_error"
    assert "nested" in sent.json()["error"]["message"] and world.upstream.requests == []


async def test_upstream_and_routing_failures_arrive_as_the_sdks_errors(claude, world):
    world.upstream.then(status=429, error={"error": {"message": "slow down", "type": "requests", "code": None}})
    with pytest.raises(anthropic.RateLimitError) as limited:
        await claude.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
    assert limited.value.body["error"]["message"].startswith("slow down")
    with pytest.raises(anthropic.InternalServerError) as unknown:
        await claude.messages.create(model="no-such-model", max_tokens=64, messages=HELLO)
    assert unknown.value.status_code == 503 and "no-such-model" in unknown.value.body["error"]["message"]


@pytest.mark.parametrize("method, path, status", [("POST", "/v1/messages/batches", 404), ("GET", "/v1/messages", 405)])
async def test_other_requests_on_the_messages_routes_are_refused_in_anthropics_shape(client, world, method, path,
                                                                                       status):
    response = await client.request(method, path, headers={"x-api-key": f"sk-{world.token.key}"})
    assert response.status_code == status
    assert response.json()["type"] == "error" and response.json()["error"]["type"] in ("not_found_error",
                                                                                          "invalid_request_error")


async def test_a_stream_cut_off_ends_with_an_error_event_and_bills_what_arrived(client, world):
    world.upstream.then(reply=" ".join(["word"] * 50), cut_after=5, usage=False)
    response = await client.post("/v1/messages", headers={"x-api-key": f"sk-{world.token.key}"},
                                 json={"model": MODEL, "max_tokens": 64, "stream": True, "messages": HELLO})
    assert response.status_code == 200
    frames = response.content.split(b"\n\n")
    assert frames[-2].startswith(b"event: error\ndata: ") and b"[DONE]" not in response.content
    assert orjson.loads(frames[-2].split(b"data: ", 1)[1])["error"]["type"] == "api_error"
    assert b"message_stop" not in response.content
    [log] = await consume_logs()
    assert 0 < log.completion_tokens < 50


@pytest.mark.parametrize("usage", [True, False])
async def test_a_message_is_billed_and_logged_as_the_same_chat_request(client, world, usage):
    world.upstream.default.usage = usage  # without usage, both are counted by the tokenizer
    try:
        auth = {"x-api-key": f"sk-{world.token.key}"}
        message = await client.post("/v1/messages", headers=auth, json={
            "model": MODEL, "max_tokens": 64, "system": "Be brief.", "messages": HELLO})
        chat = await client.post("/v1/chat/completions", headers=auth, json={
            "model": MODEL, "max_tokens": 64, "messages": [{"role": "system", "content": "Be brief."}, *HELLO]})
    finally:
        world.upstream.default.usage = True
    assert message.status_code == chat.status_code == 200
    by_messages, by_chat = await consume_logs()
    fields = ("model_name", "quota", "prompt_tokens", "completion_tokens", "is_stream", "token_id", "channel_id")
    assert [getattr(by_messages, f) for f in fields] == [getattr(by_chat, f) for f in fields]
    assert (by_messages.client_protocol, by_chat.client_protocol) == ("anthropic", "openai")
    assert by_messages.quota > 0 and by_messages.request_id == message.headers["x-oneapi-request-id"]
    token = await sync_to_async(Token.objects.get)(pk=world.token.pk)
    assert token.used_quota == 2 * by_chat.quota


CLAUDE_CODE_BODY = {
    "model": MODEL, "max_tokens": 32000,
    "system": [{"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
               {"type": "text", "text": "Use the tools.", "cache_control": {"type": "ephemeral"}}],
    "messages": [{"role": "system", "content": "Reminder: be careful."},
                 {"role": "user", "content": [{"type": "text", "text": "list files",
                                               "cache_control": {"type": "ephemeral"}}]}],
    "tools": [{"name": "Bash", "description": "Run a command", "defer_loading": False,
               "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
               "cache_control": {"type": "ephemeral"}},
              {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}],
    "thinking": {"type": "adaptive"}, "context_management": {"edits": [{"type": "clear_thinking_20251015"}]},
    "output_config": {"effort": "high"}, "metadata": {"user_id": "user_abc_account__session_1"},
    "temperature": 1, "stream": True,
}
CLAUDE_CODE_HEADERS = {"anthropic-version": "2023-06-01", "x-app": "cli", "user-agent": "claude-cli/2.1.0",
                       "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,"
                                         "context-management-2025-06-27,fine-grained-tool-streaming-2025-05-14"}


async def test_a_claude_code_request_is_answered_streamed_and_then_whole(client, world):
    headers = {**CLAUDE_CODE_HEADERS, "x-api-key": f"sk-{world.token.key}"}
    streamed = await client.post("/v1/messages?beta=true", headers=headers, json=CLAUDE_CODE_BODY)
    assert streamed.status_code == 200, streamed.text
    assert streamed.headers["content-type"] == "text/event-stream"
    assert streamed.content.startswith(b"event: message_start\n")
    assert streamed.content.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    sent = world.upstream.requests[-1].body
    assert sent["messages"][:2] == [
        {"role": "system", "content": "You are Claude Code, Anthropic's official CLI for Claude.\n\nUse the tools."},
        {"role": "system", "content": "Reminder: be careful."}]
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "Bash", "description": "Run a command",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}}]
    assert not {"thinking", "context_management", "output_config", "metadata", "reasoning_effort"} & set(sent)

    whole = await client.post("/v1/messages?beta=true", headers=headers, json={**CLAUDE_CODE_BODY, "stream": False})
    assert whole.status_code == 200, whole.text
    assert whole.json()["content"] == [{"type": "text", "text": "Hello from the mock upstream."}]
    assert "stream" not in world.upstream.requests[-1].body


@pytest.fixture
def claude_world(transactional_db, anthropic_server):
    return new_world(anthropic_server, username="bob", type=14, name="claude", key="sk-ant-upstream",
                     models="claude-house", model_mapping={"claude-house": "claude-sonnet-4-5-20250929"},
                     config={"api_version": "2023-06-01"})


async def test_a_claude_channel_gets_the_message_as_sent_and_answers_with_its_tool_calls(claude_world, sdk_http):
    # An Anthropic channel speaks Messages itself: the request passes through (tests/relay/test_messages_native.py
    # has the rest), and the answer is Anthropic's, naming the model that answered.
    world = claude_world
    claude = anthropic.AsyncAnthropic(base_url="http://testserver", api_key=f"sk-{world.token.key}",
                                      http_client=sdk_http, max_retries=0)
    world.upstream.then(answer="tool_call")
    whole = await claude.messages.create(model="claude-house", max_tokens=256, tools=[WEATHER], messages=HELLO)
    assert [block.type for block in whole.content] == ["text", "tool_use"]
    assert whole.content[1].input == {"location": "San Francisco, CA", "unit": "celsius"}
    assert whole.stop_reason == "tool_use" and whole.model == "claude-sonnet-4-5-20250929"
    world.upstream.then(answer="tool_call")
    async with claude.messages.stream(model="claude-house", max_tokens=256, tools=[WEATHER],
                                      messages=HELLO) as stream:
        final = await stream.get_final_message()
    assert final.content[1].input == {"location": "San Francisco, CA"} and final.stop_reason == "tool_use"
    sent = world.upstream.requests[-1]
    assert sent.path == "/v1/messages" and sent.body == {
        "model": "claude-sonnet-4-5-20250929", "max_tokens": 256, "tools": [WEATHER], "messages": HELLO,
        "stream": True}


SIGNED = {"type": "thinking", "thinking": "Paris first.", "signature": "EqQBCkYIBxgCKkA3sig=="}
REDACTED = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3redacted=="}
PARIS_CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}


@pytest.mark.parametrize("streamed", [False, True])
async def test_signed_thinking_from_a_chat_channel_reaches_the_sdk_signed(claude, world, streamed):
    """A chat channel that fronts Claude (a LiteLLM proxy) gives its signed thinking in `thinking_blocks`: Claude
    clients get real signed blocks. What they send back stays out of the chat request, as all thinking does:
    strict OpenAI-compatible servers refuse message fields they do not know."""
    if streamed:
        world.upstream.then(content_type="text/event-stream", raw=chat_stream(
            {"role": "assistant", "reasoning_content": "Paris "}, {"reasoning_content": "first."},
            {"thinking_blocks": [SIGNED]}, {"thinking_blocks": [REDACTED]},
            {"tool_calls": [{"index": 0, **PARIS_CALL}]}, finish="tool_calls"))
        async with claude.messages.stream(model=MODEL, max_tokens=256, tools=[WEATHER], messages=HELLO) as stream:
            first = await stream.get_final_message()
    else:
        world.upstream.then(raw=chat_answer({"content": None, "reasoning_content": "Paris first.",
                                             "thinking_blocks": [SIGNED, REDACTED], "tool_calls": [PARIS_CALL]},
                                            "tool_calls"))
        first = await claude.messages.create(model=MODEL, max_tokens=256, tools=[WEATHER], messages=HELLO)
    assert [block.model_dump() for block in first.content[:2]] == [SIGNED, REDACTED]
    assert first.content[2].type == "tool_use"

    await claude.messages.create(model=MODEL, max_tokens=256, tools=[WEATHER], messages=[
        *HELLO, {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "Sunny"}]}])
    sent = world.upstream.requests[-1].body["messages"]
    assert sent[1] == {"role": "assistant", "content": None, "tool_calls": [PARIS_CALL]}
