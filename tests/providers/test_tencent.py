"""Tencent Hunyuan adapter, bytes in and bytes out: TC3-signed API 3.0 calls, capitalised fields, SSE."""

import json
from pathlib import Path

import orjson
import pytest

from providers.adapters import ADAPTERS, adapter_for
from providers.adapters.base import ChannelInfo, UpstreamError
from providers.adapters.tencent import TencentAdapter, tc3_authorization, usage_from
from relay.streaming import ChunkGatherer, SSEParser
from tests.providers.mock_tencent import expected_authorization
from tests.providers.vendor_harness import call_context

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "tencent"
NOW = 1715580000  # 2024-05-13 06:00:00 UTC
KEY = "1300000000|AKIDexampleSecretId|exampleSecretKey"
BODY = {"model": "hunyuan-turbo", "messages": [{"role": "system", "content": "Be brief."},
                                                {"role": "user", "content": "Hello"}]}


def channel(key=KEY, base_url="", config=None):
    return ChannelInfo(id=1, type=23, name="t", key=key, base_url=base_url, models=("hunyuan-turbo",),
                       model_mapping={}, config=config or {}, system_prompt="", priority=0, weight=0)


def build(body, stream=False, mode="chat", **kwargs):
    request = TencentAdapter(clock=lambda: NOW).build_request(call_context(channel(**kwargs), mode=mode,
                                                                           body=body, stream=stream))
    return request, orjson.loads(request.body)


def decode(raw: bytes, close=True):
    decoder = adapter_for(23).stream_decoder(call_context(model="hunyuan-turbo"))
    assert decoder.framing == "sse" and decoder.accepts("text/event-stream")
    parser = SSEParser()
    pairs = [*parser.feed(raw), *parser.close()]
    events = [ev for event, data in pairs for ev in decoder.feed(event, data)]
    return events + (decoder.close() if close else [])


def chunks_of(events):
    return [orjson.loads(e.data) for e in events if e.data is not None]


def test_tencent_is_registered():
    assert ADAPTERS[23] is TencentAdapter
    assert TencentAdapter.label == "Tencent Hunyuan"
    assert TencentAdapter.default_base_url == "https://hunyuan.tencentcloudapi.com"
    assert TencentAdapter.config_fields == ("region",) and TencentAdapter.modes == ("chat", "embeddings")


def test_signature_matches_the_example_in_tencents_signature_v3_doc():
    # https://cloud.tencent.com/document/api/213/30654: CVM DescribeInstances, timestamp 1551113065.
    payload = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    authorization = tc3_authorization(
        secret_id="AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", secret_key="Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
        url="https://cvm.tencentcloudapi.com/", payload=payload, timestamp=1551113065, service="cvm",
        content_type="application/json; charset=utf-8")
    assert authorization == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, "
        "SignedHeaders=content-type;host, "
        "Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168")


def test_chat_request_is_signed_for_hunyuans_host_with_the_injected_clock():
    request, sent = build({**BODY, "temperature": 0.5, "top_p": 0.8}, config={"region": "ap-guangzhou"})
    assert request.method == "POST" and request.url == "https://hunyuan.tencentcloudapi.com/"
    headers = request.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["X-TC-Action"] == "ChatCompletions"
    assert headers["X-TC-Version"] == "2023-09-01"
    assert headers["X-TC-Timestamp"] == str(NOW)
    assert headers["X-TC-Region"] == "ap-guangzhou"
    assert headers["Authorization"] == expected_authorization(
        secret_id="AKIDexampleSecretId", secret_key="exampleSecretKey", host="hunyuan.tencentcloudapi.com",
        content_type="application/json", body=request.body, timestamp=str(NOW))
    assert headers["Authorization"].startswith(
        "TC3-HMAC-SHA256 Credential=AKIDexampleSecretId/2024-05-13/hunyuan/tc3_request, "
        "SignedHeaders=content-type;host, ")
    assert "exampleSecretKey" not in json.dumps(headers)
    assert sent == {"Model": "hunyuan-turbo", "Stream": False, "Temperature": 0.5, "TopP": 0.8,
                    "Messages": [{"Role": "system", "Content": "Be brief."}, {"Role": "user", "Content": "Hello"}]}


def test_signature_covers_the_host_actually_called_and_no_region_header_by_default():
    request, _ = build(BODY, stream=True, base_url="http://127.0.0.1:8123/", key="AKIDexampleSecretId|exampleSecretKey")
    assert request.url == "http://127.0.0.1:8123/"
    assert "X-TC-Region" not in request.headers
    assert request.headers["Authorization"] == expected_authorization(
        secret_id="AKIDexampleSecretId", secret_key="exampleSecretKey", host="127.0.0.1:8123",
        content_type="application/json", body=request.body, timestamp=str(NOW))
    assert orjson.loads(request.body)["Stream"] is True


def test_both_key_formats_sign_alike_and_a_bad_key_is_refused_without_echoing_it():
    three, _ = build(BODY)
    two, _ = build(BODY, key=" AKIDexampleSecretId|exampleSecretKey ")
    assert three.headers["Authorization"] == two.headers["Authorization"]
    for bad in ("only-one-part", "a|b|c|d", "AKID|"):
        with pytest.raises(UpstreamError) as caught:
            build(BODY, key=bad)
        assert caught.value.code == "invalid_channel_key" and not caught.value.retryable
        assert bad not in caught.value.message


def test_history_images_and_tools_are_translated():
    tools = [{"type": "function", "function": {"name": "get_current_weather", "description": "Weather now",
                                               "parameters": {"type": "object", "properties": {
                                                   "location": {"type": "string"}}}}}]
    inline = "data:image/png;base64,iVBORw0KGgo="
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                                     {"type": "image_url", "image_url": {"url": inline}}]},
        {"role": "assistant", "content": "A cat."},
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "user", "content": "And quickly."},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_current_weather", "arguments": '{"location":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "22C"},
    ]
    _, sent = build({"model": "hunyuan-functioncall", "messages": messages, "tools": tools,
                     "tool_choice": {"type": "function", "function": {"name": "get_current_weather"}},
                     "temperature": 3, "top_p": 1.5, "max_tokens": 100, "stop": "END", "seed": 7})
    assert sent["Messages"] == [
        {"Role": "system", "Content": "Be brief.\nAnswer in French."},
        {"Role": "user", "Contents": [
            {"Type": "text", "Text": "What is this?"},
            {"Type": "image_url", "ImageUrl": {"Url": "https://example.com/cat.png"}},
            {"Type": "image_url", "ImageUrl": {"Url": "data:image/png;base64,iVBORw0KGgo="}}]},
        {"Role": "assistant", "Content": "A cat."},
        {"Role": "user", "Content": "Weather in Paris?\nAnd quickly."},
        {"Role": "assistant", "ToolCalls": [{"Id": "call_1", "Type": "function", "Function": {
            "Name": "get_current_weather", "Arguments": '{"location":"Paris"}'}}]},
        {"Role": "tool", "Content": "22C", "ToolCallId": "call_1"},
    ]
    tool = {"Type": "function", "Function": {
        "Name": "get_current_weather", "Description": "Weather now",
        "Parameters": '{"type":"object","properties":{"location":{"type":"string"}}}'}}
    assert sent["Tools"] == [tool]
    assert sent["ToolChoice"] == "custom" and sent["CustomTool"] == tool
    assert (sent["Temperature"], sent["TopP"], sent["Stop"], sent["Seed"]) == (2.0, 1.0, ["END"], 7)
    assert "MaxTokens" not in sent and "max_tokens" not in sent  # ChatCompletions has no length limit


def test_tool_choice_none_and_a_file_image_url_is_refused():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    _, sent = build({**BODY, "tools": tools, "tool_choice": "none"})
    assert sent["ToolChoice"] == "none"
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}
    with pytest.raises(UpstreamError) as caught:
        build({"model": "hunyuan-vision", "messages": [message]})
    assert caught.value.status == 400 and caught.value.code == "invalid_image_url"


def test_plain_answer_becomes_a_chat_completion_with_hunyuans_usage():
    data, usage = adapter_for(23).parse_response(call_context(), body=(FIXTURES / "chat.json").read_bytes())
    answer = orjson.loads(data)
    assert answer["object"] == "chat.completion"
    assert answer["id"] == "chatcmpl-e5c4d2b1-8a3f-4c2e-9b7d-1f0a2b3c4d5e" and answer["created"] == 1715580000
    assert answer["choices"] == [{"index": 0, "logprobs": None, "finish_reason": "stop", "message": {
        "role": "assistant", "content": "你好！我是腾讯混元大模型，有什么可以帮你的吗？"}}]
    assert answer["usage"] == {"prompt_tokens": 9, "completion_tokens": 17, "total_tokens": 26}
    assert (usage.prompt_tokens, usage.completion_tokens) == (9, 17)
    assert adapter_for(23).completion_text(mode="chat", body=data).startswith("你好")


@pytest.mark.parametrize(("cached", "expected"), [("1000", 1000), (1000, 1000), ("", 0), ("lots", 0), (None, 0),
                                                  ("99999", 1200)])
def test_cached_tokens_are_read_as_the_string_tencents_schema_gives_or_a_number(cached, expected):
    # Tencent's schema types CachedTokens as a string; anything not a count is no cache hit, and a count above
    # the prompt is held to the prompt, so a bill never goes below zero input.
    usage = usage_from({"PromptTokens": 1200, "CompletionTokens": 40, "PromptTokensDetails": {"CachedTokens": cached}})
    assert (usage.prompt_tokens, usage.cached_tokens) == (1200, expected)


def test_tool_call_answer_becomes_openai_tool_calls():
    data, usage = adapter_for(23).parse_response(call_context(), body=(FIXTURES / "tool_call.json").read_bytes())
    choice = orjson.loads(data)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [{"id": "call_cp3ihvarub57jf6gk2kg", "type": "function", "function": {
        "name": "get_current_weather", "arguments": '{"location":"北京"}'}}]
    assert usage.total_tokens == 133


@pytest.mark.parametrize(("fixture", "status", "kind", "retryable"), [
    ("error_auth.json", 401, "authentication_error", False),
    ("error_rate_limit.json", 429, "rate_limit_error", True),
])
def test_errors_answered_as_http_200_are_raised_with_tencents_message(fixture, status, kind, retryable):
    body = (FIXTURES / fixture).read_bytes()
    with pytest.raises(UpstreamError) as caught:
        adapter_for(23).parse_response(call_context(), body=body)
    err = caught.value
    vendor = json.loads(body)["Response"]
    assert (err.status, err.type, err.retryable) == (status, kind, retryable)
    assert err.code == vendor["Error"]["Code"]
    assert err.message.startswith(vendor["Error"]["Message"]) and vendor["RequestId"] in err.message
    assert err.error_body["message"] == err.message


def test_internal_errors_retry_and_parameter_errors_do_not():
    def raised(code):
        body = orjson.dumps({"Response": {"Error": {"Code": code, "Message": "m"}, "RequestId": "r"}})
        with pytest.raises(UpstreamError) as caught:
            adapter_for(23).parse_response(call_context(), body=body)
        return caught.value

    assert raised("InternalError").retryable and raised("InternalError").status == 500
    assert raised("FailedOperation.EngineServerError").retryable
    assert raised("InvalidParameterValue.Model").status == 400 and not raised("InvalidParameterValue.Model").retryable
    assert raised("ResourceInsufficient.ChargeResourceExhaust").status == 403
    with pytest.raises(UpstreamError) as caught:
        adapter_for(23).parse_response(call_context(), body=b"<html>bad gateway</html>")
    assert caught.value.status == 502 and caught.value.retryable


def test_parse_error_reads_response_error_from_a_non_200_answer():
    err = adapter_for(23).parse_error(call_context(), status=503, body=(FIXTURES / "error_auth.json").read_bytes())
    assert err.code == "AuthFailure.SignatureFailure" and err.retryable  # the 503 itself may clear up
    err = adapter_for(23).parse_error(call_context(), status=502, body=b"upstream connect error")
    assert err.status == 502 and err.retryable
    assert err.message == "The upstream answered HTTP 502: upstream connect error"


def test_stream_becomes_openai_chunks_with_a_final_usage_chunk():
    events = decode((FIXTURES / "stream.sse").read_bytes())
    chunks = chunks_of(events)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "你好"}
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "chatcmpl-0c4ffd2b-7a55-4b1f-8c4e-3d2f1b0a9e8d"
               for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "你好！我是腾讯混元。"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {
        "prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}
    assert events[-1].usage_only and not any(e.usage_only for e in events[:-1])
    assert [e.usage.completion_tokens for e in events if e.usage] == [1, 3, 6, 6]  # running totals; last wins
    assert "".join(e.text for e in events) == text


def test_a_stream_cut_mid_way_still_carries_hunyuans_running_usage():
    raw = (FIXTURES / "stream.sse").read_bytes()
    cut = raw[: raw.index(b"data:", raw.index(b"data:", 10) + 1)]  # the first two events only
    events = decode(cut, close=False)
    assert [e.usage.completion_tokens for e in events if e.usage][-1] == 3
    assert "".join(e.text for e in events) == "你好！我是"


def test_streamed_tool_calls_are_merged_by_id():
    events = decode((FIXTURES / "stream_tool_call.sse").read_bytes())
    chunks = chunks_of(events)
    calls = [c for ch in chunks if ch["choices"] for c in ch["choices"][0]["delta"].get("tool_calls", [])]
    assert calls[0] == {"index": 0, "id": "call_cp3ihvarub57jf6gk2kg", "type": "function",
                        "function": {"name": "get_current_weather", "arguments": ""}}
    assert all(set(c) == {"index", "function"} and c["index"] == 0 for c in calls[1:])
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"location": "北京"}
    assert [c for c in chunks if c["choices"]][-1]["choices"][0]["finish_reason"] == "tool_calls"
    gatherer = ChunkGatherer(mode="chat", model="hunyuan-functioncall", request_id="r")
    for e in events:
        gatherer.add(e.data)
    message = orjson.loads(gatherer.result(events[-1].usage))["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["arguments"] == '{"location":"北京"}'


def test_a_garbled_event_is_dropped_and_the_stream_goes_on():
    events = decode((FIXTURES / "malformed.sse").read_bytes())
    chunks = chunks_of(events)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "Hello world"
    assert events[-1].usage.completion_tokens == 2


def test_an_error_inside_the_stream_reaches_the_client_as_an_error_event():
    chunks = chunks_of(decode((FIXTURES / "stream_error.sse").read_bytes()))
    error = next(c["error"] for c in chunks if "error" in c)
    assert error["message"].startswith("请求模型超时") and error["code"] == "4001"


def test_embeddings_use_get_embedding_and_come_back_in_openais_shape():
    request, sent = build({"model": "hunyuan-embedding", "input": ["hello", "goodbye"]}, mode="embeddings")
    assert request.headers["X-TC-Action"] == "GetEmbedding" and sent == {"InputList": ["hello", "goodbye"]}
    _, sent = build({"model": "hunyuan-embedding", "input": "hello"}, mode="embeddings")
    assert sent == {"Input": "hello"}
    with pytest.raises(UpstreamError):
        build({"model": "hunyuan-embedding", "input": [1, 2, 3]}, mode="embeddings")
    data, usage = adapter_for(23).parse_response(call_context(mode="embeddings"),
                                                 body=(FIXTURES / "embedding.json").read_bytes())
    answer = orjson.loads(data)
    assert answer["object"] == "list" and [d["index"] for d in answer["data"]] == [0, 1]
    assert answer["data"][0] == {"object": "embedding", "index": 0, "embedding": [0.0132, -0.0071, 0.0254, -0.0193]}
    assert answer["usage"] == {"prompt_tokens": 6, "total_tokens": 6} and usage.prompt_tokens == 6


def test_completions_mode_is_refused():
    with pytest.raises(UpstreamError) as caught:
        build({"model": "hunyuan-lite", "prompt": "hi"}, mode="completions")
    assert caught.value.status == 400
