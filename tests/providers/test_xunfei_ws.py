"""Xunfei Spark over WebSocket (type 18): the signed URL, the request frame, frames → OpenAI chunks, errors."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from providers.adapters import adapter_for
from providers.adapters.base import ChannelInfo, EventAnswer, UpstreamError
from providers.adapters.xunfei.spark_ws import FrameConverter, XunfeiSparkAdapter, request_frame
from tests.providers.vendor_harness import call_context

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "xunfei_ws"
KEY = "app123|secret456|key789"
NOW = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT


def channel(base_url="", config=None, key=KEY) -> ChannelInfo:
    return ChannelInfo(id=1, type=18, name="spark", key=key, base_url=base_url, models=(), model_mapping={},
                       config=config or {}, system_prompt="", priority=0, weight=1)


@pytest.fixture
def adapter(monkeypatch):
    adapter = XunfeiSparkAdapter()
    monkeypatch.setattr(adapter, "clock", lambda: NOW)
    return adapter


def frames(name: str) -> list[bytes]:
    return [line for line in (FIXTURES / name).read_bytes().splitlines() if line.strip()]


async def test_type_18_is_the_websocket_adapter():
    # Its answer is the socket's events, and opening it does no I/O: the socket opens when they are read.
    opened = await adapter_for(18).open(call_context(channel(), body={"model": "Spark-Lite"}), session=None)
    assert isinstance(adapter_for(18), XunfeiSparkAdapter) and isinstance(opened, EventAnswer)


@pytest.mark.parametrize("model, config, path, domain", [
    ("Spark-Lite", {}, "/v1.1/chat", "lite"),
    ("Spark-Pro", {}, "/v3.1/chat", "generalv3"),
    ("Spark-Pro-128K", {}, "/chat/pro-128k", "pro-128k"),
    ("Spark-Max", {"api_version": "v1.1"}, "/v3.5/chat", "generalv3.5"),
    ("Spark-Max-32K", {}, "/chat/max-32k", "max-32k"),
    ("Spark-4.0-Ultra", {}, "/v4.0/chat", "4.0Ultra"),
    ("my-spark", {"api_version": "v3.5"}, "/v3.5/chat", "generalv3.5"),
    ("my-spark", {}, "/v1.1/chat", "lite"),
])
def test_model_picks_the_path_and_domain(adapter, model, config, path, domain):
    url, got_domain = adapter.url_for(channel(config=config), model)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path, got_domain) == ("wss", "spark-api.xf-yun.com", path, domain)


def test_the_signature_is_sparks_hmac_of_host_date_and_request_line(adapter):
    url, _ = adapter.url_for(channel(base_url="https://proxy.example:8443/spark"), "Spark-Max")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("wss", "proxy.example:8443", "/spark/v3.5/chat")
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["date"] == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert query["host"] == "proxy.example:8443"
    origin = b"host: proxy.example:8443\ndate: Tue, 14 Nov 2023 22:13:20 GMT\nGET /spark/v3.5/chat HTTP/1.1"
    signature = base64.b64encode(hmac.new(b"secret456", origin, hashlib.sha256).digest()).decode()
    assert base64.b64decode(query["authorization"]).decode() == (
        f'api_key="key789", algorithm="hmac-sha256", headers="host date request-line", signature="{signature}"')
    assert "secret456" not in url


def test_http_base_urls_become_ws(adapter):
    url, _ = adapter.url_for(channel(base_url="http://127.0.0.1:9999/"), "Spark-Lite")
    assert url.startswith("ws://127.0.0.1:9999/v1.1/chat?")


def test_a_malformed_key_is_refused_without_echoing_it(adapter):
    with pytest.raises(UpstreamError) as err:
        adapter.url_for(channel(key="only-one-part-secret"), "Spark-Lite")
    assert err.value.status == 401 and "only-one-part-secret" not in err.value.message


def test_request_frame_carries_history_parameters_and_functions():
    body = {"model": "Spark-Max", "temperature": 0.4, "max_completion_tokens": 512, "top_k": 3, "user": "u-1",
            "top_p": 0.9, "stop": ["\n"], "stream_options": {"include_usage": True},
            "messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": [{"type": "text", "text": "Weather in "},
                                                      {"type": "text", "text": "Hefei?"}]},
                         {"role": "assistant", "content": None, "tool_calls": [
                             {"id": "c1", "type": "function",
                              "function": {"name": "get_weather", "arguments": "{\"location\":\"合肥\"}"}}]},
                         {"role": "tool", "tool_call_id": "c1", "content": "22C"}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                                         "parameters": {"type": "object"}}}]}
    frame = request_frame(body, "app123", "generalv3.5")
    assert frame["header"] == {"app_id": "app123", "uid": "u-1"}
    assert frame["parameter"] == {"chat": {"domain": "generalv3.5", "temperature": 0.4, "max_tokens": 512,
                                           "top_k": 3}}
    text = frame["payload"]["message"]["text"]
    assert [m["role"] for m in text] == ["system", "user", "assistant", "user"]
    assert text[1]["content"] == "Weather in Hefei?"
    assert orjson.loads(text[2]["content"])["function_call"]["name"] == "get_weather"
    assert text[3]["content"] == "Result of c1: 22C"
    assert frame["payload"]["functions"] == {"text": [{"name": "get_weather", "description": "Weather",
                                                       "parameters": {"type": "object"}}]}


def test_no_functions_when_tool_choice_is_none_and_uid_defaults():
    body = {"messages": [{"role": "user", "content": "hi"}], "tool_choice": "none",
            "tools": [{"type": "function", "function": {"name": "f"}}]}
    frame = request_frame(body, "a", "lite")
    assert "functions" not in frame["payload"] and frame["header"]["uid"] == "oneapi"
    assert frame["parameter"] == {"chat": {"domain": "lite"}}


def test_images_are_refused_clearly():
    body = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:x"}}]}]}
    with pytest.raises(UpstreamError) as err:
        request_frame(body, "a", "lite")
    assert err.value.status == 400 and "images" in err.value.message


def convert(name: str, model="Spark-Max"):
    converter = FrameConverter(model)
    return [e for frame in frames(name) for e in converter.feed(frame)]


def test_frames_become_chunks_with_role_first_finish_and_usage_last():
    events = convert("plain.ndjson")
    chunks = [orjson.loads(e.data) for e in events]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "你好！"}
    assert chunks[0]["id"] == "chatcmpl-cht000cb087@dx18b9e8e2c1bb8f2540"
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "Spark-Max" for c in chunks)
    assert "".join(e.text for e in events) == "你好！我是讯飞星火认知大模型。"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and events[-1].usage_only
    assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}
    assert (events[-1].usage.prompt_tokens, events[-1].usage.completion_tokens) == (5, 9)


def test_a_function_call_becomes_an_openai_tool_call():
    events = convert("tool_call.ndjson")
    chunks = [orjson.loads(e.data) for e in events]
    call = chunks[0]["choices"][0]["delta"]["tool_calls"][0]
    assert call["index"] == 0 and call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"] == {"name": "get_weather", "arguments": "{\"location\":\"合肥\",\"unit\":\"c\"}"}
    assert chunks[1]["choices"][0]["finish_reason"] == "tool_calls"
    assert events[-1].usage.prompt_tokens == 70


def test_a_malformed_frame_is_skipped():
    events = convert("malformed.ndjson")
    assert "".join(e.text for e in events) == "一二"
    assert events[-1].usage.completion_tokens == 2


@pytest.mark.parametrize("fixture, status, code, retryable", [
    ("error_auth.json", 401, "invalid_api_key", False),
    ("error_filter.json", 400, "content_filter", False),
    ("error_busy.json", 429, "rate_limit_exceeded", True),
])
def test_a_failure_frame_keeps_sparks_message(fixture, status, code, retryable):
    raw = (FIXTURES / fixture).read_bytes()
    with pytest.raises(UpstreamError) as err:
        FrameConverter("Spark-Max").feed(raw)
    assert (err.value.status, err.value.code, err.value.retryable) == (status, code, retryable)
    assert err.value.message == orjson.loads(raw)["header"]["message"]
    assert err.value.error_body["spark_code"] == orjson.loads(raw)["header"]["code"]
