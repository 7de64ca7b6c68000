"""Xunfei Spark over WebSocket through the relay: a local Spark socket server checks our signature and
answers with Spark's frames; clients get OpenAI's answers and the bill has Spark's own counts."""

from __future__ import annotations

import openai
import orjson
import pytest
from asgiref.sync import sync_to_async

from billing.services import option_set
from tests.factories import ChannelFactory
from tests.helpers import consume_log, events_of
from tests.providers.mock_xunfei_ws import MockXunfeiWS
from tests.providers.vendor_harness import assert_interrupted, no_consume_log, serve, stream_chunks
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

APP_ID, SECRET, API_KEY = "app123", "secret456", "key789"
KEY = f"{APP_ID}|{SECRET}|{API_KEY}"
CHAT = {"model": "Spark-Max", "messages": [{"role": "system", "content": "Be kind."},
                                           {"role": "user", "content": "你好"}], "max_tokens": 100}
REPLY = "你好！我是讯飞星火认知大模型。"


spark_ws = serve(lambda: MockXunfeiWS(API_KEY, SECRET))


@pytest.fixture
def sw(transactional_db, spark_ws):
    return new_world(spark_ws, username="xing", type=18, name="spark-ws", key=KEY, models="Spark-Max")



async def test_a_streamed_client_gets_sparks_words_and_is_billed_sparks_counts(relay_client, sw):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=sw.auth)
    assert response.status_code == 200, response.text
    chunks = stream_chunks(response.content)
    assert all(c["choices"] for c in chunks), "the usage chunk stays hidden"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == REPLY
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    seen = sw.upstream.requests[-1]
    assert seen.path == "/v3.5/chat"
    assert seen.frame["header"] == {"app_id": APP_ID, "uid": "oneapi"}
    assert seen.frame["parameter"]["chat"] == {"domain": "generalv3.5", "max_tokens": 100}
    assert seen.frame["payload"]["message"]["text"] == CHAT["messages"]
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens, log.is_stream) == (5, 9, True)


async def test_usage_is_streamed_when_asked(relay_client, sw):
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=sw.auth)
    last = orjson.loads(events_of(response.content)[-2])
    assert last["choices"] == [] and last["usage"]["total_tokens"] == 14


async def test_a_non_streaming_client_gets_one_answer(relay_client, sw):
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=sw.auth)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": REPLY}
    assert answer["usage"] == {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}
    log = await consume_log()
    assert (log.prompt_tokens, log.completion_tokens) == (5, 9)


async def test_a_function_call_comes_back_as_tool_calls(relay_client, sw):
    sw.upstream.then(fixture="tool_call.ndjson")
    body = {**CHAT, "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=sw.auth)
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sw.upstream.requests[-1].frame["payload"]["functions"]["text"][0]["name"] == "get_weather"
    assert (await consume_log()).prompt_tokens == 70


async def test_an_auth_failure_frame_is_a_real_http_error(relay_client, sw):
    sw.upstream.then(error="error_auth.json")
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=sw.auth)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["message"].startswith("AppIdNoAuthError:(11200)") and error["code"] == "invalid_api_key"
    assert await no_consume_log()


async def test_a_wrong_secret_is_refused_at_the_handshake_without_leaking_it(relay_client, sw):
    await sync_to_async(ChannelFactory)(type=18, name="spark-bad", base_url=sw.upstream.url,
                                        key=f"{APP_ID}|wrong-secret|{API_KEY}", models="Spark-Lite")
    body = {**CHAT, "model": "Spark-Lite"}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=sw.auth)
    assert response.status_code == 401
    assert "wrong-secret" not in response.text and "secret456" not in response.text
    assert await no_consume_log()


async def test_a_busy_channel_fails_over(relay_client, sw):
    await sync_to_async(option_set)(key="RetryTimes", value="1")
    backup = await sync_to_async(ChannelFactory)(type=18, name="spark-backup", base_url=sw.upstream.url,
                                                 key=KEY, models="Spark-Max", priority=-1)
    sw.upstream.then(error="error_busy.json")
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=sw.auth)
    assert response.status_code == 200, response.text
    assert (await consume_log()).channel_id == backup.pk


async def test_a_drop_mid_answer_ends_with_an_error_event_and_bills_what_arrived(relay_client, sw):
    sw.upstream.then(drop_after=2)
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=sw.auth)
    assert response.status_code == 200
    events = assert_interrupted(response.content)
    text = "".join(orjson.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-2])
    assert text == REPLY
    log = await consume_log()
    assert log.completion_tokens > 0


async def test_the_openai_sdk_chats_plain_and_streamed(relay_client, sw):
    sdk = openai.AsyncOpenAI(base_url="http://testserver/v1", api_key=f"sk-{sw.token.key}",
                             http_client=relay_client)
    answer = await sdk.chat.completions.create(model="Spark-Max", messages=CHAT["messages"])
    assert answer.choices[0].message.content == REPLY and answer.usage.total_tokens == 14
    stream = await sdk.chat.completions.create(model="Spark-Max", messages=CHAT["messages"], stream=True)
    pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(pieces) == REPLY


async def test_output_filtered_mid_answer_finishes_with_content_filter(relay_client, sw):
    sw.upstream.then(fixture="filtered_mid.ndjson")
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=sw.auth)
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == ("关于这个问题，", "content_filter")
    assert (await consume_log()).completion_tokens > 0


async def test_a_tool_that_is_not_an_object_is_refused_before_the_vendor(relay_client, sw):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "tools": [None]}, headers=sw.auth)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "tools"
