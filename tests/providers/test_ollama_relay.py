"""Ollama end to end: OpenAI requests through the ASGI app to a mock Ollama, billed from Ollama's counts."""

import base64
import json

import orjson
import pytest

from providers.adapters import ollama
from tests.helpers import consume_log, events_of
from tests.providers.mock_ollama import PNG, REPLY, MockOllama
from tests.providers.vendor_harness import assert_interrupted, no_consume_log, sdk_chat_both_ways, serve, stream_chunks
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"model": "llama3.2", "messages": [{"role": "system", "content": "Be brief."},
                                           {"role": "user", "content": "Hello"}]}
TOOLS = [{"type": "function", "function": {"name": "get_current_weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}}}}]


ollama_server = serve(MockOllama)


@pytest.fixture
def ow(transactional_db, ollama_server):
    return new_world(ollama_server, username="olly", type=30, name="ollama", key="sk-ollama-proxy",
                     models="llama3.2,llava,all-minilm")


async def test_plain_chat_is_converted_and_billed_from_ollamas_counts(relay_client, ow):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 40, "temperature": 0.3},
                                       headers=ow.auth)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": REPLY}
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"] == {"prompt_tokens": 26, "completion_tokens": 10, "total_tokens": 36}
    sent = ow.upstream.requests[-1]
    assert sent.path == "/api/chat" and sent.headers["Authorization"] == "Bearer sk-ollama-proxy"
    assert sent.body["stream"] is False and sent.body["messages"] == CHAT["messages"]
    assert sent.body["options"] == {"temperature": 0.3, "num_predict": 40}
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens, log.model_name) == (26, 10, "llama3.2")


async def test_ndjson_stream_becomes_sse_with_usage_hidden_unless_asked(relay_client, ow):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=ow.auth)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = stream_chunks(response.content)
    assert all(c["choices"] for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == REPLY
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert ow.upstream.requests[-1].body["stream"] is True
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens, log.is_stream) == (26, 10, True)

    response = await relay_client.post("/v1/chat/completions", headers=ow.auth, json={
        **CHAT, "stream": True, "stream_options": {"include_usage": True}})
    last = orjson.loads(events_of(response.content)[-2])
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 10


async def test_tool_calls_both_ways(relay_client, ow):
    ow.upstream.then(tool_call=True).then(tool_call=True)
    body = {**CHAT, "tools": TOOLS}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=ow.auth)
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_current_weather"
    assert json.loads(call["function"]["arguments"]) == {"location": "Paris, FR"}
    assert ow.upstream.requests[-1].body["tools"] == TOOLS

    response = await relay_client.post("/v1/chat/completions", json={**body, "stream": True}, headers=ow.auth)
    chunks = [orjson.loads(e) for e in events_of(response.content)[:-1]]
    calls = [c for ch in chunks for c in ch["choices"][0]["delta"].get("tool_calls", [])]
    assert len(calls) == 1 and calls[0]["index"] == 0 and calls[0]["id"].startswith("call_")
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"

    history = [*CHAT["messages"], {"role": "assistant", "content": None, "tool_calls": [call]},
               {"role": "tool", "tool_call_id": call["id"], "content": "22C"}]
    response = await relay_client.post("/v1/chat/completions", json={**body, "messages": history}, headers=ow.auth)
    assert response.status_code == 200
    sent = ow.upstream.requests[-1].body["messages"]
    assert sent[2]["tool_calls"] == [
        {"function": {"name": "get_current_weather", "arguments": {"location": "Paris, FR"}}}]
    assert sent[3] == {"role": "tool", "content": "22C", "tool_name": "get_current_weather"}


async def test_images_are_inlined_data_urls_and_fetched_http_urls(relay_client, ow):
    content = [{"type": "text", "text": "Compare"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
               {"type": "image_url", "image_url": {"url": ow.upstream.url + "/images/cat.png"}}]
    response = await relay_client.post("/v1/chat/completions", headers=ow.auth,
                                       json={"model": "llava", "messages": [{"role": "user", "content": content}]})
    assert response.status_code == 200, response.text
    sent = ow.upstream.requests[-1].body["messages"][0]
    assert sent["content"] == "Compare"
    assert sent["images"] == ["iVBORw0KGgo=", base64.b64encode(PNG).decode()]


async def test_images_past_the_size_limit_are_refused(relay_client, ow, monkeypatch):
    monkeypatch.setattr(ollama, "MAX_IMAGE_BYTES", 1000)
    ow.upstream.image_bytes = b"\x89PNG" + b"\x00" * 2000  # refused by its Content-Length
    ow.upstream.big_size = 200_000  # refused while downloading: no length given
    for path in ("/images/cat.png", "/images/big.bin"):
        content = [{"type": "image_url", "image_url": {"url": ow.upstream.url + path}}]
        response = await relay_client.post("/v1/chat/completions", headers=ow.auth,
                                           json={"model": "llava", "messages": [{"role": "user", "content": content}]})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "image_too_large"
    content = [{"type": "image_url", "image_url": {"url": ow.upstream.url + "/images/missing.png"}}]
    response = await relay_client.post("/v1/chat/completions", headers=ow.auth,
                                       json={"model": "llava", "messages": [{"role": "user", "content": content}]})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_image_url"
    assert not ow.upstream.requests, "nothing reached Ollama"


async def test_embeddings_go_to_api_embed_and_are_billed(relay_client, ow):
    ow.upstream.then(prompt_tokens=8)
    response = await relay_client.post("/v1/embeddings", json={"model": "all-minilm", "input": ["a", "b"]},
                                       headers=ow.auth)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "list" and [d["index"] for d in answer["data"]] == [0, 1]
    assert answer["usage"] == {"prompt_tokens": 8, "total_tokens": 8}
    sent = ow.upstream.requests[-1]
    assert sent.path == "/api/embed" and sent.body == {"model": "all-minilm", "input": ["a", "b"]}
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (8, 0)


async def test_model_not_found_keeps_ollamas_message_and_costs_nothing(relay_client, ow):
    ow.upstream.then(status=404, error={"error": "model 'llama3.2' not found, try pulling it first"})
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=ow.auth)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["message"].startswith("model 'llama3.2' not found, try pulling it first")
    assert error["code"] == "model_not_found"
    assert "sk-ollama-proxy" not in response.text
    assert await no_consume_log()


async def test_fixture_stream_with_a_garbled_line_goes_on(relay_client, ow):
    ow.upstream.then(fixture="malformed.ndjson")
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=ow.auth)
    chunks = [orjson.loads(e) for e in events_of(response.content)[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hello world"
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (5, 2)


async def test_malformed_line_from_the_mock_does_not_break_the_stream(relay_client, ow):
    ow.upstream.then(malformed=True)
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=ow.auth)
    assert response.content.endswith(b"data: [DONE]\n\n")
    chunks = [orjson.loads(e) for e in events_of(response.content)[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == REPLY
    assert (await consume_log()).completion_tokens == 10


async def test_stream_cut_mid_way_ends_with_an_error_event_and_bills_what_arrived(relay_client, ow):
    ow.upstream.then(reply=" ".join(["word"] * 50), cut_after=5)
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=ow.auth)
    assert_interrupted(response.content)
    log = await consume_log()
    assert 0 < log.completion_tokens < 50


async def test_error_line_mid_stream_reaches_the_client(relay_client, ow):
    ow.upstream.then(fixture="stream_error.ndjson")
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=ow.auth)
    events = events_of(response.content)
    assert events[-1] == b"[DONE]"
    assert orjson.loads(events[-2])["error"]["message"].startswith("an error was encountered while running")


async def test_openai_sdk_plain_and_streamed(relay_client, ow):
    sdk = ow.sdk(relay_client)
    answer, (text, usage, _) = await sdk_chat_both_ways(sdk, "llama3.2", CHAT["messages"])
    assert answer.choices[0].message.content == REPLY
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (26, 10)
    assert text == REPLY and usage.prompt_tokens == 26

    vectors = await sdk.embeddings.create(model="all-minilm", input="hi")
    assert len(vectors.data) == 1 and len(vectors.data[0].embedding) == 3
