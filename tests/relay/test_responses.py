"""OpenAI's Responses API through the gateway to an OpenAI-protocol chat channel, with the official SDK as client.

The channel is the shared OpenAI mock (the `world` fixture); answers it cannot script itself (tool calls,
reasoning) are served as raw bodies in chat's shape."""

from __future__ import annotations

import openai
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
REPLY = "Hello from the mock upstream."
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a place",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}

anthropic_server = serve(MockAnthropic)


@pytest.fixture
def world(transactional_db, upstream):
    """alice's OpenAI channel at the chat mock, which serves no Responses API (its config says so): the bridge
    answers (tests/relay/test_responses_native.py has the channels that serve it)."""
    return new_world(upstream, username="alice", name="mock-openai", key="sk-upstream-secret",
                     models="gpt-4o-mini,gpt-3.5-turbo", config={"responses_api": "false"})


@pytest.fixture
def sdk(world, sdk_http):
    return openai.AsyncOpenAI(base_url="http://testserver/v1", api_key=f"sk-{world.token.key}",
                              http_client=sdk_http, max_retries=0)


def sse_events(content: bytes) -> list[dict]:
    return [orjson.loads(frame.split(b"data: ", 1)[1]) for frame in content.split(b"\n\n") if b"data: " in frame]


async def test_a_response_is_created_through_an_openai_channel(sdk, world):
    response = await sdk.responses.create(model=MODEL, instructions="Be brief.", input="Say hello",
                                          max_output_tokens=256)
    assert response.output_text == REPLY
    assert (response.object, response.status, response.model) == ("response", "completed", MODEL)
    assert response.id.startswith("resp_") and response.instructions == "Be brief."
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (11, 7, 18)
    sent = world.upstream.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.body == {"model": MODEL, "max_tokens": 256, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]}


async def test_a_streamed_response_arrives_as_responses_events(sdk, world):
    events = [event async for event in await sdk.responses.create(model=MODEL, input="Say hello", stream=True)]
    kinds = [event.type for event in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == REPLY
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    assert final.output_text == REPLY and final.usage.output_tokens == 7
    assert world.upstream.requests[-1].body["stream_options"] == {"include_usage": True}


async def test_a_stream_the_channel_answers_whole_still_arrives_as_events(sdk, world):
    world.upstream.then(raw=chat_answer({"content": "Whole."}, "stop"))  # a vendor ignoring `stream: true`
    async with sdk.responses.stream(model=MODEL, input="Say hello") as stream:
        text = "".join([event.delta async for event in stream if event.type == "response.output_text.delta"])
        final = await stream.get_final_response()
    assert text == "Whole." and final.status == "completed" and final.usage.output_tokens == 9
    [log] = await consume_logs()
    assert (log.prompt_tokens, log.completion_tokens) == (20, 9)


async def test_the_stream_helper_gives_the_final_response(sdk, world):
    async with sdk.responses.stream(model=MODEL, input="Say hello") as stream:
        text = "".join([event.delta async for event in stream if event.type == "response.output_text.delta"])
        final = await stream.get_final_response()
    assert text == REPLY and final.output_text == REPLY and final.status == "completed"


async def test_a_function_call_round_trip(sdk, world):
    world.upstream.then(raw=WEATHER_IN_PARIS)
    asked = [{"role": "user", "content": "Weather in Paris?"}]
    first = await sdk.responses.create(model=MODEL, input=asked, tools=[WEATHER])
    [call] = first.output
    assert (call.type, call.call_id, call.name, call.arguments) == ("function_call", "call_1", "get_weather",
                                                                    '{"city":"Paris"}')
    assert world.upstream.requests[-1].body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a place", "parameters": WEATHER["parameters"]}}]

    second = await sdk.responses.create(model=MODEL, tools=[WEATHER], input=[
        *asked, *[item.model_dump(exclude_none=True) for item in first.output],
        {"type": "function_call_output", "call_id": "call_1", "output": "Sunny, 21 C"}])
    assert second.output_text == REPLY
    sent = world.upstream.requests[-1].body["messages"]
    assert sent[1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}
    assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"}


APPLY_PATCH = {"type": "custom", "name": "apply_patch", "description": "Edit files with a patch.",
               "format": {"type": "grammar", "syntax": "lark", "definition": 'start: "*** Begin Patch" LF'}}
PATCH = "*** Begin Patch\n*** Add File: a.txt\n+one\n*** End Patch\n"


async def test_a_custom_tool_call_round_trip(sdk, world):
    arguments = orjson.dumps({"input": PATCH}).decode()
    world.upstream.then(raw=chat_answer({"content": None, "tool_calls": [
        {"id": "call_p", "type": "function", "function": {"name": "apply_patch", "arguments": arguments}}]},
        "tool_calls"))
    asked = [{"role": "user", "content": "Add a.txt"}]
    first = await sdk.responses.create(model=MODEL, input=asked, tools=[APPLY_PATCH])
    [call] = first.output
    assert (call.type, call.call_id, call.name, call.input) == ("custom_tool_call", "call_p", "apply_patch", PATCH)
    [tool] = world.upstream.requests[-1].body["tools"]
    assert tool["function"]["parameters"]["properties"]["input"]["type"] == "string"

    second = await sdk.responses.create(model=MODEL, tools=[APPLY_PATCH], input=[
        *asked, *[item.model_dump(exclude_none=True) for item in first.output],
        {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Done: A a.txt"}])
    assert second.output_text == REPLY
    sent = world.upstream.requests[-1].body["messages"]
    assert sent[1]["tool_calls"] == [{"id": "call_p", "type": "function",
                                      "function": {"name": "apply_patch", "arguments": arguments}}]
    assert sent[2] == {"role": "tool", "tool_call_id": "call_p", "content": "Done: A a.txt"}


async def test_a_streamed_custom_tool_call_reaches_the_stream_helper(sdk, world):
    arguments = orjson.dumps({"input": PATCH}).decode()
    world.upstream.then(content_type="text/event-stream", raw=chat_stream(
        {"tool_calls": [{"index": 0, "id": "call_p", "type": "function",
                         "function": {"name": "apply_patch", "arguments": arguments[:12]}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": arguments[12:]}}]}, finish="tool_calls"))
    async with sdk.responses.stream(model=MODEL, input="Add a.txt", tools=[APPLY_PATCH]) as stream:
        deltas = [event.delta async for event in stream if event.type == "response.custom_tool_call_input.delta"]
        final = await stream.get_final_response()
    [call] = final.output
    assert (call.type, call.call_id, call.input) == ("custom_tool_call", "call_p", PATCH)
    assert "".join(deltas) == PATCH


async def test_streamed_reasoning_and_function_calls_reach_the_stream_helper(sdk, world):
    world.upstream.then(content_type="text/event-stream", raw=THINKING_THEN_TWO_CALLS)
    async with sdk.responses.stream(model=MODEL, input="Weather?", tools=[WEATHER],
                                    reasoning={"effort": "low"}) as stream:
        final = await stream.get_final_response()
    reasoning, paris, rome = final.output
    assert reasoning.summary[0].text == "Paris, then Rome."
    assert (paris.call_id, paris.arguments) == ("call_a", '{"city":"Paris"}')
    assert (rome.call_id, rome.arguments) == ("call_b", '{"city":"Rome"}')
    assert final.usage.output_tokens == 9
    assert world.upstream.requests[-1].body["reasoning_effort"] == "low"


async def test_an_answer_cut_by_max_output_tokens_is_incomplete(sdk, world):
    world.upstream.then(raw=chat_answer({"content": "Once upon"}, "length"))
    response = await sdk.responses.create(model=MODEL, input="A story", max_output_tokens=2)
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"


async def test_input_tokens_are_counted_locally_and_cost_nothing(sdk, world):
    bare = await sdk.responses.input_tokens.count(model=MODEL, input="Say hello")
    with_tools = await sdk.responses.input_tokens.count(model=MODEL, input="Say hello", tools=[WEATHER])
    assert 0 < bare.input_tokens < with_tools.input_tokens and bare.object == "response.input_tokens"
    assert world.upstream.requests == [] and await consume_logs() == []


async def test_stored_responses_are_refused_with_the_reason(sdk, world):
    with pytest.raises(openai.BadRequestError) as continued:
        await sdk.responses.create(model=MODEL, input="And then?", previous_response_id="resp_123")
    assert continued.value.body["param"] == "previous_response_id"
    assert "natively" in continued.value.body["message"]
    for call in (sdk.responses.retrieve("resp_123"), sdk.responses.delete("resp_123"),
                 sdk.responses.input_items.list("resp_123"), sdk.responses.cancel("resp_123")):
        with pytest.raises(openai.NotFoundError) as missing:
            await call
        assert "natively" in missing.value.body["message"]
    assert world.upstream.requests == []


async def test_the_stored_routes_want_a_key_first(client):
    response = await client.get("/v1/responses/resp_123")
    assert response.status_code == 401 and "error" in response.json()


async def test_errors_arrive_as_the_sdks_errors(sdk, world):
    world.upstream.then(status=429, error={"error": {"message": "slow down", "type": "requests", "code": None}})
    with pytest.raises(openai.RateLimitError) as limited:
        await sdk.responses.create(model=MODEL, input="Hi")
    assert limited.value.body["message"].startswith("slow down")
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.responses.create(model=MODEL, input=[{"role": "robot", "content": "Hi"}])
    assert refused.value.body["param"] == "input"
    stranger = openai.AsyncOpenAI(base_url="http://testserver/v1", api_key="sk-doesnotexist",
                                  http_client=sdk._client, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await stranger.responses.create(model=MODEL, input="Hi")


async def test_a_stream_cut_off_ends_with_response_failed_and_bills_what_arrived(client, world):
    world.upstream.then(reply=" ".join(["word"] * 50), cut_after=5, usage=False)
    response = await client.post("/v1/responses", headers=world.auth,
                                 json={"model": MODEL, "input": "Hi", "stream": True})
    assert response.status_code == 200
    events = sse_events(response.content)
    assert events[-1]["type"] == "response.failed" and b"[DONE]" not in response.content
    assert events[-1]["response"]["error"]["code"] == "server_error"
    assert "response.completed" not in [e["type"] for e in events]
    [log] = await consume_logs()
    assert 0 < log.completion_tokens < 50 and log.client_protocol == "responses"


@pytest.mark.parametrize("usage", [True, False])
async def test_a_response_is_billed_and_logged_as_the_same_chat_request(client, world, usage):
    world.upstream.default.usage = usage  # without usage, both are counted by the tokenizer
    try:
        made = await client.post("/v1/responses", headers=world.auth, json={
            "model": MODEL, "max_output_tokens": 64, "instructions": "Be brief.", "input": "Say hello"})
        chat = await client.post("/v1/chat/completions", headers=world.auth, json={
            "model": MODEL, "max_tokens": 64, "messages": [{"role": "system", "content": "Be brief."},
                                                           {"role": "user", "content": "Say hello"}]})
    finally:
        world.upstream.default.usage = True
    assert made.status_code == chat.status_code == 200
    by_responses, by_chat = await consume_logs()
    fields = ("model_name", "quota", "prompt_tokens", "completion_tokens", "is_stream", "token_id", "channel_id")
    assert [getattr(by_responses, f) for f in fields] == [getattr(by_chat, f) for f in fields]
    assert (by_responses.client_protocol, by_chat.client_protocol) == ("responses", "openai")
    assert by_responses.quota > 0 and by_responses.request_id == made.headers["x-oneapi-request-id"]
    token = await sync_to_async(Token.objects.get)(pk=world.token.pk)
    assert token.used_quota == 2 * by_chat.quota


# A turn of Codex CLI 0.17x, as it sends it: no instructions (its prompt comes as developer messages), always
# streamed and store false, reasoning items and encrypted content asked back, and tools chat cannot all carry.
CODEX_BODY = {
    "model": MODEL, "instructions": None, "stream": True, "store": False, "parallel_tool_calls": False,
    "include": ["reasoning.encrypted_content"], "prompt_cache_key": "0199a7f2-6c1e-7d21-9b1e-1f0a2c3d4e5f",
    "client_metadata": {"x-codex-turn": "1"}, "tool_choice": "auto",
    "reasoning": {"effort": "medium", "summary": "auto"},
    "input": [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex."}]},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "<environment_context>cwd=/work</environment_context>"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list the files"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [], "content": None, "encrypted_content": None},
        {"type": "function_call", "name": "shell", "call_id": "call_1", "arguments": '{"command":["ls"]}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "a.txt\nb.txt"},
    ],
    "tools": [
        {"type": "function", "name": "shell", "description": "Runs a shell command", "strict": False,
         "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}},
                        "required": ["command"], "additionalProperties": False}},
        {"type": "namespace", "name": "mcp__docs__", "description": "Docs server", "tools": [
            {"type": "function", "name": "search", "description": "Search the docs", "strict": False,
             "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]},
        {"type": "web_search", "external_web_access": False},
    ],
}


async def test_a_codex_turn_is_answered_as_a_stream_that_completes(client, world):
    world.upstream.then(content_type="text/event-stream", raw=chat_stream(
        {"role": "assistant", "content": "Two files."}, finish="stop"))
    response = await client.post("/v1/responses", headers={**world.auth, "originator": "codex_cli_rs",
                                                           "version": "0.170.0"}, json=CODEX_BODY)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/event-stream"
    events = sse_events(response.content)
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "Two files."
    sent = world.upstream.requests[-1].body
    assert sent["messages"][0] == {"role": "system", "content": "You are Codex."}
    assert sent["messages"][3]["tool_calls"][0]["function"]["name"] == "shell"
    assert sent["messages"][4] == {"role": "tool", "tool_call_id": "call_1", "content": "a.txt\nb.txt"}
    assert [tool["function"]["name"] for tool in sent["tools"]] == ["shell", "mcp__docs__search"]
    assert (sent["tool_choice"], sent["parallel_tool_calls"], sent["reasoning_effort"]) == ("auto", False, "medium")
    assert not {"store", "include", "prompt_cache_key", "client_metadata", "input", "reasoning"} & set(sent)
    [log] = await consume_logs()
    assert log.client_protocol == "responses" and log.is_stream


async def test_a_codex_call_of_a_namespace_tool_comes_back_under_its_namespace(client, world):
    world.upstream.then(content_type="text/event-stream", raw=chat_stream(
        {"tool_calls": [{"index": 0, "id": "call_9", "type": "function",
                         "function": {"name": "mcp__docs__search", "arguments": '{"q":"ssl"}'}}]},
        finish="tool_calls"))
    response = await client.post("/v1/responses", headers=world.auth, json=CODEX_BODY)
    done = [e["item"] for e in sse_events(response.content) if e["type"] == "response.output_item.done"]
    assert done == [{"id": done[0]["id"], "type": "function_call", "status": "completed", "arguments": '{"q":"ssl"}',
                     "call_id": "call_9", "namespace": "mcp__docs__", "name": "search"}]


def nested(depth: int) -> list:
    return orjson.loads(b"[" * depth + b"]" * depth)


async def test_a_field_nested_too_deep_to_be_echoed_is_left_out_of_the_response(client, world):
    # orjson reads JSON deeper than it writes: metadata chat never carries cannot be repeated in the Response.
    response = await client.post("/v1/responses", headers=world.auth, content=orjson.dumps(
        {"model": MODEL, "input": "Hi", "metadata": {"x": nested(250)}, "tools": [WEATHER]}).replace(
        b"[[", b"[" * 12, 1).replace(b"]]", b"]" * 12, 1))
    assert response.status_code == 200, response.text
    assert response.json()["output_text"] == REPLY and response.json()["metadata"] == {}


@pytest.fixture
def claude_world(transactional_db, anthropic_server):
    return new_world(anthropic_server, username="bob", type=14, name="claude", key="sk-ant-upstream",
                     models="claude-house", model_mapping={"claude-house": "claude-sonnet-4-5-20250929"},
                     config={"api_version": "2023-06-01"})


async def test_a_claude_channel_answers_through_the_bridge_with_its_tool_calls(claude_world, sdk_http):
    world = claude_world
    sdk = openai.AsyncOpenAI(base_url="http://testserver/v1", api_key=f"sk-{world.token.key}", http_client=sdk_http,
                             max_retries=0)
    world.upstream.then(answer="tool_call")
    whole = await sdk.responses.create(model="claude-house", instructions="Be brief.", input="Weather in SF?",
                                       tools=[WEATHER])
    message, call = whole.output
    assert message.content[0].text == "I'll check the weather." and whole.model == "claude-house"
    assert (call.type, call.call_id, call.name) == ("function_call", "toolu_01A09q90qw90lq917835lq9", "get_weather")
    assert orjson.loads(call.arguments) == {"location": "San Francisco, CA", "unit": "celsius"}
    sent = world.upstream.requests[-1]
    assert sent.path == "/v1/messages" and sent.body["system"] == "Be brief."
    assert sent.body["tools"][0]["input_schema"] == WEATHER["parameters"]

    world.upstream.then(answer="tool_call")
    async with sdk.responses.stream(model="claude-house", input="Weather in SF?", tools=[WEATHER]) as stream:
        final = await stream.get_final_response()
    assert [item.type for item in final.output] == ["message", "function_call"]
    assert orjson.loads(final.output[1].arguments) == {"location": "San Francisco, CA"}

    await sdk.responses.create(model="claude-house", tools=[WEATHER], input=[
        {"role": "user", "content": "Weather in SF?"}, *[item.model_dump(exclude_none=True) for item in whole.output],
        {"type": "function_call_output", "call_id": call.call_id, "output": "Foggy, 14 C"}])
    sent = world.upstream.requests[-1].body["messages"]
    assert sent[1]["content"][-1]["type"] == "tool_use" and sent[1]["content"][-1]["id"] == call.call_id
    assert sent[2]["content"][0] == {"type": "tool_result", "tool_use_id": call.call_id,
                                     "content": [{"type": "text", "text": "Foggy, 14 C"}]}
