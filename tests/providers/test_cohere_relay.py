"""Cohere end to end: OpenAI requests through the ASGI app to a mock Cohere v2, billed from Cohere's counts."""

import base64
import json

import orjson
import pytest

from providers.adapters import cohere
from tests.helpers import consume_log, events_of
from tests.providers.mock_cohere import PNG, REPLY, MockCohere
from tests.providers.vendor_harness import assert_interrupted, no_consume_log, sdk_chat_both_ways, serve, stream_chunks
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


async def test_plain_chat_is_converted_and_billed_from_cohere_tokens(relay_client, cw):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 40}, headers=cw.auth)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": REPLY}
    assert answer["usage"] == {"prompt_tokens": 21, "completion_tokens": 6, "total_tokens": 27}
    sent = cw.upstream.requests[-1]
    assert sent.path == "/v2/chat" and sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.body == {"model": "command-a-03-2025", "messages": CHAT["messages"], "stream": False,
                         "max_tokens": 40}
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens, log.model_name) == (21, 6, "command-a-03-2025")


async def test_stream_is_converted_with_usage_hidden_unless_asked(relay_client, cw):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=cw.auth)
    assert response.status_code == 200
    chunks = stream_chunks(response.content)
    assert all(c["choices"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == REPLY
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert cw.upstream.requests[-1].body["stream"] is True
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens, log.is_stream) == (21, 6, True)

    response = await relay_client.post("/v1/chat/completions", headers=cw.auth, json={
        **CHAT, "stream": True, "stream_options": {"include_usage": True}})
    last = orjson.loads(events_of(response.content)[-2])
    assert last["choices"] == [] and last["usage"]["prompt_tokens"] == 21


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


async def test_embeddings_go_to_v2_embed_and_are_billed(relay_client, cw):
    cw.upstream.then(prompt_tokens=8)
    response = await relay_client.post("/v1/embeddings", json={"model": "embed-v4.0", "input": ["a", "b"]},
                                       headers=cw.auth)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert [d["index"] for d in answer["data"]] == [0, 1] and answer["usage"] == {"prompt_tokens": 8,
                                                                                   "total_tokens": 8}
    sent = cw.upstream.requests[-1]
    assert sent.path == "/v2/embed" and sent.body == {"model": "embed-v4.0", "texts": ["a", "b"],
                                                      "input_type": "search_document", "embedding_types": ["float"]}
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (8, 0)


async def test_invalid_key_keeps_cohere_message_and_costs_nothing(relay_client, cw):
    cw.upstream.then(status=401, error={"id": "x", "message": "invalid api token"})
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=cw.auth)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["message"].startswith("invalid api token") and error["type"] == "authentication_error"
    assert KEY not in response.text
    assert await no_consume_log()


async def test_fixture_stream_with_a_garbled_event_goes_on(relay_client, cw):
    cw.upstream.then(fixture="malformed.sse")
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=cw.auth)
    chunks = [orjson.loads(e) for e in events_of(response.content)[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hello world"
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (70, 2)


async def test_malformed_event_from_the_mock_does_not_break_the_stream(relay_client, cw):
    cw.upstream.then(malformed=True)
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=cw.auth)
    assert response.content.endswith(b"data: [DONE]\n\n")
    chunks = [orjson.loads(e) for e in events_of(response.content)[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == REPLY
    assert (await consume_log()).completion_tokens == 6


async def test_stream_cut_mid_way_ends_with_an_error_event_and_bills_what_arrived(relay_client, cw):
    cw.upstream.then(reply=" ".join(["word"] * 50), cut_after=5)
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=cw.auth)
    assert_interrupted(response.content)
    log = await consume_log()
    assert 0 < log.completion_tokens < 50  # no message-end: counted locally


async def test_openai_sdk_plain_and_streamed(relay_client, cw):
    sdk = cw.sdk(relay_client)
    answer, (text, usage, _) = await sdk_chat_both_ways(sdk, "command-a-03-2025", CHAT["messages"])
    assert answer.choices[0].message.content == REPLY
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (21, 6)
    assert text == REPLY and usage.prompt_tokens == 21

    vectors = await sdk.embeddings.create(model="embed-v4.0", input="hi")
    assert len(vectors.data) == 1 and len(vectors.data[0].embedding) == 3


async def test_rerank_goes_to_cohere_and_is_billed_by_the_texts_tokens(relay_client, cw):
    from relay import tokenizer

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
