"""Xunfei Spark (HTTP): bytes in and out, and end to end through the relay against a mock Spark."""

from pathlib import Path

import orjson
import pytest

from providers.adapters import ADAPTERS, adapter_for
from providers.adapters.base import ChannelInfo, UpstreamError
from providers.adapters.xunfei import spark_http
from relay.streaming import SSEParser
from tests.providers.mock_xunfei import MockXunfei
from tests.providers.vendor_harness import call_context
from tests.world import new_world

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "xunfei"
PASSWORD = "sparkApiPassword:abc123"
CHAT = {"model": "generalv3.5", "messages": [{"role": "user", "content": "你好"}]}


def channel(base_url=""):
    return ChannelInfo(id=1, type=48, name="x", key=PASSWORD, base_url=base_url, models=("generalv3.5",),
                       model_mapping={}, config={}, system_prompt="", priority=0, weight=0)


def decode(name):
    decoder = adapter_for(48).stream_decoder(call_context(model="generalv3.5"))
    parser = SSEParser()
    events = []
    for event, data in [*parser.feed((FIXTURES / name).read_bytes()), *parser.close()]:
        events.extend(decoder.feed(event, data))
    return events + decoder.close()


# --- adapter ----------------------------------------------------------------------------------------

def test_spark_http_url_header_and_body():
    assert ADAPTERS[48] is spark_http.XunfeiAdapter and spark_http.XunfeiAdapter.label == "Xunfei Spark (HTTP)"
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}, "max_completion_tokens": 50}
    request = adapter_for(48).build_request(call_context(channel(), body=body, stream=True))
    assert request.url == "https://spark-api-open.xf-yun.com/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {PASSWORD}"
    sent = orjson.loads(request.body)
    assert "stream_options" not in sent and sent["max_tokens"] == 50 and sent["stream"] is True
    with pytest.raises(UpstreamError):
        adapter_for(48).build_request(call_context(channel(), "embeddings", {"model": "x", "input": "y"}))


def test_plain_answer_gets_openais_missing_fields():
    data, usage = adapter_for(48).parse_response(call_context(channel(), body=CHAT),
                                                 body=(FIXTURES / "chat.json").read_bytes())
    answer = orjson.loads(data)
    assert answer["object"] == "chat.completion" and answer["model"] == "generalv3.5"
    assert answer["id"] == "chatcmpl-cha000b000c@dx1905cd86d6bb86d552"
    assert not {"code", "message", "sid"} & answer.keys()
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert (usage.prompt_tokens, usage.completion_tokens) == (1, 20)


def test_tool_call_answer_finishes_with_tool_calls():
    data, _ = adapter_for(48).parse_response(call_context(), body=(FIXTURES / "tool_call.json").read_bytes())
    choice = orjson.loads(data)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


@pytest.mark.parametrize("fixture, status, code, retryable", [
    ("error_in_200.json", 400, "content_filter", False),
    ("error_rate_limit.json", 429, "rate_limit_exceeded", True),
])
def test_an_error_in_a_200_is_raised_with_sparks_message(fixture, status, code, retryable):
    raw = (FIXTURES / fixture).read_bytes()
    with pytest.raises(UpstreamError) as caught:
        adapter_for(48).parse_response(call_context(), body=raw)
    err = caught.value
    assert (err.status, err.code, err.retryable) == (status, code, retryable)
    assert err.message == orjson.loads(raw)["message"]
    assert err.error_body["spark_code"] == orjson.loads(raw)["code"]


def test_stream_gets_a_finish_reason_and_its_usage_split_off():
    events = decode("stream.sse")
    assert events[-1].done
    content = [orjson.loads(e.data) for e in events if e.data and not e.usage_only]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "generalv3.5" for c in content)
    assert all("usage" not in c and "sid" not in c for c in content)
    assert "".join(c["choices"][0]["delta"]["content"] for c in content) == "你好！有什么可以帮你？"
    assert content[-1]["choices"][0]["finish_reason"] == "stop"
    usage_event = [e for e in events if e.usage_only][0]
    assert (usage_event.usage.prompt_tokens, usage_event.usage.completion_tokens) == (6, 9)


def test_a_malformed_event_is_skipped():
    events = decode("malformed.sse")
    content = [orjson.loads(e.data) for e in events if e.data and not e.usage_only]
    assert "".join(c["choices"][0]["delta"]["content"] for c in content) == "一。二。"


def test_a_stream_error_event_becomes_an_openai_error_chunk():
    decoder = adapter_for(48).stream_decoder(call_context(model="generalv3.5"))
    events = decoder.feed(b"", (FIXTURES / "error_in_200.json").read_bytes())
    assert orjson.loads(events[0].data)["error"]["code"] == "content_filter"


# --- relay (what every vendor owes is in test_vendor_contract.py) -----------------------------------

@pytest.fixture(scope="module")
def spark_server():
    server = MockXunfei(PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture
def xw(transactional_db, spark_server):
    return new_world(spark_server, username="xia", type=48, name="spark", key=PASSWORD, models="generalv3.5")


@pytest.mark.django_db(transaction=True)
async def test_spark_is_sent_openais_request_with_the_api_password_and_no_stream_options(relay_client, xw):
    response = await relay_client.post("/v1/chat/completions", json=CHAT, headers=xw.auth)
    assert response.status_code == 200, response.text
    sent = xw.upstream.requests[-1]
    assert (sent.path, sent.headers["Authorization"]) == ("/v1/chat/completions", f"Bearer {PASSWORD}")

    response = await relay_client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=xw.auth)
    assert response.status_code == 200
    assert "stream_options" not in xw.upstream.requests[-1].body
