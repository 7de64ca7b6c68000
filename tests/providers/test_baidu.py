"""Baidu adapters, bytes in and bytes out: the access token, the request we send, the answer we give.

The token tests talk to the mock Baidu over a real aiohttp session (the token is the adapter's own I/O, fetched
in its open() before the relay's one request).
"""

import asyncio
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import orjson
import pytest

from providers.adapters import ADAPTERS, adapter_for, baidu
from providers.adapters.base import ChannelInfo, UpstreamError, network_failure
from relay.streaming import SSEParser
from tests.providers.mock_baidu import MockBaidu
from tests.providers.vendor_harness import call_context

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "baidu"
KEY = "bdApiKey123|bdSecretKey456"
CHAT = {"model": "ERNIE-3.5-8K", "messages": [{"role": "system", "content": "简短回答"},
                                               {"role": "user", "content": "你好"}]}
TOOLS = [{"type": "function", "function": {"name": "get_current_weather", "description": "天气",
                                           "parameters": {"type": "object",
                                                          "properties": {"location": {"type": "string"}}}}}]


def channel(key=KEY, base_url="", type_=15):
    return ChannelInfo(id=1, type=type_, name="b", key=key, base_url=base_url, models=("ERNIE-3.5-8K",),
                       model_mapping={}, config={}, system_prompt="", priority=0, weight=0)


@pytest.fixture(autouse=True)
def no_cached_tokens():
    baidu._tokens.clear()
    yield
    baidu._tokens.clear()


@pytest.fixture(scope="module")
def server():
    mock = MockBaidu(keys={"bdApiKey123": "bdSecretKey456"}).start()
    yield mock
    mock.stop()


@pytest.fixture
def mock(server):
    server.reset()
    return server


def build(body=CHAT, stream=False, model=None):
    body = {**body, baidu.ACCESS_TOKEN: "24.tok"}
    if model:
        body["model"] = model
    return adapter_for(15).build_request(call_context(channel(), body=body, stream=stream))


def sent(request) -> dict:
    return orjson.loads(request.body)


def decode(name_or_bytes, model="ERNIE-3.5-8K"):
    raw = name_or_bytes if isinstance(name_or_bytes, bytes) else (FIXTURES / name_or_bytes).read_bytes()
    decoder = adapter_for(15).stream_decoder(call_context(model=model))
    parser = SSEParser()
    events = []
    for event, data in [*parser.feed(raw), *parser.close()]:
        events.extend(decoder.feed(event, data))
    return events + decoder.close()


# --- registry and key -----------------------------------------------------------------------------

def test_baidu_types_are_registered():
    assert ADAPTERS[15] is baidu.BaiduAdapter and ADAPTERS[47] is baidu.QianfanAdapter
    assert baidu.BaiduAdapter.label == "Baidu Wenxin (Qianfan v1)"
    assert baidu.BaiduAdapter.default_base_url == "https://aip.baidubce.com"


@pytest.mark.parametrize("key", ["justonepart", "|secretonly", "apikey|", "keyA1|sec2|sec3"])
def test_a_malformed_key_is_refused_without_echoing_it(key):
    with pytest.raises(UpstreamError) as caught:
        baidu.split_key(key)
    err = caught.value
    assert (err.status, err.code, err.retryable) == (500, "invalid_channel_key", False)
    assert "APIKey|SecretKey" in err.message
    for part in key.split("|"):
        if part:
            assert part not in err.message


# --- access token -----------------------------------------------------------------------------------

async def test_the_token_is_fetched_once_and_cached(mock):
    async with aiohttp.ClientSession() as session:
        first = await baidu.with_access_token(CHAT, channel=channel(base_url=mock.url), session=session)
        second = await baidu.with_access_token(CHAT, channel=channel(base_url=mock.url), session=session)
    assert first[baidu.ACCESS_TOKEN] == second[baidu.ACCESS_TOKEN]
    assert first[baidu.ACCESS_TOKEN] in mock.tokens
    assert mock.token_requests == 1
    token_request = mock.requests[0]
    assert (token_request.method, token_request.path) == ("POST", "/oauth/2.0/token")
    assert parse_qs(token_request.query) == {"grant_type": ["client_credentials"], "client_id": ["bdApiKey123"],
                                             "client_secret": ["bdSecretKey456"]}
    assert CHAT == {"model": "ERNIE-3.5-8K", "messages": CHAT["messages"]}, "the plan's body is not touched"


async def test_concurrent_requests_fetch_one_token(mock):
    mock.token_delay = 0.2
    async with aiohttp.ClientSession() as session:
        bodies = await asyncio.gather(*[
            baidu.with_access_token(CHAT, channel=channel(base_url=mock.url), session=session)
            for _ in range(8)])
    assert mock.token_requests == 1
    assert len({b[baidu.ACCESS_TOKEN] for b in bodies}) == 1


async def test_a_token_is_renewed_an_hour_before_it_expires(mock):
    mock.expires_in = 7200
    async with aiohttp.ClientSession() as session:
        await baidu.with_access_token(CHAT, channel=channel(base_url=mock.url), session=session)
        (cache_key, (token, renew_at)), = baidu._tokens.items()
        assert 3500 < renew_at - time.time() <= 3600
        baidu._tokens[cache_key] = (token, time.time() - 1)  # an hour before expiry has come
        again = await baidu.with_access_token(CHAT, channel=channel(base_url=mock.url), session=session)
    assert mock.token_requests == 2 and again[baidu.ACCESS_TOKEN] != token


@pytest.mark.parametrize("key, status, phrase", [
    ("unknownKey|bdSecretKey456", 401, "unknown client id"),
    ("bdApiKey123|wrongSecret999", 401, "Client authentication failed"),
])
async def test_a_refused_key_is_an_auth_error_without_the_secret(mock, key, status, phrase):
    async with aiohttp.ClientSession() as session:
        with pytest.raises(UpstreamError) as caught:
            await baidu.with_access_token(CHAT, channel=channel(key=key, base_url=mock.url), session=session)
    err = caught.value
    assert (err.status, err.type, err.code, err.retryable) == (status, "authentication_error", "invalid_api_key",
                                                               False)
    assert phrase in err.message
    assert "wrongSecret999" not in err.message and "bdSecretKey456" not in err.message
    assert not baidu._tokens


async def test_an_unreachable_token_endpoint_is_retryable_and_hides_the_url():
    async with aiohttp.ClientSession() as session:
        with pytest.raises(UpstreamError) as caught:
            await baidu.with_access_token(CHAT, channel=channel(base_url="http://127.0.0.1:9"), session=session)
    assert caught.value.retryable and caught.value.status == 502
    assert "bdSecretKey456" not in str(caught.value)
    assert caught.value.message == "Could not reach Baidu's token endpoint: ClientConnectorError"


def test_a_token_endpoint_that_never_answers_is_the_one_upstream_unreachable_error():
    # The same words as the relay's own calls (base.network_failure), naming the endpoint and its wait.
    err = network_failure(TimeoutError(), read_timeout=baidu.TOKEN_TIMEOUT, setting=None,
                          upstream="Baidu's token endpoint")
    assert (err.status, err.retryable, err.code) == (502, True, "do_request_failed")
    assert err.message == f"Baidu's token endpoint did not answer within {baidu.TOKEN_TIMEOUT} s."


# --- request ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("model, endpoint", [
    ("ERNIE-4.0-8K", "completions_pro"), ("ERNIE-3.5-8K", "completions"), ("ERNIE-Speed-8K", "ernie_speed"),
    ("ERNIE-Lite-8K", "ernie-lite-8k"), ("ERNIE-Speed-128K", "ernie-speed-128k"),
    ("ERNIE-4.0-Turbo-8K", "ernie-4.0-turbo-8k"), ("ERNIE-Bot-turbo", "eb-instant"),
])
def test_the_model_picks_the_endpoint_and_the_token_goes_in_the_url(model, endpoint):
    request = build(model=model)
    url = urlsplit(request.url)
    assert (url.scheme, url.netloc) == ("https", "aip.baidubce.com")
    assert url.path == f"/rpc/2.0/ai_custom/v1/wenxinworkshop/chat/{endpoint}"
    assert parse_qs(url.query) == {"access_token": ["24.tok"]}
    assert "Authorization" not in request.headers, "the API key never leaves in a header"
    assert baidu.ACCESS_TOKEN not in sent(request)


def test_build_without_the_token_is_refused():
    with pytest.raises(UpstreamError):
        adapter_for(15).build_request(call_context(channel(), body=CHAT))


def test_system_goes_top_level_and_parameters_are_mapped():
    body = {**CHAT, "temperature": 0, "top_p": 1.5, "frequency_penalty": 1.4, "max_tokens": 256, "stop": "。",
            "user": "u-42", "response_format": {"type": "json_object"},
            "messages": [{"role": "system", "content": "简短回答"}, {"role": "user", "content": "第一"},
                         {"role": "user", "content": [{"type": "text", "text": "第二"}]},
                         {"role": "assistant", "content": "好的"}, {"role": "user", "content": "第三"}]}
    payload = sent(build(body))
    assert payload["system"] == "简短回答"
    assert payload["messages"] == [{"role": "user", "content": "第一\n\n第二"},
                                   {"role": "assistant", "content": "好的"}, {"role": "user", "content": "第三"}]
    assert (payload["temperature"], payload["top_p"], payload["penalty_score"]) == (0.01, 1.0, 1.4)
    assert (payload["max_output_tokens"], payload["stop"], payload["user_id"]) == (256, ["。"], "u-42")
    assert payload["response_format"] == "json_object"
    assert payload["stream"] is False
    assert sent(build({**CHAT, "max_completion_tokens": 99}, stream=True))["max_output_tokens"] == 99
    assert sent(build(CHAT, stream=True))["stream"] is True


def test_tools_become_functions_and_tool_choice_is_kept():
    payload = sent(build({**CHAT, "tools": TOOLS, "tool_choice": {"type": "function",
                                                                  "function": {"name": "get_current_weather"}}}))
    assert payload["functions"] == [TOOLS[0]["function"]]
    assert payload["tool_choice"] == {"type": "function", "function": {"name": "get_current_weather"}}
    assert "functions" not in sent(build({**CHAT, "tools": TOOLS, "tool_choice": "none"}))
    legacy = sent(build({**CHAT, "functions": [{"name": "f", "parameters": {"type": "object"}}]}))
    assert legacy["functions"] == [{"name": "f", "description": "f", "parameters": {"type": "object"}}]


def test_tool_history_becomes_function_call_turns_one_call_at_a_time():
    calls = [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"北京\"}"}},
             {"id": "c2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"上海\"}"}}]
    messages = [{"role": "user", "content": "北京和上海天气?"},
                {"role": "assistant", "content": None, "tool_calls": calls},
                {"role": "tool", "tool_call_id": "c2", "content": "上海 20°C"},
                {"role": "tool", "tool_call_id": "c1", "content": "北京 3°C"}]
    payload = sent(build({"model": "ERNIE-3.5-8K", "messages": messages, "tools": TOOLS}))
    assert payload["messages"] == [
        {"role": "user", "content": "北京和上海天气?"},
        {"role": "assistant", "content": "", "function_call": {"name": "weather", "arguments": "{\"city\":\"上海\"}"}},
        {"role": "function", "name": "weather", "content": "上海 20°C"},
        {"role": "assistant", "content": "", "function_call": {"name": "weather", "arguments": "{\"city\":\"北京\"}"}},
        {"role": "function", "name": "weather", "content": "北京 3°C"},
    ]


def test_an_image_part_is_refused_clearly():
    body = {"model": "ERNIE-4.0-8K", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "这是什么"}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}
    with pytest.raises(UpstreamError) as caught:
        build(body)
    assert (caught.value.status, caught.value.code, caught.value.retryable) == (400, "unsupported_content", False)
    assert "image_url" in caught.value.message


# --- answers ----------------------------------------------------------------------------------------

def test_plain_answer_becomes_a_chat_completion_with_baidus_usage():
    data, usage = adapter_for(15).parse_response(call_context(channel(), body=CHAT),
                                                 body=(FIXTURES / "chat.json").read_bytes())
    answer = orjson.loads(data)
    assert answer["object"] == "chat.completion" and answer["id"] == "as-bcmt5ct4iy"
    assert answer["model"] == "ERNIE-3.5-8K" and answer["created"] == 1680167072
    assert answer["choices"] == [{"index": 0, "message": {"role": "assistant", "content": (
        "您好，我是文心一言，英文名是ERNIE Bot。我能够与人对话互动，回答问题，协助创作。")},
        "logprobs": None, "finish_reason": "stop"}]
    assert answer["usage"] == {"prompt_tokens": 4, "completion_tokens": 33, "total_tokens": 37}
    assert (usage.prompt_tokens, usage.completion_tokens) == (4, 33)


def test_a_function_call_answer_becomes_tool_calls():
    data, usage = adapter_for(15).parse_response(call_context(), body=(FIXTURES / "function_call.json").read_bytes())
    choice = orjson.loads(data)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [{"id": "call_as-u9s4b2kb4x", "type": "function", "function": {
        "name": "get_current_weather", "arguments": "{\"location\":\"北京\",\"unit\":\"摄氏度\"}"}}]
    assert usage.completion_tokens == 27


@pytest.mark.parametrize("fixture, status, code, type_, retryable", [
    ("error_token_expired.json", 503, "access_token_expired", "upstream_error", True),
    ("error_token_invalid.json", 503, "access_token_expired", "upstream_error", True),
    ("error_rate_limit.json", 429, "rate_limit_exceeded", "rate_limit_error", True),
    ("error_quota.json", 429, "insufficient_quota", "insufficient_quota", False),
    ("error_invalid_argument.json", 400, "336003", "invalid_request_error", False),
])
def test_errors_in_a_200_keep_baidus_message(fixture, status, code, type_, retryable):
    raw = (FIXTURES / fixture).read_bytes()
    with pytest.raises(UpstreamError) as caught:
        adapter_for(15).parse_response(call_context(), body=raw)
    err = caught.value
    assert (err.status, err.code, err.type, err.retryable) == (status, code, type_, retryable)
    assert err.message == orjson.loads(raw)["error_msg"]
    assert err.error_body["baidu_code"] == orjson.loads(raw)["error_code"]


def test_an_expired_token_is_dropped_from_the_cache():
    key = baidu._cache_key(baidu.base_url(channel()), KEY)
    baidu._tokens[key] = ("24.old", time.time() + 9999)
    baidu._tokens["other"] = ("24.other", time.time() + 9999)
    ctx = call_context(channel(), body={**CHAT, baidu.ACCESS_TOKEN: "24.old"})
    with pytest.raises(UpstreamError):
        adapter_for(15).parse_response(ctx, body=(FIXTURES / "error_token_expired.json").read_bytes())
    assert key not in baidu._tokens and "other" in baidu._tokens


def test_a_newer_token_survives_the_refusal_of_an_older_one():
    key = baidu._cache_key(baidu.base_url(channel()), KEY)
    baidu._tokens[key] = ("24.new", time.time() + 9999)
    ctx = call_context(channel(), body={**CHAT, baidu.ACCESS_TOKEN: "24.old"})
    with pytest.raises(UpstreamError):
        adapter_for(15).parse_response(ctx, body=(FIXTURES / "error_token_expired.json").read_bytes())
    assert baidu._tokens[key][0] == "24.new"


def test_an_http_error_with_a_baidu_body_is_mapped_too():
    err = adapter_for(15).parse_error(call_context(), status=500,
                                      body=b'{"error_code":336000,"error_msg":"Internal error"}')
    assert (err.message, err.retryable) == ("Internal error", True)


# --- streams ----------------------------------------------------------------------------------------

def test_stream_becomes_openai_chunks_with_a_final_usage_chunk():
    events = decode("stream.sse")
    chunks = [orjson.loads(e.data) for e in events]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "ERNIE-3.5-8K" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "你好！有什么我可以帮助你的吗？"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]] == [None, None, "stop"]
    assert [e.usage for e in events[:-1]] == [None, None, None], "no usage before the end"
    last = events[-1]
    assert last.usage_only and (last.usage.prompt_tokens, last.usage.completion_tokens) == (5, 11)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 16


def test_a_streamed_function_call_becomes_a_tool_call_delta():
    events = decode("stream_function_call.sse")
    chunk = orjson.loads(events[0].data)
    call = chunk["choices"][0]["delta"]["tool_calls"][0]
    assert (call["index"], call["type"], call["function"]["name"]) == (0, "function", "get_current_weather")
    assert call["function"]["arguments"] == "{\"location\":\"北京\",\"unit\":\"摄氏度\"}"
    assert chunk["choices"][0]["finish_reason"] == "tool_calls"
    assert events[-1].usage.completion_tokens == 27


def test_a_malformed_event_is_skipped_and_the_stream_goes_on():
    events = decode("malformed.sse")
    chunks = [orjson.loads(e.data) for e in events if not e.usage_only]
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == "第一句。第二句。"
    assert events[-1].usage.completion_tokens == 8


def test_a_stream_cut_mid_way_keeps_the_text_for_local_counting_and_claims_no_usage():
    events = decode("stream_cut.sse")
    assert [e.text for e in events] == ["这句话说到一半"]
    assert all(e.usage is None for e in events)


def test_an_error_event_in_a_stream_becomes_an_openai_error_chunk():
    events = decode(b'data: {"error_code":336100,"error_msg":"try again later"}\n\n')
    assert orjson.loads(events[0].data)["error"]["message"] == "try again later"


# --- embeddings -------------------------------------------------------------------------------------

def test_embeddings_request_and_answer():
    body = {"model": "Embedding-V1", "input": ["你好", "世界"], baidu.ACCESS_TOKEN: "24.tok"}
    ctx = call_context(channel(), "embeddings", body)
    request = adapter_for(15).build_request(ctx)
    assert urlsplit(request.url).path == "/rpc/2.0/ai_custom/v1/wenxinworkshop/embeddings/embedding-v1"
    assert sent(request) == {"input": ["你好", "世界"]}
    data, usage = adapter_for(15).parse_response(ctx, body=(FIXTURES / "embeddings.json").read_bytes())
    answer = orjson.loads(data)
    assert answer["object"] == "list" and answer["model"] == "Embedding-V1"
    assert [d["index"] for d in answer["data"]] == [0, 1] and answer["data"][0]["object"] == "embedding"
    assert answer["usage"] == {"prompt_tokens": 12, "total_tokens": 12}
    assert (usage.prompt_tokens, usage.completion_tokens) == (12, 0)
    bge = adapter_for(15).build_request(call_context(channel(), "embeddings", {**body, "model": "bge-large-zh"}))
    assert urlsplit(bge.url).path.endswith("/embeddings/bge_large_zh")


def test_token_ids_are_refused_for_embeddings():
    with pytest.raises(UpstreamError):
        body = {"model": "Embedding-V1", "input": [1, 2], baidu.ACCESS_TOKEN: "t"}
        adapter_for(15).build_request(call_context(channel(), "embeddings", body))


# --- Qianfan v2 -------------------------------------------------------------------------------------

@pytest.mark.parametrize("base", ["", "https://qianfan.baidubce.com/v2/"])
def test_qianfan_v2_speaks_openai_at_v2_with_a_bearer_key(base):
    adapter = adapter_for(47)
    ch = channel(key="bce-v3/ALTAK-abc/def", base_url=base, type_=47)
    request = adapter.build_request(call_context(ch, body={**CHAT, "model": "ernie-4.0-8k"}, stream=True))
    assert request.url == "https://qianfan.baidubce.com/v2/chat/completions"
    assert request.headers["Authorization"] == "Bearer bce-v3/ALTAK-abc/def"
    assert sent(request)["messages"] == CHAT["messages"]
    embed = adapter.build_request(call_context(ch, mode="embeddings", body={"model": "embedding-v1", "input": "x"}))
    assert embed.url == "https://qianfan.baidubce.com/v2/embeddings"
    assert adapter.balance_requests(ch) == []
    assert baidu.QianfanAdapter.label == "Baidu Qianfan v2"
