"""Zhipu GLM adapter, bytes in and bytes out: the signed token, the request we send, the answer we give."""

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import orjson
import pytest

from providers.adapters import ADAPTERS, adapter_for, zhipu
from providers.adapters.base import ChannelInfo, UpstreamError
from relay.streaming import SSEParser
from tests.providers.vendor_harness import call_context

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "zhipu"
KEY = "4f1b2c3d5e6f7a8b9c0d1e2f3a4b5c6d.Xy7secretPart9Q"
BODY = {"model": "glm-4-flash", "messages": [{"role": "system", "content": "Be brief."},
                                              {"role": "user", "content": "你好"}]}


def channel(key=KEY, base_url=""):
    return ChannelInfo(id=1, type=16, name="z", key=key, base_url=base_url, models=("glm-4-flash",),
                       model_mapping={}, config={}, system_prompt="", priority=0, weight=0)


@pytest.fixture(autouse=True)
def no_cached_tokens():
    zhipu._tokens.clear()
    yield
    zhipu._tokens.clear()


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verify_jwt(token: str, key: str = KEY) -> tuple[dict, dict]:
    """Check a Zhipu JWT independently of the adapter: HS256 over `header.claims` with the secret."""
    key_id, secret = key.split(".")
    header_b64, claims_b64, signature_b64 = token.split(".")
    expected = hmac.new(secret.encode(), f"{header_b64}.{claims_b64}".encode(), hashlib.sha256).digest()
    assert hmac.compare_digest(_unb64(signature_b64), expected), "signature does not verify with the secret"
    header, claims = json.loads(_unb64(header_b64)), json.loads(_unb64(claims_b64))
    assert header == {"alg": "HS256", "sign_type": "SIGN"}
    assert claims["api_key"] == key_id
    return header, claims


def stream(name: str, adapter=None):
    decoder = (adapter or adapter_for(16)).stream_decoder(call_context(model="glm-4-flash"))
    parser = SSEParser()
    events = []
    for event, data in [*parser.feed((FIXTURES / name).read_bytes()), *parser.close()]:
        events.extend(decoder.feed(event, data))
    return events + decoder.close()


def test_zhipu_and_its_label_are_registered():
    assert ADAPTERS[16] is zhipu.ZhipuAdapter
    assert zhipu.ZhipuAdapter.label == "Zhipu GLM" and zhipu.ZhipuAdapter.default_base_url == "https://open.bigmodel.cn"


def test_request_goes_to_v4_with_a_signed_token_in_milliseconds():
    before = int(time.time() * 1000)
    request = adapter_for(16).build_request(call_context(channel(), body=BODY))
    after = int(time.time() * 1000)
    assert request.method == "POST"
    assert request.url == "https://open.bigmodel.cn/api/paas/v4/chat/completions"
    scheme, token = request.headers["Authorization"].split(" ")
    assert scheme == "Bearer"
    _, claims = verify_jwt(token)
    assert before <= claims["timestamp"] <= after
    assert claims["exp"] == claims["timestamp"] + 3600 * 1000
    sent = orjson.loads(request.body)
    assert sent["messages"] == BODY["messages"] and sent["model"] == "glm-4-flash" and sent["stream"] is False
    assert "Xy7secretPart9Q" not in request.url and "Xy7secretPart9Q" not in request.body.decode()


def test_token_is_cached_until_shortly_before_expiry():
    now = 1_700_000_000.0
    first = zhipu.zhipu_token(KEY, now=now)
    assert zhipu.zhipu_token(KEY, now=now + 3000) == first  # 50 minutes on: still good
    renewed = zhipu.zhipu_token(KEY, now=now + 3301)  # under 5 minutes left: signed anew
    assert renewed != first
    assert verify_jwt(renewed)[1]["timestamp"] == int((now + 3301) * 1000)
    other = zhipu.zhipu_token("otherid.othersecret", now=now)
    verify_jwt(other, "otherid.othersecret")


@pytest.mark.parametrize("bad_key", ["nodotatall", ".secretonly", "idonly."])
def test_a_malformed_key_is_a_clear_error_without_the_secret(bad_key):
    with pytest.raises(UpstreamError) as caught:
        adapter_for(16).build_request(call_context(channel(key=bad_key), body=BODY))
    assert not caught.value.retryable and caught.value.code == "invalid_channel_key"
    assert "id.secret" in caught.value.message
    assert "secretonly" not in str(caught.value) and "nodotatall" not in str(caught.value)


@pytest.mark.parametrize("base_url", ["https://open.bigmodel.cn/", "https://open.bigmodel.cn/api/paas/v4"])
def test_base_url_may_be_the_host_or_the_sdk_style_v4_prefix(base_url):
    request = adapter_for(16).build_request(call_context(channel(base_url=base_url), body=BODY, stream=True))
    assert request.url == "https://open.bigmodel.cn/api/paas/v4/chat/completions"
    assert request.headers["Accept"] == "text/event-stream"


def test_sampling_settings_are_clamped_into_zhipus_ranges():
    def build(body, stream=False):
        return adapter_for(16).build_request(call_context(channel(), body=body, stream=stream))

    sent = orjson.loads(build({
        **BODY, "temperature": 0, "top_p": 1, "stop": ["END", "STOP"], "max_completion_tokens": 64,
        "stream_options": {"include_usage": True}, "n": 1, "user": "u-1234567", "seed": 3}, stream=True).body)
    assert sent["temperature"] == 0.01 and sent["do_sample"] is False
    assert sent["top_p"] == 0.99
    assert sent["stop"] == ["END"]  # Zhipu takes a single stop word
    assert sent["max_tokens"] == 64 and "max_completion_tokens" not in sent
    assert sent["user_id"] == "u-1234567"
    assert sent["stream"] is True
    for dropped in ("stream_options", "n", "user", "seed"):
        assert dropped not in sent
    sent = orjson.loads(build({**BODY, "temperature": 1.7, "top_p": 0, "stop": "x"}).body)
    assert sent["temperature"] == 1.0 and sent["top_p"] == 0.01 and sent["stop"] == ["x"]
    assert "do_sample" not in sent
    sent = orjson.loads(build({**BODY, "temperature": 0.5}).body)
    assert sent["temperature"] == 0.5 and "top_p" not in sent


def test_tools_and_tool_history_pass_through_with_auto_choice():
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    history = [
        {"role": "user", "content": "北京天气"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"location\":\"北京\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 3}"},
    ]
    def build(body):
        return adapter_for(16).build_request(call_context(channel(), body=body))

    sent = orjson.loads(build({"model": "glm-4-plus", "messages": history, "tools": tools,
                               "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}).body)
    assert sent["tools"] == tools and sent["tool_choice"] == "auto"
    assert sent["messages"] == history
    sent = orjson.loads(build({**BODY, "tools": tools, "tool_choice": "none"}).body)
    assert "tools" not in sent and "tool_choice" not in sent


def test_data_url_images_lose_their_prefix_and_http_urls_stay():
    message = {"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}
    body = {"model": "glm-4v-flash", "messages": [message]}
    sent = orjson.loads(adapter_for(16).build_request(call_context(channel(), body=body)).body)
    parts = sent["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "What is this?"}
    assert parts[1]["image_url"] == {"url": "iVBORw0KGgo=", "detail": "low"}
    assert parts[2]["image_url"]["url"] == "https://example.com/cat.jpg"
    assert message["content"][1]["image_url"]["url"].startswith("data:"), "the client's body is not mutated"


def test_plain_answer_becomes_an_openai_completion_with_zhipus_usage():
    data, usage = adapter_for(16).parse_response(call_context(), body=(FIXTURES / "chat.json").read_bytes())
    answer = orjson.loads(data)
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "你好！有什么我可以帮你的吗？"}
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert (usage.prompt_tokens, usage.completion_tokens) == (17, 9)
    assert adapter_for(16).completion_text(mode="chat", body=data) == "你好！有什么我可以帮你的吗？"


def test_tool_call_answer_passes_through():
    data, usage = adapter_for(16).parse_response(call_context(), body=(FIXTURES / "tool_call.json").read_bytes())
    choice = orjson.loads(data)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["id"] == "call_8239403618434577466" and call["type"] == "function"
    assert call["function"] == {"name": "get_weather", "arguments": "{\"location\":\"北京\",\"unit\":\"celsius\"}"}
    assert (usage.prompt_tokens, usage.completion_tokens) == (158, 22)


def test_stream_takes_the_usage_from_the_last_chunk_and_moves_it_to_its_own_chunk():
    events = stream("stream.sse")
    assert events[-1].done
    chunks = [orjson.loads(e.data) for e in events if e.data]
    content = [c for c in chunks if c["choices"]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in content) == "你好！有什么可以帮你的吗？"
    assert content[0]["choices"][0]["delta"]["role"] == "assistant"
    assert content[-1]["choices"][0]["finish_reason"] == "stop" and "usage" not in content[-1]
    usage_events = [e for e in events if e.usage]
    assert len(usage_events) == 1 and usage_events[0].usage_only
    assert (usage_events[0].usage.prompt_tokens, usage_events[0].usage.completion_tokens) == (17, 9)
    usage_chunk = orjson.loads(usage_events[0].data)
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["total_tokens"] == 26
    assert usage_chunk["id"] == "8313807536837492492"
    assert "".join(e.text for e in events) == "你好！有什么可以帮你的吗？"


def test_streamed_tool_call_arrives_as_openai_tool_call_deltas():
    events = stream("stream_tool_call.sse")
    chunks = [orjson.loads(e.data) for e in events if e.data and not e.usage_only]
    [call] = chunks[0]["choices"][0]["delta"]["tool_calls"]
    assert call["index"] == 0 and call["id"] == "call_8313807536837492600" and call["type"] == "function"
    assert orjson.loads(call["function"]["arguments"]) == {"location": "北京", "unit": "celsius"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert [e.usage.completion_tokens for e in events if e.usage] == [22]


def test_malformed_event_is_forwarded_and_the_stream_goes_on():
    events = stream("malformed.sse")
    assert any(e.data and e.data.startswith(b'{"id":"8313807536837492700","created":1706092500,"model":"glm-4-fl')
               and not e.usage for e in events)
    assert "".join(e.text for e in events) == "Hello world"
    finish = [orjson.loads(e.data)["choices"][0]["finish_reason"] for e in events
              if e.data and not e.usage_only and e.data.startswith(b"{") and b"finish_reason" in e.data]
    assert finish == ["content_filter"], "Zhipu's `sensitive` finish is OpenAI's content_filter"
    assert [e.usage.prompt_tokens for e in events if e.usage] == [5]


def test_stream_cut_mid_way_yields_what_arrived_without_usage():
    raw = (FIXTURES / "stream.sse").read_bytes()
    cut = raw[: raw.index(b"data: ", raw.index(b"data: ") + 1) + 40]  # part-way into the second event
    decoder = adapter_for(16).stream_decoder(call_context(model="glm-4-flash"))
    parser = SSEParser()
    events = [ev for event, data in parser.feed(cut) for ev in decoder.feed(event, data)]
    events += decoder.close()
    assert "".join(e.text for e in events) == "你好"
    assert not any(e.usage for e in events) and not any(e.done for e in events)


def test_embeddings_send_the_list_and_report_usage():
    body = {"model": "embedding-3", "input": ["a", "b"], "dimensions": 256, "encoding_format": "float"}
    request = adapter_for(16).build_request(call_context(channel(), mode="embeddings", body=body))
    assert request.url == "https://open.bigmodel.cn/api/paas/v4/embeddings"
    assert orjson.loads(request.body) == {"model": "embedding-3", "input": ["a", "b"], "dimensions": 256}
    verify_jwt(request.headers["Authorization"].removeprefix("Bearer "))
    data, usage = adapter_for(16).parse_response(call_context(mode="embeddings"),
                                                 body=(FIXTURES / "embeddings.json").read_bytes())
    answer = orjson.loads(data)
    assert answer["object"] == "list" and [d["index"] for d in answer["data"]] == [0, 1]
    assert usage.prompt_tokens == 12 and usage.completion_tokens == 0


@pytest.mark.parametrize("fixture, status, code, type_, retryable", [
    ("error_balance.json", 429, "insufficient_quota", "insufficient_quota", False),
    ("error_rate_limit.json", 429, "rate_limit_exceeded", "rate_limit_error", True),
    ("error_auth.json", 401, "invalid_api_key", "authentication_error", False),
])
def test_errors_keep_zhipus_message_and_classify_retry(fixture, status, code, type_, retryable):
    body = (FIXTURES / fixture).read_bytes()
    err = adapter_for(16).parse_error(call_context(), status=status, body=body)
    vendor = orjson.loads(body)["error"]
    assert err.message == vendor["message"]
    assert (err.status, err.code, err.type, err.retryable) == (status, code, type_, retryable)
    assert err.error_body["zhipu_code"] == vendor["code"]


def test_errors_without_a_zhipu_code_fall_back_to_the_status():
    err = adapter_for(16).parse_error(call_context(), status=503, body=b"<html>busy</html>")
    assert err.retryable and "busy" in err.message
    err = adapter_for(16).parse_error(call_context(), status=400,
                                      body='{"error":{"code":"1214","message":"messages 参数非法"}}'.encode())
    assert not err.retryable and err.message == "messages 参数非法"


# --- CogView images ------------------------------------------------------------------------------------

IMAGE = {"model": "cogview-4", "prompt": "一只可爱的小猫咪", "size": "1024x1024", "quality": "hd", "n": 1,
         "user": "user-42", "response_format": "url", "style": "vivid"}


def test_images_go_to_cogview_with_only_the_fields_it_documents():
    adapter = adapter_for(16)
    assert "images" in adapter.modes and "images" in adapter.complete_modes
    request = adapter.build_request(call_context(channel(), mode="images", body=IMAGE))
    assert (request.method, request.url) == ("POST", "https://open.bigmodel.cn/api/paas/v4/images/generations")
    verify_jwt(request.headers["Authorization"].removeprefix("Bearer "))
    assert orjson.loads(request.body) == {"model": "cogview-4", "prompt": "一只可爱的小猫咪", "size": "1024x1024",
                                          "quality": "hd", "user_id": "user-42"}


@pytest.mark.parametrize("extra, sent", [
    ({}, {}),
    ({"size": "auto", "quality": "medium"}, {}),  # gpt-image-1's values: CogView's defaults instead
    ({"size": "1440*720"}, {"size": "1440x720"}),
])
def test_image_size_and_quality_are_sent_only_in_cogviews_terms(extra, sent):
    body = {"model": "cogview-3-flash", "prompt": "猫", **extra}
    request = adapter_for(16).build_request(call_context(channel(), mode="images", body=body))
    assert orjson.loads(request.body) == {"model": "cogview-3-flash", "prompt": "猫", **sent}


def test_n_is_not_sent_because_cogview_makes_one_image_a_request():
    request = adapter_for(16).build_request(call_context(channel(), mode="images", body={**IMAGE, "n": 3}))
    assert "n" not in orjson.loads(request.body)  # n images are n of these requests (complete)


def test_cogviews_answer_becomes_openais_images_answer():
    data, usage = adapter_for(16).parse_response(call_context(mode="images", model="cogview-4"),
                                                 body=(FIXTURES / "images.json").read_bytes())
    assert usage is None  # priced per image, not per token
    assert orjson.loads(data) == {"created": 1741161366, "data": [
        {"url": "https://aigc-files.bigmodel.cn/api/cogview/20250305155606f2a8c3a4e2b14b8c_0.png"}]}
    with pytest.raises(UpstreamError) as bad:
        adapter_for(16).parse_response(call_context(mode="images"), body=b"<html>gateway</html>")
    assert bad.value.status == 502 and not bad.value.retryable


def test_a_refused_image_prompt_keeps_zhipus_message():
    raw = (FIXTURES / "error_images_sensitive.json").read_bytes()
    err = adapter_for(16).parse_error(call_context(mode="images"), status=400, body=raw)
    assert (err.status, err.code, err.type, err.retryable) == (400, "content_filter", "invalid_request_error", False)
    assert err.message == orjson.loads(raw)["error"]["message"]
