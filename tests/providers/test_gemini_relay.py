"""Gemini channels end to end: OpenAI requests through the ASGI app to a mock Gemini API.

What every vendor owes (answers, streams, usage, refusals, embeddings) is in test_vendor_contract.py;
here is what is Gemini's own: its requests, tools, images, its error answers on each endpoint."""

import base64

import aiohttp
import orjson
import pytest
from asgiref.sync import sync_to_async

from providers.adapters.gemini import convert as gemini_convert
from providers.selectors import models_by_channel_type
from tests.helpers import consume_log, events_of
from tests.providers.mock_gemini import PNG, MockGemini
from tests.providers.mock_gemini import fixture as mock_fixture
from tests.providers.vendor_harness import no_consume_log, serve
from tests.world import new_world

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
    return new_world(gemini_server, username="alice", type=24, name="gemini", key=KEY,
                     models=f"{MODEL},gemini-embedding-001,gemini-fast,imagen-4.0-generate-001,"
                            "gemini-2.5-flash-preview-tts",
                     model_mapping={"gemini-fast": "gemini-2.5-flash-lite"})


async def test_a_chat_is_sent_to_generate_content_with_the_system_instruction_apart(relay_client, gemini):
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=gemini.auth)
    assert response.status_code == 200, response.text
    sent = gemini.upstream.requests[-1]
    assert sent.path == f"/v1beta/models/{MODEL}:generateContent" and sent.query == ""
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert sent.body["contents"] == [{"role": "user", "parts": [{"text": "Say hello"}]}]


async def test_mapped_model_is_sent_upstream(relay_client, gemini):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "model": "gemini-fast"},
                                       headers=gemini.auth)
    assert response.status_code == 200, response.text
    assert gemini.upstream.requests[-1].path == "/v1beta/models/gemini-2.5-flash-lite:generateContent"


async def test_a_stream_is_asked_of_stream_generate_content_as_sse(relay_client, gemini):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=gemini.auth)
    assert response.status_code == 200
    sent = gemini.upstream.requests[-1]
    assert sent.path == f"/v1beta/models/{MODEL}:streamGenerateContent" and sent.query == "alt=sse"


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


async def test_inlining_copies_the_body_it_changes(gemini):
    url = f"{gemini.upstream.url}/images/cat.png"
    original = {"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}]}]}
    async with aiohttp.ClientSession() as session:
        prepared = await gemini_convert.inline_remote_images(original, session)
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


async def test_embeddings_are_one_batch_embed_contents(relay_client, gemini):
    body = {"model": "gemini-embedding-001", "input": ["hello world", "second"]}
    response = await relay_client.post("/v1/embeddings", json=body, headers=gemini.auth)
    assert response.status_code == 200, response.text
    sent = gemini.upstream.requests[-1]
    assert sent.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert [r["content"]["parts"][0]["text"] for r in sent.body["requests"]] == ["hello world", "second"]


async def test_the_openai_sdks_base64_embeddings_decode_to_geminis_values(relay_client, gemini):
    # The SDK asks for base64 embeddings unless told otherwise, and decodes them itself.
    embedding = await gemini.sdk(relay_client).embeddings.create(model="gemini-embedding-001", input="hello")
    assert embedding.data[0].embedding == pytest.approx([0.013168523, -0.008711934, -0.046782676, 0.00069968984])


async def test_gemini_channel_types_list_gemini_models(gemini):
    models = await sync_to_async(models_by_channel_type)()
    assert "gemini-2.5-flash" in models[24] and "gemini-2.5-flash" in models[51]
