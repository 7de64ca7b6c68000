"""Gemini channels end to end: OpenAI requests through the ASGI app to a mock Gemini API."""

import base64

import aiohttp
import orjson
import pytest
from asgiref.sync import sync_to_async

from providers.adapters import adapter_for
from providers.adapters.gemini import convert as gemini_convert
from providers.selectors import models_by_channel_type
from tests.helpers import consume_log, events_of
from tests.providers.mock_gemini import PNG, MockGemini
from tests.providers.mock_gemini import fixture as mock_fixture
from tests.providers.vendor_harness import no_consume_log, sdk_chat_both_ways, serve, stream_chunks, world

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "AIzaSy-upstream-gemini-secret"
MODEL = "gemini-2.5-flash"
CHAT = {"model": MODEL, "messages": [{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": "Say hello"}]}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}}]


gemini_server = serve(MockGemini)


@pytest.fixture
def gemini(transactional_db, gemini_server):
    return world(gemini_server, username="alice", type=24, name="gemini", key=KEY,
                 models=f"{MODEL},gemini-embedding-001,gemini-fast,imagen-4.0-generate-001,"
                        "gemini-2.5-flash-preview-tts",
                 model_mapping={"gemini-fast": "gemini-2.5-flash-lite"})



async def test_plain_chat_is_converted_both_ways_and_billed_with_geminis_usage(relay_client, gemini):
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=gemini.auth)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "Hello from Gemini."}
    assert answer["usage"]["prompt_tokens"] == 9 and answer["usage"]["completion_tokens"] == 17

    sent = gemini.upstream.requests[-1]
    assert sent.path == f"/v1beta/models/{MODEL}:generateContent" and sent.query == ""
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert sent.body["contents"] == [{"role": "user", "parts": [{"text": "Say hello"}]}]

    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens, log.is_stream) == (9, 17, False)


async def test_mapped_model_is_sent_upstream(relay_client, gemini):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "model": "gemini-fast"},
                                       headers=gemini.auth)
    assert response.status_code == 200, response.text
    assert gemini.upstream.requests[-1].path == "/v1beta/models/gemini-2.5-flash-lite:generateContent"


async def test_stream_is_converted_to_openai_chunks_and_usage_hidden_unless_asked(relay_client, gemini):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=gemini.auth)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = stream_chunks(response.content)
    assert all(c["choices"] for c in chunks), "the usage chunk must not reach a client that did not ask"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hello from Gemini."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    sent = gemini.upstream.requests[-1]
    assert sent.path == f"/v1beta/models/{MODEL}:streamGenerateContent" and sent.query == "alt=sse"
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens, log.is_stream) == (9, 17, True)


async def test_stream_carries_the_usage_chunk_when_asked(relay_client, gemini):
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=gemini.auth)
    chunks = [orjson.loads(e) for e in events_of(response.content)[:-1]]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 9, "completion_tokens": 17, "total_tokens": 26,
                                   "completion_tokens_details": {"reasoning_tokens": 12}}


async def test_tool_calls_round_trip(relay_client, gemini):
    body = {"model": MODEL, "tools": TOOLS, "tool_choice": "auto",
            "messages": [{"role": "user", "content": "Weather in Paris?"}]}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=gemini.auth)
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    calls = choice["message"]["tool_calls"]
    assert calls[0]["function"]["name"] == "get_weather"
    sent = gemini.upstream.requests[-1].body
    assert sent["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}

    follow = {**body, "messages": [*body["messages"], choice["message"],
                                   {"role": "tool", "tool_call_id": calls[0]["id"], "content": '{"temp": 21}'},
                                   {"role": "tool", "tool_call_id": calls[1]["id"], "content": "12:00"}]}
    response = await relay_client.post("/v1/chat/completions", json=follow, headers=gemini.auth)
    assert response.status_code == 200, response.text
    contents = gemini.upstream.requests[-1].body["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"][0]["functionCall"] == {"name": "get_weather",
                                                      "args": {"city": "Paris", "unit": "celsius"}}
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
        {"functionResponse": {"name": "get_time", "response": {"output": "12:00"}}}]


async def test_streamed_tool_calls_reach_the_client_as_deltas(relay_client, gemini):
    body = {"model": MODEL, "tools": TOOLS, "stream": True, "messages": [{"role": "user", "content": "Paris?"}]}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=gemini.auth)
    chunks = [orjson.loads(e) for e in events_of(response.content)[:-1]]
    calls = [c for chunk in chunks for c in chunk["choices"][0]["delta"].get("tool_calls", ())]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (61, 23)


async def test_remote_images_are_fetched_and_sent_inline(relay_client, gemini):
    url = f"{gemini.upstream.url}/images/cat.png"
    body = {"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": url}}]}]}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=gemini.auth)
    assert response.status_code == 200, response.text
    parts = gemini.upstream.requests[-1].body["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}}


async def test_prepare_copies_the_body_it_changes(gemini):
    url = f"{gemini.upstream.url}/images/cat.png"
    original = {"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}]}]}
    async with aiohttp.ClientSession() as session:
        prepared = await adapter_for(24).prepare(channel=None, mode="chat", body=original, session=session)
    assert original["messages"][0]["content"][0]["image_url"]["url"] == url  # failover reuses the original
    assert prepared["messages"][0]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")


@pytest.mark.parametrize("name, size, code", [
    ("huge.png", 4096, "image_too_large"),
    ("page.html", 0, "invalid_image_url"),
])
async def test_unusable_remote_images_are_refused_clearly(relay_client, gemini, monkeypatch, name, size, code):
    monkeypatch.setattr(gemini_convert, "IMAGE_LIMIT", 1024)
    gemini.upstream.image_size = size
    body = {"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"{gemini.upstream.url}/images/{name}"}}]}]}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=gemini.auth)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert not gemini.upstream.requests, "nothing reaches Gemini"


@pytest.mark.parametrize("status, fixture, code", [
    (400, "error_400.json", "invalid_argument"),
    (400, "error_imagen_billing.json", "invalid_argument"),
    (400, "error_api_key.json", "invalid_api_key"),
    (429, "error_429.json", "resource_exhausted"),
])
@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", CHAT),
    ("/v1/images/generations", {"model": "imagen-4.0-generate-001", "prompt": "a cat"}),  # Imagen's predict
    ("/v1/audio/speech", {"model": "gemini-2.5-flash-preview-tts", "input": "Hi", "voice": "alloy"}),
])
async def test_gemini_errors_reach_the_client_with_their_message_and_are_not_billed(relay_client, gemini, path, body,
                                                                                    status, fixture, code):
    gemini.upstream.then(status=status, error=fixture)
    response = await relay_client.post(path, json=body, headers=gemini.auth)
    assert response.status_code == status
    error = response.json()["error"]
    message = orjson.loads(mock_fixture(fixture))["error"]["message"]
    assert error["message"].startswith(message) and error["code"] == code
    assert KEY not in response.text
    assert await no_consume_log()


async def test_a_blocked_prompt_is_an_openai_error(relay_client, gemini):
    gemini.upstream.then(fixture="blocked.json")
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=gemini.auth)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "content_filter"


async def test_stream_cut_off_mid_way_ends_with_an_error_event_and_bills_what_arrived(relay_client, gemini):
    gemini.upstream.then(cut_after=1)
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=gemini.auth)
    events = events_of(response.content)
    assert events[-1] == b"[DONE]"
    assert orjson.loads(events[0])["choices"][0]["delta"]["content"] == "Hello"
    assert orjson.loads(events[-2])["error"]["code"] == "stream_interrupted"
    log = await consume_log()
    assert log.completion_tokens == 1 and log.prompt_tokens > 0  # counted locally: Gemini's bill never came


async def test_malformed_stream_event_does_not_break_the_stream(relay_client, gemini):
    gemini.upstream.then(fixture="malformed_stream.sse")
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=gemini.auth)
    chunks = [orjson.loads(e) for e in events_of(response.content)[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hello Gemini."
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (9, 5)


async def test_embeddings_are_converted_and_counted_locally(relay_client, gemini):
    body = {"model": "gemini-embedding-001", "input": ["hello world", "second"]}
    response = await relay_client.post("/v1/embeddings", json=body, headers=gemini.auth)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert [d["index"] for d in answer["data"]] == [0, 1] and len(answer["data"][0]["embedding"]) == 4
    sent = gemini.upstream.requests[-1]
    assert sent.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert [r["content"]["parts"][0]["text"] for r in sent.body["requests"]] == ["hello world", "second"]
    log = await consume_log()
    assert log.prompt_tokens == answer["usage"]["prompt_tokens"] > 0 and log.completion_tokens == 0


async def test_the_openai_sdk_chats_streams_and_embeds_with_gemini(relay_client, gemini):
    sdk = gemini.sdk(relay_client)
    answer, (text, usage, _) = await sdk_chat_both_ways(sdk, MODEL, [{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content == "Hello from Gemini."
    assert answer.usage.completion_tokens == 17
    assert text == "Hello from Gemini." and usage.prompt_tokens == 9

    # The SDK asks for base64 embeddings unless told otherwise, and decodes them itself.
    embedding = await sdk.embeddings.create(model="gemini-embedding-001", input="hello")
    assert embedding.data[0].embedding == pytest.approx([0.013168523, -0.008711934, -0.046782676, 0.00069968984])


async def test_gemini_channel_types_list_gemini_models(gemini):
    models = await sync_to_async(models_by_channel_type)()
    assert "gemini-2.5-flash" in models[24] and "gemini-2.5-flash" in models[51]
