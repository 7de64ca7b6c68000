"""Xunfei Spark over WebSocket through the relay: a local Spark socket server checks our signature and
answers with Spark's frames; clients get OpenAI's answers and the bill has Spark's own counts.

What every vendor owes (answers, streams, usage, refusals, failover) is in test_vendor_contract.py;
here is what is Spark's own: the chat frame, functions, output filtered mid-answer."""

from __future__ import annotations

import pytest

from tests.helpers import consume_log
from tests.providers.mock_xunfei_ws import MockXunfeiWS
from tests.providers.vendor_harness import serve
from tests.world import new_world

pytestmark = pytest.mark.django_db(transaction=True)

APP_ID, SECRET, API_KEY = "app123", "secret456", "key789"
KEY = f"{APP_ID}|{SECRET}|{API_KEY}"
CHAT = {"model": "Spark-Max", "messages": [{"role": "system", "content": "Be kind."},
                                           {"role": "user", "content": "你好"}], "max_tokens": 100}


spark_ws = serve(lambda: MockXunfeiWS(API_KEY, SECRET))


@pytest.fixture
def sw(transactional_db, spark_ws):
    return new_world(spark_ws, username="xing", type=18, name="spark-ws", key=KEY, models="Spark-Max")


async def test_the_chat_frame_names_the_app_the_domain_and_the_messages(relay_client, sw):
    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=sw.auth)
    assert response.status_code == 200, response.text
    seen = sw.upstream.requests[-1]
    assert seen.path == "/v3.5/chat"
    assert seen.frame["header"] == {"app_id": APP_ID, "uid": "oneapi"}
    assert seen.frame["parameter"]["chat"] == {"domain": "generalv3.5", "max_tokens": 100}
    assert seen.frame["payload"]["message"]["text"] == CHAT["messages"]


async def test_a_function_call_comes_back_as_tool_calls(relay_client, sw):
    sw.upstream.then(fixture="tool_call.ndjson")
    body = {**CHAT, "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]}
    response = await relay_client.post("/v1/chat/completions", json=body, headers=sw.auth)
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sw.upstream.requests[-1].frame["payload"]["functions"]["text"][0]["name"] == "get_weather"
    assert (await consume_log()).prompt_tokens == 70


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
