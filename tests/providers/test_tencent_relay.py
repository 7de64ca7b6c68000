"""Tencent Hunyuan end to end: OpenAI requests through the ASGI app to a mock Hunyuan that checks the
TC3 signature.

What every vendor owes (answers, streams, usage, refusals, failover, embeddings) is in
test_vendor_contract.py; here is what is Hunyuan's own: signed actions, tools and images."""

import json

import orjson
import pytest

from tests.helpers import events_of
from tests.providers.mock_tencent import SECRET_ID, SECRET_KEY, MockTencent
from tests.providers.vendor_harness import serve
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"model": "hunyuan-turbo", "messages": [{"role": "system", "content": "Be brief."},
                                                {"role": "user", "content": "Hello"}]}
TOOLS = [{"type": "function", "function": {"name": "get_current_weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}}}}]


tencent_server = serve(MockTencent)


@pytest.fixture
def tw(transactional_db, tencent_server):
    return new_world(tencent_server, username="hunyuan-user", token_name="hunyuan-key", type=23, name="hunyuan",
                     key=f"1300000000|{SECRET_ID}|{SECRET_KEY}",
                     models="hunyuan-turbo,hunyuan-functioncall,hunyuan-embedding", config={"region": "ap-guangzhou"})


async def test_a_chat_is_signed_and_sent_as_the_chat_completions_action(relay_client, tw):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "temperature": 0.3}, headers=tw.auth)
    assert response.status_code == 200, response.text
    assert tw.upstream.signature_failures == 0
    sent = tw.upstream.requests[-1]
    assert sent.path == "/" and sent.headers["X-TC-Action"] == "ChatCompletions"
    assert sent.headers["X-TC-Region"] == "ap-guangzhou" and sent.headers["X-TC-Version"] == "2023-09-01"
    assert sent.body == {"Model": "hunyuan-turbo", "Stream": False, "Temperature": 0.3, "Messages": [
        {"Role": "system", "Content": "Be brief."}, {"Role": "user", "Content": "Hello"}]}


async def test_a_stream_is_signed_and_asked_for_in_the_body(relay_client, tw):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=tw.auth)
    assert response.status_code == 200
    assert tw.upstream.requests[-1].body["Stream"] is True
    assert tw.upstream.signature_failures == 0


async def test_tool_calls_both_ways(relay_client, tw):
    tw.upstream.then(tool_call=True).then(tool_call=True)
    body = {**CHAT, "model": "hunyuan-functioncall", "tools": TOOLS}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=tw.auth)
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call == {"id": "call_mock_1", "type": "function",
                    "function": {"name": "get_current_weather", "arguments": '{"location":"Paris"}'}}
    assert json.loads(tw.upstream.requests[-1].body["Tools"][0]["Function"]["Parameters"]) == TOOLS[0]["function"][
        "parameters"]

    response = await relay_client.post("/v1/chat/completions", json={**body, "stream": True}, headers=tw.auth)
    chunks = [orjson.loads(e) for e in events_of(response.content)[:-1]]
    calls = [c for ch in chunks for c in ch["choices"][0]["delta"].get("tool_calls", [])]
    assert calls[0]["id"] == "call_mock_1" and {c["index"] for c in calls} == {0}
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"location": "Paris"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"

    history = [*CHAT["messages"], {"role": "assistant", "content": None, "tool_calls": [call]},
               {"role": "tool", "tool_call_id": call["id"], "content": "22C"}]
    response = await relay_client.post("/v1/chat/completions", json={**body, "messages": history}, headers=tw.auth)
    assert response.status_code == 200
    sent = tw.upstream.requests[-1].body["Messages"]
    assert sent[2] == {"Role": "assistant", "ToolCalls": [{"Id": "call_mock_1", "Type": "function", "Function": {
        "Name": "get_current_weather", "Arguments": '{"location":"Paris"}'}}]}
    assert sent[3] == {"Role": "tool", "Content": "22C", "ToolCallId": "call_mock_1"}


async def test_images_are_passed_as_urls(relay_client, tw):
    content = [{"type": "text", "text": "Compare"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
               {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    response = await relay_client.post("/v1/chat/completions", headers=tw.auth, json={
        "model": "hunyuan-turbo", "messages": [{"role": "user", "content": content}]})
    assert response.status_code == 200, response.text
    assert tw.upstream.requests[-1].body["Messages"][0]["Contents"][1:] == [
        {"Type": "image_url", "ImageUrl": {"Url": "data:image/png;base64,iVBORw0KGgo="}},
        {"Type": "image_url", "ImageUrl": {"Url": "https://example.com/cat.png"}}]


async def test_embeddings_are_the_get_embedding_action(relay_client, tw):
    response = await relay_client.post("/v1/embeddings", headers=tw.auth,
                                       json={"model": "hunyuan-embedding", "input": ["a", "b"]})
    assert response.status_code == 200, response.text
    sent = tw.upstream.requests[-1]
    assert sent.headers["X-TC-Action"] == "GetEmbedding" and sent.body == {"InputList": ["a", "b"]}
