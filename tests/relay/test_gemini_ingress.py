"""Gemini's API through the gateway to an OpenAI-protocol channel, with the official google-genai SDK as client.

The channel is the shared OpenAI mock (the `world` fixture); answers it cannot script itself (tool calls,
thinking) are served as raw bodies in OpenAI's shape."""

from __future__ import annotations

import base64
import json

import orjson
import pytest
from asgiref.sync import sync_to_async
from google import genai
from google.genai import errors, types

from accounts.models import Token
from tests.helpers import consume_logs
from tests.providers.mock_gemini import MockGemini
from tests.providers.vendor_harness import serve
from tests.relay.chat_answers import THINKING_THEN_TWO_CALLS, WEATHER_IN_PARIS
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "gpt-4o-mini"
WEATHER = types.FunctionDeclaration(
    name="get_weather", description="Weather for a place",
    parameters=types.Schema(type="OBJECT", properties={"city": types.Schema(type="STRING")}, required=["city"]))


def gemini_client(key: str, sdk_http, api_version: str = "v1beta") -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(
        base_url="http://testserver", api_version=api_version, httpx_async_client=sdk_http,
        retry_options=types.HttpRetryOptions(attempts=1)))


@pytest.fixture
def gemini(world, sdk_http) -> genai.Client:
    """The official SDK with alice's key, sent as x-goog-api-key."""
    return gemini_client(f"sk-{world.token.key}", sdk_http)


async def test_generate_content_is_answered_through_an_openai_channel(gemini, world):
    answer = await gemini.aio.models.generate_content(
        model=MODEL, contents="Say hello",
        config=types.GenerateContentConfig(system_instruction="Be brief.", temperature=0.2, top_p=0.9,
                                           max_output_tokens=64, stop_sequences=["END"]))
    assert answer.text == "Hello from the mock upstream."
    assert answer.candidates[0].finish_reason == types.FinishReason.STOP
    assert answer.candidates[0].content.role == "model" and answer.model_version == MODEL
    usage = answer.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (11, 7, 18)
    sent = world.upstream.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.body == {"model": MODEL, "messages": [{"role": "system", "content": "Be brief."},
                                                      {"role": "user", "content": "Say hello"}],
                         "temperature": 0.2, "top_p": 0.9, "max_tokens": 64, "stop": ["END"]}
    assert sent.headers["Authorization"] == "Bearer sk-upstream-secret"


async def test_a_stream_arrives_as_chunks_ending_with_the_finish_reason_and_usage(gemini, world):
    chunks = [chunk async for chunk in await gemini.aio.models.generate_content_stream(
        model=MODEL, contents="Say hello")]
    assert "".join(chunk.text or "" for chunk in chunks) == "Hello from the mock upstream."
    assert len(chunks) > 2
    last = chunks[-1]
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert (last.usage_metadata.prompt_token_count, last.usage_metadata.candidates_token_count) == (11, 7)
    sent = world.upstream.requests[-1].body
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


async def test_a_function_calling_round_trip(gemini, world):
    world.upstream.then(raw=WEATHER_IN_PARIS)
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])],
        tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode="ANY")),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    asked = types.Content(role="user", parts=[types.Part(text="Weather in Paris?")])
    first = await gemini.aio.models.generate_content(model=MODEL, contents=[asked], config=config)
    [call] = first.function_calls
    assert (call.name, call.args, call.id) == ("get_weather", {"city": "Paris"}, "call_1")
    sent = world.upstream.requests[-1].body
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a place",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    assert sent["tool_choice"] == "required"

    result = types.Part.from_function_response(name="get_weather", response={"output": "Sunny, 21 C"})
    second = await gemini.aio.models.generate_content(model=MODEL, config=config, contents=[
        asked, first.candidates[0].content, types.Content(role="user", parts=[result])])
    assert second.text == "Hello from the mock upstream."
    sent = world.upstream.requests[-1].body["messages"]
    assert sent[1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}
    assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"}


async def test_streamed_thoughts_and_function_calls_reach_the_sdk_as_parts(gemini, world):
    world.upstream.then(content_type="text/event-stream", raw=THINKING_THEN_TWO_CALLS)
    chunks = [chunk async for chunk in await gemini.aio.models.generate_content_stream(
        model=MODEL, contents="Weather?", config=types.GenerateContentConfig(
            tools=[types.Tool(function_declarations=[WEATHER])],
            thinking_config=types.ThinkingConfig(include_thoughts=True)))]
    parts = [part for chunk in chunks for part in chunk.candidates[0].content.parts or ()]
    assert [(p.thought, p.text) for p in parts if p.text] == [(True, "Paris, "), (True, "then Rome.")]
    calls = [part.function_call for part in parts if part.function_call]
    assert [(c.id, c.name, c.args) for c in calls] == [("call_a", "get_weather", {"city": "Paris"}),
                                                      ("call_b", "get_weather", {"city": "Rome"})]
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.total_token_count == 29
    assert "reasoning_effort" not in world.upstream.requests[-1].body  # includeThoughts alone asks for none


async def test_count_tokens_is_answered_locally_and_costs_nothing(gemini, world):
    bare = await gemini.aio.models.count_tokens(model=MODEL, contents="Say hello")
    longer = await gemini.aio.models.count_tokens(model=MODEL, contents="Say hello to everyone in the room, twice")
    assert 0 < bare.total_tokens < longer.total_tokens
    assert world.upstream.requests == [] and await consume_logs() == []


async def test_embeddings_one_and_several(gemini, world, client):
    one = await gemini.aio.models.embed_content(model="text-embedding-3-small", contents="hello")
    several = await gemini.aio.models.embed_content(model="text-embedding-3-small", contents=["a", "b"],
                                                    config=types.EmbedContentConfig(output_dimensionality=3))
    assert [e.values for e in one.embeddings] == [[0.1, -0.2, 0.3]]
    assert [e.values for e in several.embeddings] == [[0.1, -0.2, 0.3]] * 2
    assert world.upstream.requests[-1].body == {"model": "text-embedding-3-small", "input": ["a", "b"],
                                                 "dimensions": 3}
    single = await client.post("/v1beta/models/text-embedding-3-small:embedContent",
                               headers={"x-goog-api-key": f"sk-{world.token.key}"},
                               json={"content": {"parts": [{"text": "hello"}]}, "taskType": "RETRIEVAL_QUERY"})
    assert single.status_code == 200 and single.json() == {"embedding": {"values": [0.1, -0.2, 0.3]}}
    assert world.upstream.requests[-1].body == {"model": "text-embedding-3-small", "input": "hello"}


async def test_models_are_listed_in_geminis_shape(gemini, world, client):
    names = [model.name async for model in await gemini.aio.models.list()]
    assert sorted(names) == ["models/gpt-3.5-turbo", "models/gpt-3.5-turbo-instruct", "models/gpt-4o-mini",
                             "models/text-embedding-3-small"]
    one = await gemini.aio.models.get(model=MODEL)
    assert one.name == f"models/{MODEL}" and "generateContent" in one.supported_actions
    with pytest.raises(errors.ClientError) as missing:
        await gemini.aio.models.get(model="no-such-model")
    assert missing.value.code == 404 and missing.value.status == "NOT_FOUND"
    # Under /v1, Gemini's key asks for Gemini's list; an OpenAI client's Bearer still gets OpenAI's.
    goog = await client.get("/v1/models", headers={"x-goog-api-key": f"sk-{world.token.key}"})
    openai_list = await client.get("/v1/models", headers=world.auth)
    assert "models" in goog.json() and openai_list.json()["object"] == "list"


async def test_the_v1_routes_and_the_key_in_the_query_work_too(world, sdk_http, client):
    v1 = gemini_client(f"sk-{world.token.key}", sdk_http, api_version="v1")
    answer = await v1.aio.models.generate_content(model=MODEL, contents="Say hello")
    assert answer.text == "Hello from the mock upstream."
    by_query = await client.post(f"/v1beta/models/{MODEL}:generateContent?key=sk-{world.token.key}",
                                 json={"contents": [{"parts": [{"text": "Say hello"}]}]})
    bearer = await client.post(f"/v1beta/models/{MODEL}:generateContent", headers=world.auth,
                               json={"contents": [{"parts": [{"text": "Say hello"}]}]})
    assert by_query.status_code == bearer.status_code == 200, by_query.text
    # `?key=` is Gemini's way only: the OpenAI routes do not read it.
    chat = await client.post(f"/v1/chat/completions?key=sk-{world.token.key}",
                             json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    assert chat.status_code == 401


async def test_a_stream_without_alt_sse_is_one_json_array(client, world):
    response = await client.post(f"/v1beta/models/{MODEL}:streamGenerateContent",
                                 headers={"x-goog-api-key": f"sk-{world.token.key}"},
                                 json={"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    chunks = response.json()
    assert "".join(p.get("text", "") for c in chunks for p in c["candidates"][0]["content"]["parts"]) \
        == "Hello from the mock upstream."
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP" and chunks[-1]["usageMetadata"]["totalTokenCount"]


async def test_a_bad_key_is_unauthenticated_in_googles_shape(sdk_http, world, client):
    stranger = gemini_client("sk-doesnotexist", sdk_http)
    with pytest.raises(errors.ClientError) as refused:
        await stranger.aio.models.generate_content(model=MODEL, contents="hi")
    assert (refused.value.code, refused.value.status) == (401, "UNAUTHENTICATED")
    assert "Invalid API key" in refused.value.message
    keyless = await client.post(f"/v1beta/models/{MODEL}:generateContent", json={"contents": "hi"})
    assert keyless.status_code == 401 and keyless.json()["error"]["status"] == "UNAUTHENTICATED"


@pytest.mark.parametrize("body, where", [
    ({}, "contents"),
    ({"contents": [{"role": "robot", "parts": [{"text": "hi"}]}]}, "contents[0].role"),
    ({"contents": "hi", "generationConfig": {"candidateCount": 2}}, "generationConfig.candidateCount"),
    ({"contents": "hi", "generationConfig": {"temperature": "hot"}}, "generationConfig.temperature"),
    ({"contents": [{"parts": [{"functionCall": {"args": {}}}]}]}, "contents[0].parts[0].functionCall.name"),
])
async def test_bad_requests_are_invalid_argument_in_googles_shape(client, world, body, where):
    response = await client.post(f"/v1beta/models/{MODEL}:generateContent",
                                 headers={"x-goog-api-key": f"sk-{world.token.key}"}, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT") and error["message"].startswith(where)
    assert world.upstream.requests == []


@pytest.mark.parametrize("method, path, status", [
    ("POST", f"/v1beta/models/{MODEL}:predict", 404), ("GET", f"/v1beta/models/{MODEL}:generateContent", 405),
    ("POST", "/v1beta/models", 405), ("GET", "/v1beta/cachedContents", 404),
])
async def test_other_requests_on_geminis_routes_are_refused_in_googles_shape(client, world, method, path, status):
    response = await client.request(method, path, headers={"x-goog-api-key": f"sk-{world.token.key}"})
    assert response.status_code == status
    assert response.json()["error"]["code"] == status and response.json()["error"]["status"]


async def test_upstream_and_routing_failures_arrive_as_the_sdks_errors(gemini, world):
    world.upstream.then(status=429, error={"error": {"message": "slow down", "type": "requests", "code": None}})
    with pytest.raises(errors.ClientError) as limited:
        await gemini.aio.models.generate_content(model=MODEL, contents="hi")
    assert (limited.value.code, limited.value.status) == (429, "RESOURCE_EXHAUSTED")
    with pytest.raises(errors.ServerError) as unknown:
        await gemini.aio.models.generate_content(model="no-such-model", contents="hi")
    assert unknown.value.code == 503 and "no-such-model" in unknown.value.message


async def test_a_stream_cut_off_ends_with_an_error_chunk_and_bills_what_arrived(client, world):
    world.upstream.then(reply=" ".join(["word"] * 50), cut_after=5, usage=False)
    response = await client.post(f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
                                 headers={"x-goog-api-key": f"sk-{world.token.key}"},
                                 json={"contents": [{"parts": [{"text": "Say hello"}]}]})
    assert response.status_code == 200
    frames = [orjson.loads(f.removeprefix(b"data: ")) for f in response.content.split(b"\r\n\r\n") if f]
    assert frames[-1]["error"]["status"] in ("INTERNAL", "UNAVAILABLE")
    assert not any(f.get("candidates", [{}])[0].get("finishReason") for f in frames[:-1])
    [log] = await consume_logs()
    assert 0 < log.completion_tokens < 50


@pytest.mark.parametrize("usage", [True, False])
async def test_a_gemini_request_is_billed_and_logged_as_the_same_chat_request(client, world, usage):
    world.upstream.default.usage = usage  # without usage, both are counted by the tokenizer
    try:
        gemini = await client.post(f"/v1beta/models/{MODEL}:generateContent",
                                   headers={"x-goog-api-key": f"sk-{world.token.key}"}, json={
                                       "systemInstruction": {"parts": [{"text": "Be brief."}]},
                                       "contents": [{"role": "user", "parts": [{"text": "Say hello"}]}],
                                       "generationConfig": {"maxOutputTokens": 64}})
        chat = await client.post("/v1/chat/completions", headers=world.auth, json={
            "model": MODEL, "max_tokens": 64,
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]})
    finally:
        world.upstream.default.usage = True
    assert gemini.status_code == chat.status_code == 200, gemini.text
    by_gemini, by_chat = await consume_logs()
    fields = ("model_name", "quota", "prompt_tokens", "completion_tokens", "is_stream", "token_id", "channel_id")
    assert [getattr(by_gemini, f) for f in fields] == [getattr(by_chat, f) for f in fields]
    assert (by_gemini.client_protocol, by_chat.client_protocol) == ("gemini", "openai")
    assert by_gemini.quota > 0 and by_gemini.request_id == gemini.headers["x-oneapi-request-id"]
    assert gemini.json()["responseId"] == by_gemini.request_id
    token = await sync_to_async(Token.objects.get)(pk=world.token.pk)
    assert token.used_quota == 2 * by_chat.quota


# What Gemini CLI 0.6x sends (captured): streamed with alt=sse, x-goog-api-key, a system instruction of role
# "user", function declarations with parametersJsonSchema, thoughts asked for, and its own ids on calls.
GEMINI_CLI_BODY = {
    "contents": [
        {"role": "user", "parts": [{"text": "This is the Gemini CLI. We are setting up the context."}]},
        {"role": "user", "parts": [{"text": "list the files here"}]},
        {"role": "model", "parts": [
            {"text": "Let me look.", "thought": True},
            {"functionCall": {"id": "gemini-cli-call-1", "name": "list_directory", "args": {"path": "."}}}]},
        {"role": "user", "parts": [{"functionResponse": {"id": "gemini-cli-call-1", "name": "list_directory",
                                                         "response": {"output": "a.txt\nb.txt"}}}]},
    ],
    "systemInstruction": {"role": "user", "parts": [{"text": "You are an interactive CLI agent."}]},
    "tools": [{"functionDeclarations": [{
        "name": "list_directory", "description": "Lists a directory",
        "parametersJsonSchema": {"type": "object", "properties": {"path": {"type": "string"}},
                                 "required": ["path"], "additionalProperties": False}}]},
        {"googleSearch": {}}],
    "generationConfig": {"temperature": 0, "topP": 1, "thinkingConfig": {"includeThoughts": True}},
    "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    "session_id": "abc",
}


async def test_a_gemini_cli_request_is_answered(client, world):
    response = await client.post(
        f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse", content=json.dumps(GEMINI_CLI_BODY),
        headers={"x-goog-api-key": f"sk-{world.token.key}", "content-type": "application/json",
                 "user-agent": "GeminiCLI/0.6.1 (linux; x64)", "x-goog-api-client": "google-genai-sdk/1.16.0"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/event-stream"
    frames = [orjson.loads(f.removeprefix(b"data: ")) for f in response.content.split(b"\r\n\r\n") if f]
    assert "".join(p.get("text", "") for f in frames for p in f["candidates"][0]["content"]["parts"]) \
        == "Hello from the mock upstream."
    assert frames[-1]["candidates"][0]["finishReason"] == "STOP"
    sent = world.upstream.requests[-1].body
    assert sent["messages"] == [
        {"role": "system", "content": "You are an interactive CLI agent."},
        {"role": "user", "content": "This is the Gemini CLI. We are setting up the context."},
        {"role": "user", "content": "list the files here"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "gemini-cli-call-1", "type": "function",
                                                               "function": {"name": "list_directory",
                                                                            "arguments": '{"path":"."}'}}]},
        {"role": "tool", "tool_call_id": "gemini-cli-call-1", "content": "a.txt\nb.txt"}]
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "list_directory", "description": "Lists a directory",
        "parameters": GEMINI_CLI_BODY["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"]}}]
    assert not {"reasoning_effort", "safetySettings", "session_id"} & set(sent)
    [log] = await consume_logs()
    assert log.client_protocol == "gemini" and log.is_stream


gemini_server = serve(MockGemini)


@pytest.fixture
def gemini_world(transactional_db, gemini_server):
    return new_world(gemini_server, username="bob", type=24, name="gemini", key="AIza-upstream-secret",
                     models="gemini-2.5-flash")


async def test_a_gemini_channel_answers_through_the_conversion_with_thoughts_usage_and_signatures(gemini_world,
                                                                                               sdk_http):
    # Until Gemini requests pass through to Gemini-protocol channels, they are converted there and back as well.
    world = gemini_world
    client = gemini_client(f"sk-{world.token.key}", sdk_http)
    answer = await client.aio.models.generate_content(model="gemini-2.5-flash", contents="Say hello")
    assert answer.text == "Hello from Gemini."
    usage = answer.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.thoughts_token_count,
            usage.total_token_count) == (9, 5, 12, 26)

    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[WEATHER])],
                                         automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    asked = types.Content(role="user", parts=[types.Part(text="Weather and time in Paris?")])
    world.upstream.then(fixture="tool_call_signed.json")  # a signature as Gemini 3 gives one, in base64
    first = await client.aio.models.generate_content(model="gemini-2.5-flash", contents=[asked], config=config)
    weather, time = first.candidates[0].content.parts
    assert weather.function_call.args == {"city": "Paris", "unit": "celsius"}
    assert weather.thought_signature == base64.b64decode("CiQB0e2Kb3Vzc2lnLW9uZQ==")
    assert time.function_call.name == "get_time" and not time.thought_signature
    results = [types.Part.from_function_response(name=call.name, response={"output": "ok"})
               for call in first.function_calls]
    world.upstream.then(fixture="chat.json")
    await client.aio.models.generate_content(model="gemini-2.5-flash", config=config, contents=[
        asked, first.candidates[0].content, types.Content(role="user", parts=results)])
    sent = world.upstream.requests[-1].body["contents"]
    assert [part.get("thoughtSignature") for part in sent[1]["parts"]] == ["CiQB0e2Kb3Vzc2lnLW9uZQ==", None]
    assert [part["functionResponse"]["name"] for part in sent[2]["parts"]] == ["get_weather", "get_time"]
