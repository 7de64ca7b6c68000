"""Ollama end to end: OpenAI requests through the ASGI app to a mock Ollama.

What every vendor owes (answers, streams, usage, refusals, embeddings) is in test_vendor_contract.py;
here is what is Ollama's own: its requests, tools and images."""

import base64
import json

import orjson
import pytest

from providers.adapters import ollama
from tests.helpers import events_of
from tests.providers.mock_ollama import PNG, MockOllama
from tests.providers.vendor_harness import serve
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


async def test_a_chat_is_sent_to_api_chat_with_openais_options_as_ollamas(relay_client, ow):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 40, "temperature": 0.3},
                                       headers=ow.auth)
    assert response.status_code == 200, response.text
    sent = ow.upstream.requests[-1]
    assert sent.path == "/api/chat" and sent.headers["Authorization"] == "Bearer sk-ollama-proxy"
    assert sent.body["stream"] is False and sent.body["messages"] == CHAT["messages"]
    assert sent.body["options"] == {"temperature": 0.3, "num_predict": 40}


async def test_a_stream_is_asked_for_in_the_body(relay_client, ow):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=ow.auth)
    assert response.status_code == 200
    assert ow.upstream.requests[-1].body["stream"] is True


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


async def test_embeddings_go_to_api_embed(relay_client, ow):
    response = await relay_client.post("/v1/embeddings", json={"model": "all-minilm", "input": ["a", "b"]},
                                       headers=ow.auth)
    assert response.status_code == 200, response.text
    sent = ow.upstream.requests[-1]
    assert sent.path == "/api/embed" and sent.body == {"model": "all-minilm", "input": ["a", "b"]}
