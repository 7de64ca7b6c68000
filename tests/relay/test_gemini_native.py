"""Gemini's API passed through to channels that speak it (Gemini, type 24; Vertex AI's Gemini, type 42), with the
official google-genai SDK as client: the client's body goes as it is (the model, in the path, mapped), the answer
and the stream come back as Google sent them, and the bill is read from Google's usageMetadata. Failover between
such a channel and an OpenAI-protocol one (converted) goes both ways."""

from __future__ import annotations

import base64
import json

import orjson
import pytest
from asgiref.sync import sync_to_async
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google import genai
from google.genai import errors, types

from accounts.models import Token
from billing.services import option_set
from providers.adapters import vertex
from tests.factories import ChannelFactory
from tests.helpers import consume_logs
from tests.mock_upstream import REPLY
from tests.providers.mock_gemini import COUNT, MockGemini, fixture
from tests.providers.mock_vertex import MockVertex
from tests.providers.vendor_harness import serve
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "gemini-house"  # what clients ask for; the channel maps it
UPSTREAM_MODEL = "gemini-3-pro-preview"
EMBEDDER = "embedder-house"
UPSTREAM_EMBEDDER = "gemini-embedding-001"
PATH = f"/v1beta/models/{UPSTREAM_MODEL}"
# What a Gemini client sends that a conversion to chat would change or lose: thinking asked back, a cached
# content, Google's own search tool, safety settings, a function call with its id and signature.
GEMINI_BODY = {
    "contents": [
        {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
        {"role": "model", "parts": [{"functionCall": {"id": "fc-1", "name": "get_weather", "args": {"city": "Paris"}},
                                     "thoughtSignature": "CvsBc2lnbmF0dXJlLW9uZQ=="}]},
        {"role": "user", "parts": [{"functionResponse": {"id": "fc-1", "name": "get_weather",
                                                         "response": {"output": "Sunny"}}}]},
    ],
    "systemInstruction": {"role": "user", "parts": [{"text": "You are terse."}]},
    "tools": [{"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema": {
        "type": "object", "properties": {"city": {"type": "string"}}, "additionalProperties": False}}]},
        {"googleSearch": {}}],
    "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}],
    "generationConfig": {"temperature": 1, "thinkingConfig": {"includeThoughts": True, "thinkingLevel": "high"}},
    "cachedContent": "cachedContents/abc123",
}
WEATHER = types.FunctionDeclaration(
    name="get_weather", description="Weather for a place",
    parameters=types.Schema(type="OBJECT", properties={"city": types.Schema(type="STRING")}, required=["city"]))
# thinking_tools.json and its stream: 1200 prompt tokens of which 1000 read from the cache, 40 answered and 160
# thought (output).
PROMPT_TOKENS, CACHED_TOKENS, COMPLETION_TOKENS, THOUGHTS = 1200, 1000, 200, 160

gemini_server = serve(MockGemini)

PRIVATE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = PRIVATE_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
vertex_server = serve(lambda: MockVertex().trust(PRIVATE_KEY.public_key()))
VERTEX_PATH = f"/v1/projects/demo-project/locations/us-central1/publishers/google/models/{UPSTREAM_MODEL}"


@pytest.fixture
def gemini_world(transactional_db, gemini_server):
    return new_world(gemini_server, username="bob", type=24, name="gemini", key="AIza-upstream-key",
                     models=f"{MODEL},{EMBEDDER}",
                     model_mapping={MODEL: UPSTREAM_MODEL, EMBEDDER: UPSTREAM_EMBEDDER})


@pytest.fixture
def vertex_world(transactional_db, vertex_server):
    vertex._tokens.clear()
    adc = {"type": "service_account", "project_id": "demo-project", "private_key_id": "kid-1",
           "private_key": PEM, "client_email": "relay@demo-project.iam.gserviceaccount.com",
           "token_uri": vertex_server.token_uri}
    yield new_world(vertex_server, username="carol", type=42, name="vertex", key="unused",
                    models=f"{MODEL},{EMBEDDER}", model_mapping={MODEL: UPSTREAM_MODEL, EMBEDDER: "text-embedding-005"},
                    config={"region": "us-central1", "vertex_ai_adc": json.dumps(adc)})
    vertex._tokens.clear()


def sdk(world, sdk_http) -> genai.Client:
    return genai.Client(api_key=f"sk-{world.token.key}", http_options=types.HttpOptions(
        base_url="http://testserver", api_version="v1beta", httpx_async_client=sdk_http,
        retry_options=types.HttpRetryOptions(attempts=1)))


@pytest.fixture
def gemini(gemini_world, sdk_http) -> genai.Client:
    return sdk(gemini_world, sdk_http)


def auth(world) -> dict:
    return {"x-goog-api-key": f"sk-{world.token.key}"}


def sse_data(raw: bytes) -> list[bytes]:
    return [event.removeprefix(b"data: ") for event in raw.split(b"\r\n\r\n") if event.strip()]


async def token_used(world) -> int:
    return (await sync_to_async(Token.objects.get)(pk=world.token.pk)).used_quota


async def billed(world, *, stream: bool, channel=None) -> None:
    [log] = await consume_logs()
    assert (log.prompt_tokens, log.completion_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert (log.cached_tokens, log.reasoning_tokens) == (CACHED_TOKENS, THOUGHTS)
    assert (log.client_protocol, log.is_stream, log.channel_id) == ("gemini", stream, (channel or world.channel).pk)
    assert log.quota > 0 and await token_used(world) == log.quota


# --- Gemini channels ----------------------------------------------------------------------------------


async def test_generate_content_goes_to_gemini_as_sent_and_comes_back_as_gemini_sent_it(client, gemini_world):
    gemini_world.upstream.then(fixture="thinking_tools.json")
    response = await client.post(f"/v1beta/models/{MODEL}:generateContent", headers=auth(gemini_world),
                                 content=orjson.dumps(GEMINI_BODY))
    assert response.status_code == 200, response.text
    assert response.content == fixture("thinking_tools.json")
    [sent] = gemini_world.upstream.requests
    assert (sent.path, sent.query) == (f"{PATH}:generateContent", "")
    assert sent.raw == orjson.dumps(GEMINI_BODY)  # member for member, signatures and ids included
    assert sent.headers["x-goog-api-key"] == "AIza-upstream-key" and gemini_world.token.key not in str(sent)
    await billed(gemini_world, stream=False)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_passed_through_request_pays_what_the_converted_one_pays(client, gemini_world, stream):
    for key, ratio in (("ModelRatio", 0.15), ("CompletionRatio", 8), ("CacheRatio", 0.1)):
        # Known ratios, under both names, whichever the price is looked up by.
        await sync_to_async(option_set)(key=key, value={MODEL: ratio, UPSTREAM_MODEL: ratio})
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    gemini_world.upstream.then(fixture="thinking_tools_stream.sse" if stream else "thinking_tools.json")
    response = await client.post(f"/v1beta/models/{MODEL}:{method}", headers=auth(gemini_world), json=GEMINI_BODY)
    assert response.status_code == 200
    # The same usage through the conversion (chat_cached's counts are thinking_tools' own).
    gemini_world.upstream.then(fixture="chat_cached_stream.sse" if stream else "chat_cached.json")
    response = await client.post("/v1/chat/completions", headers=gemini_world.auth, json={
        "model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": stream})
    assert response.status_code == 200
    native, converted = await consume_logs()
    assert (native.client_protocol, converted.client_protocol) == ("gemini", "openai")
    # (200 new + 1000 cached x 0.1 + 200 output x 8) x 0.15
    assert native.quota == converted.quota == 285


async def test_the_key_may_come_in_the_query_and_the_path_under_v1(client, gemini_world):
    response = await client.post(f"/v1/models/{MODEL}:generateContent?key=sk-{gemini_world.token.key}",
                                 json={"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]})
    assert response.status_code == 200, response.text
    assert response.content == fixture("chat.json")
    assert "key=" not in gemini_world.upstream.requests[-1].query


async def test_an_sse_stream_arrives_byte_for_byte_and_is_billed_by_its_last_usage(client, gemini_world):
    gemini_world.upstream.then(fixture="thinking_tools_stream.sse")
    response = await client.post(f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
                                 headers=auth(gemini_world), content=orjson.dumps(GEMINI_BODY))
    assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
    assert response.content == fixture("thinking_tools_stream.sse")
    [sent] = gemini_world.upstream.requests
    assert (sent.path, sent.query, sent.raw) == (f"{PATH}:streamGenerateContent", "alt=sse", orjson.dumps(GEMINI_BODY))
    await billed(gemini_world, stream=True)


async def test_a_stream_not_asked_as_sse_arrives_as_one_json_array_of_googles_chunks(client, gemini_world):
    gemini_world.upstream.then(fixture="thinking_tools_stream.sse")
    response = await client.post(f"/v1beta/models/{MODEL}:streamGenerateContent", headers=auth(gemini_world),
                                 content=orjson.dumps(GEMINI_BODY))
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    chunks = sse_data(fixture("thinking_tools_stream.sse"))
    assert response.content == b"[" + b",\r\n".join(chunks) + b"]"
    assert json.loads(response.content) == [json.loads(chunk) for chunk in chunks]
    assert gemini_world.upstream.requests[-1].query == "alt=sse"  # asked as SSE, written as the client asked
    await billed(gemini_world, stream=True)


async def test_the_sdk_gets_thoughts_function_call_ids_signatures_and_grounding(gemini, gemini_world):
    gemini_world.upstream.then(fixture="thinking_tools.json").then(fixture="chat.json")
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])],
        thinking_config=types.ThinkingConfig(include_thoughts=True),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    asked = types.Content(role="user", parts=[types.Part(text="Weather in Paris?")])
    first = await gemini.aio.models.generate_content(model=MODEL, contents=[asked], config=config)
    thought, call = first.candidates[0].content.parts
    assert thought.thought and thought.text.startswith("The user wants the weather")
    assert (call.function_call.id, call.function_call.name, call.function_call.args) == (
        "fc-7f3a", "get_weather", {"city": "Paris"})
    assert call.thought_signature == base64.b64decode("CvsBc2lnbmF0dXJlLW9uZQ==")
    assert first.candidates[0].grounding_metadata.web_search_queries == ["weather Paris"]
    usage = first.usage_metadata
    assert (usage.cached_content_token_count, usage.thoughts_token_count) == (CACHED_TOKENS, THOUGHTS)
    assert first.model_version == UPSTREAM_MODEL  # Google's answer, untouched

    result = types.Part(function_response=types.FunctionResponse(id="fc-7f3a", name="get_weather",
                                                                 response={"output": "Sunny"}))
    await gemini.aio.models.generate_content(model=MODEL, config=config, contents=[
        asked, first.candidates[0].content, types.Content(role="user", parts=[result])])
    turns = gemini_world.upstream.requests[-1].body["contents"]
    assert turns[1]["parts"][1] == {"functionCall": {"id": "fc-7f3a", "name": "get_weather", "args": {"city": "Paris"}},
                                    "thoughtSignature": "CvsBc2lnbmF0dXJlLW9uZQ=="}
    assert turns[1]["parts"][0]["thought"] is True
    assert turns[2]["parts"][0]["functionResponse"] == {"id": "fc-7f3a", "name": "get_weather",
                                                        "response": {"output": "Sunny"}}


async def test_the_sdk_streams_thoughts_and_a_signed_function_call(gemini, gemini_world):
    gemini_world.upstream.then(fixture="thinking_tools_stream.sse")
    chunks = [chunk async for chunk in await gemini.aio.models.generate_content_stream(
        model=MODEL, contents="Weather in Paris?",
        config=types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True)))]
    parts = [part for chunk in chunks for part in chunk.candidates[0].content.parts or ()]
    assert parts[0].thought and parts[0].text == "Weather first."
    assert parts[1].function_call.id == "fc-7f3a"
    assert parts[1].thought_signature == base64.b64decode("CvsBc2lnbmF0dXJlLXN0cmVhbQ==")
    assert chunks[-1].usage_metadata.thoughts_token_count == THOUGHTS


async def test_count_tokens_is_asked_of_gemini_and_costs_nothing(gemini, gemini_world):
    counted = await gemini.aio.models.count_tokens(model=MODEL, contents="Say hello")
    assert counted.total_tokens == COUNT["totalTokens"]
    [sent] = gemini_world.upstream.requests
    assert sent.path == f"{PATH}:countTokens" and sent.headers["x-goog-api-key"] == "AIza-upstream-key"
    assert sent.body == {"contents": [{"parts": [{"text": "Say hello"}], "role": "user"}]}
    assert await consume_logs() == [] and await token_used(gemini_world) == 0


async def test_count_tokens_is_counted_locally_when_gemini_is_out_of_service(gemini, gemini_world):
    gemini_world.upstream.then(status=503, error="error_503.json")
    counted = await gemini.aio.models.count_tokens(model=MODEL, contents="Say hello")
    assert 0 < counted.total_tokens < 20 and len(gemini_world.upstream.requests) == 1


async def test_embeddings_go_to_gemini_with_the_mapped_model_and_bill_the_input(gemini, gemini_world, client):
    answer = await gemini.aio.models.embed_content(model=EMBEDDER, contents=["one text", "another"])
    assert [e.values for e in answer.embeddings] == [e["values"] for e in json.loads(fixture("embeddings.json"))[
        "embeddings"]]
    sent = gemini_world.upstream.requests[-1]
    assert sent.path == f"/v1beta/models/{UPSTREAM_EMBEDDER}:batchEmbedContents"
    assert [r["model"] for r in sent.body["requests"]] == [f"models/{UPSTREAM_EMBEDDER}"] * 2
    assert [r["content"] for r in sent.body["requests"]] == [{"parts": [{"text": "one text"}], "role": "user"},
                                                             {"parts": [{"text": "another"}], "role": "user"}]
    one = {"content": {"parts": [{"text": "one text"}]}, "taskType": "RETRIEVAL_QUERY"}
    response = await client.post(f"/v1beta/models/{EMBEDDER}:embedContent", headers=auth(gemini_world), json=one)
    assert response.status_code == 200 and response.json() == {
        "embedding": json.loads(fixture("embeddings.json"))["embeddings"][0]}
    sent = gemini_world.upstream.requests[-1]
    assert sent.path == f"/v1beta/models/{UPSTREAM_EMBEDDER}:embedContent" and sent.body == one
    logs = await consume_logs()
    assert [log.client_protocol for log in logs] == ["gemini", "gemini"]
    assert all(log.prompt_tokens > 0 and log.completion_tokens == 0 for log in logs)


async def test_the_channels_system_prompt_replaces_the_clients_instruction(client, transactional_db, gemini_server):
    world = await sync_to_async(new_world)(gemini_server, username="dave", type=24, key="AIza-upstream-key",
                                           models=MODEL, system_prompt="Answer in French.")
    response = await client.post(f"/v1beta/models/{MODEL}:generateContent", headers=auth(world), json=GEMINI_BODY)
    assert response.status_code == 200
    sent = world.upstream.requests[-1].body
    assert sent["systemInstruction"] == {"parts": [{"text": "Answer in French."}]}
    assert sent["contents"] == GEMINI_BODY["contents"] and sent["tools"] == GEMINI_BODY["tools"]


@pytest.mark.parametrize("status, error, name", [(429, "error_429.json", "RESOURCE_EXHAUSTED"),
                                                 (400, "error_400.json", "INVALID_ARGUMENT")])
async def test_geminis_refusal_reaches_the_sdk_in_googles_shape(gemini, gemini_world, status, error, name):
    gemini_world.upstream.then(status=status, error=error)
    with pytest.raises(errors.ClientError) as refused:
        await gemini.aio.models.generate_content(model=MODEL, contents="Say hello")
    assert (refused.value.code, refused.value.status) == (status, name)
    assert refused.value.message.startswith(json.loads(fixture(error))["error"]["message"])
    assert "AIza-upstream-key" not in str(refused.value.details)
    assert await consume_logs() == []


async def test_a_request_chat_cannot_carry_goes_to_gemini_as_it_is(client, gemini_world):
    body = {"contents": [{"role": "user", "parts": [{"text": "Two ideas"}]}],
            "generationConfig": {"candidateCount": 2}}
    response = await client.post(f"/v1beta/models/{MODEL}:generateContent", headers=auth(gemini_world), json=body)
    assert response.status_code == 200, response.text
    assert gemini_world.upstream.requests[-1].body == body


async def test_a_request_chat_cannot_carry_is_the_clients_400_when_no_channel_speaks_gemini(client, world):
    body = {"contents": [{"role": "user", "parts": [{"text": "Two ideas"}]}],
            "generationConfig": {"candidateCount": 2}}
    response = await client.post("/v1beta/models/gpt-4o-mini:generateContent", headers=auth(world), json=body)
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT" and "candidateCount" in response.text
    assert world.upstream.requests == []


async def test_a_stream_broken_off_ends_with_googles_error_and_bills_what_came(client, gemini_world):
    gemini_world.upstream.then(fixture="thinking_tools_stream.sse", cut_after=1)
    response = await client.post(f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
                                 headers=auth(gemini_world), json=GEMINI_BODY)
    assert response.status_code == 200
    first, last = sse_data(response.content)
    assert first == sse_data(fixture("thinking_tools_stream.sse"))[0]
    assert json.loads(last)["error"]["status"] == "INTERNAL"
    [log] = await consume_logs()
    assert log.prompt_tokens == PROMPT_TOKENS and log.channel_id == gemini_world.channel.pk


async def test_a_json_array_stream_broken_off_ends_with_googles_error_as_its_last_element(client, gemini_world):
    gemini_world.upstream.then(fixture="thinking_tools_stream.sse", cut_after=2)
    response = await client.post(f"/v1beta/models/{MODEL}:streamGenerateContent", headers=auth(gemini_world),
                                 json=GEMINI_BODY)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    *chunks, error = json.loads(response.content)  # still one well-formed array
    assert chunks == [json.loads(c) for c in sse_data(fixture("thinking_tools_stream.sse"))[:2]]
    assert error["error"]["code"] == 502 and "(request id:" in error["error"]["message"]


# --- failover between a channel that speaks Gemini and one that does not ----------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_a_failing_gemini_channel_fails_over_to_an_openai_channel_through_the_conversion(
        gemini, gemini_world, upstream, retries, stream):
    converted = await sync_to_async(ChannelFactory)(name="openai", base_url=upstream.url, models=MODEL, priority=-1)
    gemini_world.upstream.then(status=429, error="error_429.json")
    if stream:
        chunks = [c async for c in await gemini.aio.models.generate_content_stream(model=MODEL, contents="Hi")]
        text = "".join(chunk.text or "" for chunk in chunks)
    else:
        text = (await gemini.aio.models.generate_content(model=MODEL, contents="Hi")).text
    assert text == REPLY and len(gemini_world.upstream.requests) == 1
    assert upstream.requests[-1].path == "/v1/chat/completions" and upstream.requests[-1].body["model"] == MODEL
    [log] = await consume_logs()
    assert (log.channel_id, log.prompt_tokens, log.completion_tokens) == (converted.pk, 11, 7)


async def test_a_failing_openai_channel_fails_over_to_gemini_passed_through(gemini, gemini_world, upstream, retries):
    first = await sync_to_async(ChannelFactory)(name="openai", base_url=upstream.url, models=MODEL, priority=1)
    upstream.then(status=500, error={"error": {"message": "boom", "type": "server_error", "code": None}})
    gemini_world.upstream.then(fixture="thinking_tools_stream.sse")
    chunks = [c async for c in await gemini.aio.models.generate_content_stream(model=MODEL, contents="Hi")]
    assert chunks[0].model_version == UPSTREAM_MODEL and chunks[1].candidates[0].content.parts[0].function_call
    assert upstream.requests[-1].body["model"] == MODEL
    [log] = await consume_logs()
    assert log.channel_id == gemini_world.channel.pk != first.pk
    assert (log.prompt_tokens, log.completion_tokens, log.cached_tokens) == (
        PROMPT_TOKENS, COMPLETION_TOKENS, CACHED_TOKENS)


# --- Vertex AI channels ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_vertex_gets_the_clients_body_with_its_access_token(client, vertex_world, stream):
    vertex_world.upstream.then(fixture="gemini/thinking_tools_stream.sse" if stream else "gemini/thinking_tools.json")
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    response = await client.post(f"/v1beta/models/{MODEL}:{method}", headers=auth(vertex_world),
                                 content=orjson.dumps(GEMINI_BODY))
    assert response.status_code == 200, response.text
    assert response.content == fixture("thinking_tools_stream.sse" if stream else "thinking_tools.json")
    [sent] = vertex_world.upstream.requests
    assert f"{sent.path}?{sent.query}".rstrip("?") == f"{VERTEX_PATH}:{method}"
    assert sent.raw == orjson.dumps(GEMINI_BODY) and sent.headers["Authorization"] == "Bearer ya29.mock-1"
    await billed(vertex_world, stream=stream)


async def test_vertex_counts_tokens_and_embeds_through_its_own_predict(vertex_world, sdk_http):
    client = sdk(vertex_world, sdk_http)
    counted = await client.aio.models.count_tokens(model=MODEL, contents="Say hello")
    assert counted.total_tokens == COUNT["totalTokens"]
    assert vertex_world.upstream.requests[-1].path == f"{VERTEX_PATH}:countTokens"
    answer = await client.aio.models.embed_content(model=EMBEDDER, contents=["one text", "another"])
    assert [e.values for e in answer.embeddings] == [[0.1, 0.2], [0.2, 0.2]]
    assert vertex_world.upstream.requests[-1].path.endswith("/models/text-embedding-005:predict")
    [log] = await consume_logs()
    assert (log.client_protocol, log.prompt_tokens) == ("gemini", 3 + 4)


async def test_vertexs_refusal_reaches_the_sdk_in_googles_shape(vertex_world, sdk_http):
    vertex_world.upstream.then(status=429, error="vertex/error_quota.json")
    with pytest.raises(errors.ClientError) as refused:
        await sdk(vertex_world, sdk_http).aio.models.generate_content(model=MODEL, contents="Say hello")
    assert (refused.value.code, refused.value.status) == (429, "RESOURCE_EXHAUSTED")
