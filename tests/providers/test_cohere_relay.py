"""Cohere end to end: OpenAI requests through the ASGI app to a mock Cohere v2.

What every vendor owes (answers, streams, usage, refusals, embeddings) is in test_vendor_contract.py;
here is what is Cohere's own: the v2 requests, tools, images and rerank."""

import base64
import json

import orjson
import pytest

from providers.adapters import cohere
from tests.helpers import consume_log, events_of
from tests.providers.mock_cohere import PNG, MockCohere
from tests.providers.vendor_harness import serve
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "co-test-secret-key"
CHAT = {"model": "command-a-03-2025", "messages": [{"role": "system", "content": "Be brief."},
                                                    {"role": "user", "content": "Hello"}]}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}}}}]


cohere_server = serve(MockCohere)


@pytest.fixture
def cw(transactional_db, cohere_server):
    return new_world(cohere_server, username="cohere-user", token_name="cohere-key", type=35, name="cohere", key=KEY,
                     models="command-a-03-2025,command-a-vision-07-2025,embed-v4.0,rerank-v3.5")


async def test_a_chat_is_sent_to_v2_chat_with_a_bearer_key(relay_client, cw):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 40}, headers=cw.auth)
    assert response.status_code == 200, response.text
    sent = cw.upstream.requests[-1]
    assert sent.path == "/v2/chat" and sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.body == {"model": "command-a-03-2025", "messages": CHAT["messages"], "stream": False,
                         "max_tokens": 40}


async def test_a_stream_is_asked_for_in_the_body(relay_client, cw):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=cw.auth)
    assert response.status_code == 200
    assert cw.upstream.requests[-1].body["stream"] is True


async def test_tool_calls_both_ways(relay_client, cw):
    cw.upstream.then(tool_call=True).then(tool_call=True)
    body = {**CHAT, "tools": TOOLS, "tool_choice": "required"}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=cw.auth)
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call == {"id": "get_weather_mock1", "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}}
    sent = cw.upstream.requests[-1].body
    assert sent["tools"] == TOOLS and sent["tool_choice"] == "REQUIRED"

    response = await relay_client.post("/v1/chat/completions", json={**body, "stream": True}, headers=cw.auth)
    chunks = [orjson.loads(e) for e in events_of(response.content)[:-1]]
    calls = [c for ch in chunks for c in ch["choices"][0]["delta"].get("tool_calls", [])]
    assert calls[0]["id"] == "get_weather_mock1" and {c["index"] for c in calls} == {0}
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"location": "Paris"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"

    history = [*CHAT["messages"], {"role": "assistant", "content": None, "tool_calls": [call]},
               {"role": "tool", "tool_call_id": call["id"], "content": "22C"}]
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "tools": TOOLS, "messages": history},
                                       headers=cw.auth)
    assert response.status_code == 200
    sent = cw.upstream.requests[-1].body["messages"]
    assert sent[2] == {"role": "assistant", "tool_calls": [call]}
    assert sent[3] == {"role": "tool", "tool_call_id": "get_weather_mock1", "content": "22C"}


async def test_http_images_are_fetched_and_inlined(relay_client, cw):
    content = [{"type": "text", "text": "Compare"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
               {"type": "image_url", "image_url": {"url": cw.upstream.url + "/images/cat.png"}}]
    body = {"model": "command-a-vision-07-2025", "messages": [{"role": "user", "content": content}]}
    response = await relay_client.post("/v1/chat/completions", headers=cw.auth, json=body)
    assert response.status_code == 200, response.text
    sent = cw.upstream.requests[-1].body["messages"][0]["content"]
    fetched = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert sent == [{"type": "text", "text": "Compare"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {"type": "image_url", "image_url": {"url": fetched}}]


async def test_images_past_the_size_limit_or_missing_are_refused(relay_client, cw, monkeypatch):
    monkeypatch.setattr(cohere, "MAX_IMAGE_BYTES", 1000)
    cw.upstream.image_bytes = b"\x89PNG" + b"\x00" * 2000
    for path, code in (("/images/cat.png", "image_too_large"), ("/images/missing.png", "invalid_image_url")):
        content = [{"type": "image_url", "image_url": {"url": cw.upstream.url + path}}]
        response = await relay_client.post("/v1/chat/completions", headers=cw.auth, json={
            "model": "command-a-vision-07-2025", "messages": [{"role": "user", "content": content}]})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == code
    assert not cw.upstream.requests, "nothing reached Cohere"


async def test_embeddings_go_to_v2_embed_as_search_documents(relay_client, cw):
    response = await relay_client.post("/v1/embeddings", json={"model": "embed-v4.0", "input": ["a", "b"]},
                                       headers=cw.auth)
    assert response.status_code == 200, response.text
    sent = cw.upstream.requests[-1]
    assert sent.path == "/v2/embed" and sent.body == {"model": "embed-v4.0", "texts": ["a", "b"],
                                                      "input_type": "search_document", "embedding_types": ["float"]}


async def test_rerank_goes_to_cohere_and_is_billed_by_the_texts_tokens(relay_client, cw):
    from oneapi_site.lib import tokenizer

    body = {"model": "rerank-v3.5", "query": "capital of France", "top_n": 2,
            "documents": ["Berlin is in Germany", {"text": "Paris is the capital of France"}, "Rome"]}
    response = await relay_client.post("/v1/rerank", json=body, headers=cw.auth)
    assert response.status_code == 200, response.text
    assert [r["index"] for r in response.json()["results"]] == [1, 0]
    sent = cw.upstream.requests[-1]
    assert sent.path == "/v2/rerank"
    assert sent.body["documents"] == ["Berlin is in Germany", "Paris is the capital of France", "Rome"]
    assert sent.body["top_n"] == 2
    log = await consume_log()
    texts = ["capital of France", "Berlin is in Germany", "Paris is the capital of France", "Rome"]
    assert log.prompt_tokens == tokenizer.count_input(texts, "rerank-v3.5")


async def test_rerank_documents_of_another_type_are_refused_before_the_vendor(relay_client, cw):
    body = {"model": "rerank-v3.5", "query": "which is a fruit", "documents": [["apple"], "car"]}
    response = await relay_client.post("/v1/rerank", json=body, headers=cw.auth)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "documents"
    assert cw.upstream.requests == []
