"""Tencent Hunyuan end to end: OpenAI requests through the ASGI app to a mock Hunyuan that checks the
TC3 signature, billed from Hunyuan's own counts."""

import json

import orjson
import pytest
from asgiref.sync import sync_to_async

from billing.services import option_set
from tests.factories import ChannelFactory
from tests.helpers import consume_log, events_of
from tests.providers.mock_tencent import REPLY, SECRET_ID, SECRET_KEY, MockTencent
from tests.providers.vendor_harness import assert_interrupted, no_consume_log, sdk_chat_both_ways, serve, stream_chunks
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


async def test_plain_chat_is_signed_converted_and_billed_from_hunyuans_counts(relay_client, tw):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "temperature": 0.3}, headers=tw.auth)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": REPLY}
    assert answer["usage"] == {"prompt_tokens": 13, "completion_tokens": 8, "total_tokens": 21}
    assert tw.upstream.signature_failures == 0
    sent = tw.upstream.requests[-1]
    assert sent.path == "/" and sent.headers["X-TC-Action"] == "ChatCompletions"
    assert sent.headers["X-TC-Region"] == "ap-guangzhou" and sent.headers["X-TC-Version"] == "2023-09-01"
    assert sent.body == {"Model": "hunyuan-turbo", "Stream": False, "Temperature": 0.3, "Messages": [
        {"Role": "system", "Content": "Be brief."}, {"Role": "user", "Content": "Hello"}]}
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens, log.model_name) == (13, 8, "hunyuan-turbo")


async def test_sse_stream_is_converted_with_usage_hidden_unless_asked(relay_client, tw):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=tw.auth)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = stream_chunks(response.content)
    assert all(c["choices"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == REPLY
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert tw.upstream.requests[-1].body["Stream"] is True
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens, log.is_stream) == (13, 8, True)

    response = await relay_client.post("/v1/chat/completions", headers=tw.auth, json={
        **CHAT, "stream": True, "stream_options": {"include_usage": True}})
    last = orjson.loads(events_of(response.content)[-2])
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 8


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


async def test_embeddings_are_billed_from_hunyuans_counts(relay_client, tw):
    tw.upstream.then(prompt_tokens=4)
    response = await relay_client.post("/v1/embeddings", headers=tw.auth,
                                       json={"model": "hunyuan-embedding", "input": ["a", "b"]})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert [d["index"] for d in answer["data"]] == [0, 1] and answer["usage"]["prompt_tokens"] == 4
    sent = tw.upstream.requests[-1]
    assert sent.headers["X-TC-Action"] == "GetEmbedding" and sent.body == {"InputList": ["a", "b"]}
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (4, 0)


async def test_a_wrong_secret_fails_the_signature_check_and_keeps_tencents_message(relay_client, tw):
    tw.upstream.secret_key = "another-secret"
    try:
        response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=tw.auth)
    finally:
        tw.upstream.secret_key = SECRET_KEY
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "AuthFailure.SignatureFailure"
    assert error["message"].startswith("The provided credentials could not be validated.")
    assert SECRET_KEY not in response.text
    assert await no_consume_log()


async def test_rate_limit_answered_as_http_200_fails_over_to_the_next_channel(relay_client, tw):
    await sync_to_async(option_set)(key="RetryTimes", value="1")
    backup = await sync_to_async(ChannelFactory)(type=23, name="hunyuan-backup", base_url=tw.upstream.url,
                                                 key=f"{SECRET_ID}|{SECRET_KEY}", models="hunyuan-turbo", priority=-1)
    tw.upstream.then(tencent_error=("RequestLimitExceeded", "Your current request times exceeds the limit."))
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=tw.auth)
    assert response.status_code == 200, response.text
    assert len(tw.upstream.requests) == 2
    assert (await consume_log()).channel_id == backup.pk


async def test_rate_limit_without_a_backup_keeps_tencents_message(relay_client, tw):
    tw.upstream.then(tencent_error=("RequestLimitExceeded", "Your current request times exceeds the limit."))
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=tw.auth)
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["message"].startswith("Your current request times exceeds the limit.")
    assert error["code"] == "RequestLimitExceeded" and error["type"] == "rate_limit_error"


async def test_fixture_stream_with_a_garbled_event_goes_on(relay_client, tw):
    tw.upstream.then(fixture="malformed.sse")
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=tw.auth)
    chunks = [orjson.loads(e) for e in events_of(response.content)[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hello world"
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (5, 2)


async def test_malformed_event_from_the_mock_does_not_break_the_stream(relay_client, tw):
    tw.upstream.then(malformed=True)
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=tw.auth)
    assert response.content.endswith(b"data: [DONE]\n\n")
    chunks = [orjson.loads(e) for e in events_of(response.content)[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == REPLY
    assert (await consume_log()).completion_tokens == 8


async def test_stream_cut_mid_way_ends_with_an_error_event_and_bills_hunyuans_running_count(relay_client, tw):
    tw.upstream.then(reply=" ".join(["word"] * 50), completion_tokens=50, cut_after=5)
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=tw.auth)
    assert_interrupted(response.content)
    log = await consume_log()
    assert log.completion_tokens == 5 and log.prompt_tokens == 13  # the running total of the 5th event


async def test_openai_sdk_plain_and_streamed(relay_client, tw):
    sdk = tw.sdk(relay_client)
    answer, (text, usage, _) = await sdk_chat_both_ways(sdk, "hunyuan-turbo", CHAT["messages"])
    assert answer.choices[0].message.content == REPLY
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (13, 8)
    assert text == REPLY and usage.completion_tokens == 8
    assert tw.upstream.signature_failures == 0
