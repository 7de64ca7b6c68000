"""The Bedrock adapter, bytes in and bytes out, against fixtures in Bedrock's documented wire format."""

import base64
import datetime

import aiohttp
import orjson
import pytest

from providers.adapters import ADAPTERS, adapter_for, secret_config_fields
from providers.adapters.aws import sigv4
from providers.adapters.base import ChannelInfo, UpstreamError
from providers.adapters.bedrock.adapter import (
    BedrockAdapter,
    BedrockStreamDecoder,
    bedrock_model_id,
    error_for,
    fetch_image,
    inline_remote_images,
)
from relay.streaming import ChunkGatherer
from tests.providers.mock_bedrock import PNG, MockBedrock, corrupt, crc_ok, fixture, frame_of, frames
from tests.providers.vendor_harness import call_context

AK, SK, REGION = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-west-2"
WHEN = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
adapter = BedrockAdapter(now=lambda: WHEN)
USER = [{"role": "user", "content": "Hi"}]


def channel(base_url="", key="", config=None):
    config = {"ak": AK, "sk": SK, "region": REGION} if config is None else config
    return ChannelInfo(id=1, type=33, name="bedrock", key=key, base_url=base_url, models=("claude",),
                       model_mapping={}, config=config, system_prompt="", priority=0, weight=0)


def sent(body, stream=False, **kwargs):
    request = adapter.build_request(call_context(channel(**kwargs), body=body, stream=stream))
    return request, orjson.loads(request.body)


def decode(stream: bytes, piece: int | None = None, decoder=None):
    decoder = decoder or adapter.stream_decoder(call_context(model="claude-client-name"))
    out = []
    step = piece or len(stream) or 1
    for start in range(0, len(stream), step):
        out.extend(decoder.feed_bytes(stream[start:start + step]))
    return out + decoder.close()


def chunks(events):
    return [orjson.loads(e.data) for e in events if e.data is not None]


def content(events):
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks(events) if c.get("choices"))


# --- registration, URL, credentials, signature ----------------------------------------------------


def test_bedrock_is_registered_as_type_33_for_chat_only():
    assert ADAPTERS[33] is BedrockAdapter and isinstance(adapter_for(33), BedrockAdapter)
    assert BedrockAdapter.label == "AWS Bedrock" and BedrockAdapter.modes == ("chat",)
    assert BedrockAdapter.config_fields == ("region", "ak", "sk", "session_token")
    assert BedrockAdapter.secret_config_fields == ("sk", "session_token")
    assert BedrockStreamDecoder.framing == "raw"


@pytest.mark.parametrize(("name", "model_id"), [
    ("claude-3-5-sonnet-20241022", "anthropic.claude-3-5-sonnet-20241022-v2:0"),
    ("claude-3-haiku-20240307", "anthropic.claude-3-haiku-20240307-v1:0"),
    ("claude-3-7-sonnet-20250219", "anthropic.claude-3-7-sonnet-20250219-v1:0"),
    ("claude-2.1", "anthropic.claude-v2:1"),
    ("anthropic.claude-3-opus-20240229-v1:0", "anthropic.claude-3-opus-20240229-v1:0"),
    ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", "us.anthropic.claude-3-7-sonnet-20250219-v1:0"),
    ("apac.anthropic.claude-3-5-sonnet-20241022-v2:0", "apac.anthropic.claude-3-5-sonnet-20241022-v2:0"),
    ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/x",
     "arn:aws:bedrock:us-east-1:123456789012:inference-profile/x"),
    ("my-custom-name", "my-custom-name"),
])
def test_model_names_map_to_bedrock_ids_and_ids_pass_through(name, model_id):
    assert bedrock_model_id(name) == model_id


def test_plain_request_goes_to_the_regional_invoke_url_with_the_colon_encoded():
    request, _ = sent({"model": "claude-3-5-sonnet-20241022", "messages": USER})
    assert request.method == "POST"
    assert str(request.url) == ("https://bedrock-runtime.us-west-2.amazonaws.com/model/"
                                "anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke")
    assert request.url.raw_path.endswith("v2%3A0/invoke"), "the HTTP client must send %3A, the signed form"
    assert request.headers["Content-Type"] == "application/json" and request.headers["Accept"] == "application/json"


def test_stream_request_goes_to_invoke_with_response_stream():
    request, body = sent({"model": "claude-3-haiku-20240307", "messages": USER, "stream": True,
                          "stream_options": {"include_usage": True}}, stream=True)
    assert str(request.url).endswith("/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke-with-response-stream")
    assert request.headers["Accept"] == "application/vnd.amazon.eventstream"
    assert "stream" not in body and "stream_options" not in body


def test_channel_base_url_replaces_the_regional_endpoint():
    request, _ = sent({"model": "claude-3-haiku-20240307", "messages": USER},
                      base_url="https://vpce-0123.bedrock-runtime.us-west-2.vpce.amazonaws.com/")
    assert str(request.url).startswith("https://vpce-0123.bedrock-runtime.us-west-2.vpce.amazonaws.com/model/")


def test_signature_is_sigv4_for_bedrock_and_matches_an_independent_computation():
    request, _ = sent({"model": "claude-3-haiku-20240307", "messages": USER})
    assert request.headers["X-Amz-Date"] == "20250102T030405Z"
    assert request.headers["Authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={AK}/20250102/{REGION}/bedrock/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, Signature=")
    auth = pytest.importorskip("botocore.auth")
    from unittest import mock

    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    theirs = AWSRequest(method="POST", url=str(request.url), data=request.body,
                        headers={"Content-Type": "application/json"})
    with mock.patch.object(auth, "get_current_datetime", return_value=WHEN.replace(tzinfo=None)):
        auth.SigV4Auth(Credentials(AK, SK), "bedrock", REGION).add_auth(theirs)
    assert request.headers["Authorization"] == theirs.headers["Authorization"]


def test_the_clock_is_read_per_request():
    times = iter([WHEN, WHEN + datetime.timedelta(days=1)])
    ticking = BedrockAdapter(now=lambda: next(times))
    first = ticking.build_request(call_context(channel(), body={"model": "m", "messages": USER}))
    second = ticking.build_request(call_context(channel(), body={"model": "m", "messages": USER}))
    assert (first.headers["X-Amz-Date"], second.headers["X-Amz-Date"]) == ("20250102T030405Z", "20250103T030405Z")
    assert BedrockAdapter().now is sigv4.utcnow


def test_credentials_may_come_from_the_key_as_ak_sk_region():
    request, _ = sent({"model": "m", "messages": USER}, key=f"{AK}|{SK}|eu-central-1", config={})
    assert str(request.url).startswith("https://bedrock-runtime.eu-central-1.amazonaws.com/")
    assert f"Credential={AK}/20250102/eu-central-1/bedrock/" in request.headers["Authorization"]
    # The config wins field by field: a region in the config overrides the key's.
    request, _ = sent({"model": "m", "messages": USER}, key=f"{AK}|{SK}", config={"region": "ap-northeast-1"})
    assert "/ap-northeast-1/bedrock/" in request.headers["Authorization"]


def test_missing_credentials_are_reported_without_the_secret():
    with pytest.raises(UpstreamError) as caught:
        sent({"model": "m", "messages": USER}, key=f"{AK}|{SK}", config={})
    assert caught.value.code == "invalid_channel_key" and "region" in caught.value.message
    assert SK not in str(caught.value) and AK not in str(caught.value)


def test_the_secret_never_appears_in_the_request():
    request, _ = sent({"model": "m", "messages": USER})
    assert SK not in repr(request.headers) and SK.encode() not in request.body and SK not in str(request.url)


def test_other_modes_are_refused():
    with pytest.raises(UpstreamError) as caught:
        adapter.build_request(call_context(channel(), mode="embeddings", body={"model": "m", "input": "x"}))
    assert caught.value.status == 400 and not caught.value.retryable


# --- body -----------------------------------------------------------------------------------------


def test_body_is_anthropic_messages_with_the_bedrock_version_and_no_model():
    _, body = sent({"model": "claude-3-haiku-20240307", "user": "u-1",
                    "messages": [{"role": "system", "content": "Be brief."}, *USER]})
    assert body == {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 4096, "system": "Be brief.",
                    "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}


def test_sampling_options_are_mapped():
    _, body = sent({"model": "m", "messages": USER, "max_completion_tokens": 300, "temperature": 0.3,
                    "stop": ["END"], "top_k": 5, "n": 1, "presence_penalty": 0.2})
    assert (body["max_tokens"], body["temperature"], body["stop_sequences"], body["top_k"]) == (300, 0.3, ["END"], 5)
    assert not {"n", "presence_penalty", "max_completion_tokens", "stop"} & set(body)
    _, body = sent({"model": "m", "messages": USER, "max_tokens": 20, "top_p": 0.5, "stop": "X"})
    assert (body["max_tokens"], body["top_p"], body["stop_sequences"]) == (20, 0.5, ["X"])


def test_multi_turn_history_with_tools_and_tool_results():
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                               "parameters": {"type": "object", "properties": {}}}}]
    choice = {"type": "function", "function": {"name": "get_weather"}}
    _, body = sent({"model": "m", "tools": tools, "tool_choice": choice,
                    "messages": [
                        {"role": "user", "content": "Weather in Paris?"},
                        {"role": "assistant", "content": None, "tool_calls": [{"id": "toolu_1", "type": "function",
                         "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}}]},
                        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
                        {"role": "assistant", "content": "It is 18C."},
                        {"role": "user", "content": "Thanks"}]})
    assert body["tools"] == [{"name": "get_weather", "description": "Weather",
                              "input_schema": {"type": "object", "properties": {}}}]
    assert body["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user", "assistant", "user"]
    assert body["messages"][1]["content"] == [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                               "input": {"location": "Paris"}}]
    assert body["messages"][2]["content"][0]["type"] == "tool_result"
    assert body["messages"][2]["content"][0]["tool_use_id"] == "toolu_1"


def test_data_url_images_become_base64_blocks():
    data = base64.b64encode(PNG).decode()
    _, body = sent({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}]}]})
    assert body["messages"][0]["content"][1] == {"type": "image", "source": {"type": "base64",
                                                                             "media_type": "image/png", "data": data}}


def test_an_image_url_left_unfetched_is_refused_rather_than_sent():
    with pytest.raises(UpstreamError) as caught:
        sent({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]})
    assert caught.value.status == 400 and caught.value.code == "invalid_image"


# --- open: remote images are fetched and inlined first -----------------------------------------------


@pytest.fixture(scope="module")
def images():
    server = MockBedrock(access_key=AK, secret_key=SK, region=REGION).start()
    yield server
    server.stop()


async def test_inlining_does_no_io_without_remote_images():
    body = {"model": "m", "messages": USER}
    assert await inline_remote_images(body, None) is body


async def test_remote_images_are_inlined_without_touching_the_original(images):
    part = {"type": "image_url", "image_url": {"url": f"{images.url}/images/pixel.png"}}
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "?"}, part]}]}
    async with aiohttp.ClientSession() as session:
        prepared = await inline_remote_images(body, session)
    assert body["messages"][0]["content"][1] is part, "the plan's body is reused on failover"
    url = prepared["messages"][0]["content"][1]["image_url"]["url"]
    assert url == "data:image/png;base64," + base64.b64encode(PNG).decode()
    _, sent_body = sent(prepared)
    assert sent_body["messages"][0]["content"][1]["source"]["type"] == "base64"


@pytest.mark.parametrize(("name", "code", "words"), [
    ("huge.png", "image_too_large", "larger than 20 MB"),
    ("page.html", "invalid_image_url", "is not an image"),
    ("missing.png", "invalid_image_url", "HTTP 404"),
])
async def test_unusable_remote_images_are_refused_clearly(images, name, code, words):
    body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"{images.url}/images/{name}"}}]}]}
    async with aiohttp.ClientSession() as session:
        with pytest.raises(UpstreamError) as caught:
            await inline_remote_images(body, session)
    assert caught.value.status == 400 and caught.value.code == code and words in caught.value.message
    assert not caught.value.retryable


async def test_an_image_over_the_limit_is_refused_while_reading(images):
    async with aiohttp.ClientSession() as session:
        assert (await fetch_image(session, f"{images.url}/images/pixel.png")).startswith("data:image/png;base64,")
        with pytest.raises(UpstreamError, match="larger than"):
            await fetch_image(session, f"{images.url}/images/pixel.png", limit=10)


async def test_an_unreachable_image_is_refused():
    async with aiohttp.ClientSession() as session:
        with pytest.raises(UpstreamError) as caught:
            await fetch_image(session, "http://127.0.0.1:9/cat.png")
    assert caught.value.status == 400 and "Could not fetch the image" in caught.value.message


# --- answers --------------------------------------------------------------------------------------


def test_plain_answer_becomes_a_chat_completion_with_bedrock_usage():
    data, usage = adapter.parse_response(call_context(), body=fixture("chat.json"))
    answer = orjson.loads(data)
    assert answer["object"] == "chat.completion" and answer["id"] == "chatcmpl-msg_bdrk_01Fq7ZtN2u8LxWq3hKc9yV4R"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "Hello from Claude on Bedrock."}
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"]["prompt_tokens"] == 14 and answer["usage"]["completion_tokens"] == 9
    assert (usage.prompt_tokens, usage.completion_tokens) == (14, 9)
    assert adapter.completion_text(mode="chat", body=data) == "Hello from Claude on Bedrock."


def test_tool_use_answer_becomes_tool_calls():
    data, usage = adapter.parse_response(call_context(), body=fixture("tool_call.json"))
    choice = orjson.loads(data)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me look up the weather."
    [call] = choice["message"]["tool_calls"]
    assert call["id"] == "toolu_bdrk_01A7w9ZcK3mQ5vXy2LpN8dRt" and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert orjson.loads(call["function"]["arguments"]) == {"location": "Seattle, WA", "unit": "celsius"}
    assert (usage.prompt_tokens, usage.completion_tokens) == (402, 71)


def test_max_tokens_stop_becomes_length():
    data, _ = adapter.parse_response(call_context(), body=fixture("max_tokens.json"))
    assert orjson.loads(data)["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"message": "odd"}'])
def test_an_answer_that_is_not_a_message_is_a_retryable_upstream_error(body):
    with pytest.raises(UpstreamError) as caught:
        adapter.parse_response(call_context(), body=body)
    assert caught.value.status == 502 and caught.value.retryable


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "name", "kind", "type_", "retryable"), [
    (429, "error_throttling", "ThrottlingException", "rate_limit_error", True),
    (429, "error_model_not_ready", "ModelNotReadyException", "rate_limit_error", True),
    (503, "error_service_unavailable", "ServiceUnavailableException", "upstream_error", True),
    (403, "error_access_denied", "AccessDeniedException", "permission_error", False),
    (403, "error_unrecognized_client", "UnrecognizedClientException", "authentication_error", False),
    (400, "error_validation", "ValidationException", "invalid_request_error", False),
])
def test_bedrock_errors_keep_their_message_and_map_their_kind(status, name, kind, type_, retryable):
    body = fixture(f"{name}.json")
    err = adapter.parse_error(call_context(), status=status, body=body)
    assert err.message == orjson.loads(body)["message"]
    assert (err.status, err.code, err.type, err.retryable) == (status, kind, type_, retryable)
    assert err.error_body == {"message": err.message, "type": type_, "code": kind, "param": None}
    # With the x-amzn-ErrorType header (what a relay that passes headers would give), the same.
    assert error_for(status, body, f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/").code == kind


def test_an_unknown_error_body_falls_back_to_the_status():
    err = adapter.parse_error(call_context(), status=502, body=b"<html>Bad Gateway</html>")
    # An HTML page is told as a short plain message, never passed on whole.
    assert err.message == "AWS Bedrock answered HTTP 502: Bad Gateway" and err.retryable
    err = adapter.parse_error(call_context(), status=418, body=b"")
    assert "418" in err.message and not err.retryable


# --- streams --------------------------------------------------------------------------------------


def test_the_fixture_frames_are_valid_event_stream_frames():
    assert all(crc_ok(f) for f in frames("chat_stream.ndjson") + frames("malformed_stream.ndjson"))


def test_stream_becomes_openai_chunks_with_usage_last():
    events = decode(b"".join(frames("chat_stream.ndjson")))
    data = chunks(events)
    assert data[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "chatcmpl-msg_bdrk_01Fq7ZtN2u8LxWq3hKc9yV4R"
               for c in data)
    assert content(events) == "Hello from Claude on Bedrock."
    assert data[-2]["choices"][0]["finish_reason"] == "stop"
    assert data[-1]["choices"] == [] and data[-1]["usage"]["total_tokens"] == 23
    usage_events = [e for e in events if e.usage is not None]
    assert len(usage_events) == 1 and usage_events[0].usage_only
    assert (usage_events[0].usage.prompt_tokens, usage_events[0].usage.completion_tokens) == (14, 9)
    assert events[-1].done
    assert "".join(e.text for e in events) == "Hello from Claude on Bedrock."


def test_every_chunk_boundary_gives_the_same_client_stream():
    def seen(events):  # `created` is the clock's: a run may cross a second
        return [({**orjson.loads(e.data), "created": 0} if e.data else None, e.usage, e.text, e.done) for e in events]

    stream = b"".join(frames("chat_stream.ndjson")[:4])
    expected = seen(decode(stream))
    for cut in range(len(stream) + 1):
        decoder = adapter.stream_decoder(call_context(model="claude-client-name"))
        events = decoder.feed_bytes(stream[:cut]) + decoder.feed_bytes(stream[cut:]) + decoder.close()
        assert seen(events) == expected, cut
    whole = b"".join(frames("chat_stream.ndjson"))
    assert content(decode(whole, piece=1)) == content(decode(whole, piece=7)) == "Hello from Claude on Bedrock."


def test_tool_call_stream_becomes_tool_call_chunks():
    events = decode(b"".join(frames("tool_call_stream.ndjson")), piece=13)
    data = chunks(events)
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in data
             if c.get("choices") and "tool_calls" in c["choices"][0]["delta"]]
    assert calls[0] == {"index": 0, "id": "toolu_bdrk_01A7w9ZcK3mQ5vXy2LpN8dRt", "type": "function",
                        "function": {"name": "get_weather", "arguments": ""}}
    assert orjson.loads("".join(c["function"]["arguments"] for c in calls)) == {"location": "Seattle, WA",
                                                                                 "unit": "celsius"}
    assert [c["choices"][0]["finish_reason"] for c in data if c.get("choices")][-1] == "tool_calls"
    assert [e.usage for e in events if e.usage][-1].completion_tokens == 71
    gatherer = ChunkGatherer(mode="chat", model="m", request_id="r")
    for e in events:
        if e.data and not e.done:
            gatherer.add(e.data)
    gathered = orjson.loads(gatherer.result(None))["choices"][0]
    assert gathered["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert gathered["message"]["content"] == "Let me look up the weather."


def test_an_exception_frame_becomes_an_openai_error_chunk():
    events = decode(b"".join(frames("error_stream.ndjson")))
    assert content(events) == "Hello"
    assert chunks(events)[-1] == {"error": {"message": "The model stream was interrupted: an internal error occurred.",
                                            "type": "upstream_error", "code": "ModelStreamErrorException",
                                            "param": None}}
    throttled = frame_of({"headers": {":message-type": "exception", ":exception-type": "throttlingException"},
                          "payload": {"message": "Too many requests"}})
    assert chunks(decode(throttled)) == [{"error": {"message": "Too many requests", "type": "rate_limit_error",
                                                    "code": "ThrottlingException", "param": None}}]
    generic = frame_of({"headers": {":message-type": "error", ":error-code": "InternalFailure",
                                    ":error-message": "Something broke"}, "payload_text": ""})
    assert chunks(decode(generic))[0]["error"]["message"] == "Something broke"


def test_malformed_events_are_dropped_and_the_stream_goes_on():
    events = decode(b"".join(frames("malformed_stream.ndjson")), piece=5)
    assert content(events) == "Hello again."
    assert [e.usage for e in events if e.usage][-1].completion_tokens == 4
    assert not any("error" in c for c in chunks(events))


def test_a_corrupt_frame_ends_the_stream_with_one_error():
    stream = frames("chat_stream.ndjson")
    stream[3] = corrupt(stream[3])
    events = decode(b"".join(stream), piece=11)
    errors = [c for c in chunks(events) if "error" in c]
    assert len(errors) == 1 and errors[0]["error"]["code"] == "bad_event_stream"
    assert "CRC" in errors[0]["error"]["message"]
    assert content(events) == "Hello", "what arrived before the bad frame still counts"
    assert not any(e.usage for e in events)


def test_a_stream_cut_mid_frame_ends_quietly_without_usage():
    stream = b"".join(frames("chat_stream.ndjson"))
    events = decode(stream[:len(stream) // 2])
    assert content(events).startswith("Hello") and not any(e.usage for e in events)
    assert not any(e.done for e in events)


def test_bedrock_invocation_metrics_are_the_usage_billed():
    lines = [frame_of(orjson.loads(line)) for line in fixture("chat_stream.ndjson").splitlines()]
    delta = {"headers": {":event-type": "chunk", ":message-type": "event"},
             "chunk": {"type": "message_delta", "delta": {"stop_reason": "end_turn"}}}
    events = decode(b"".join([*lines[:6], frame_of(delta), lines[7]]))
    usage = [e for e in events if e.usage and e.usage.completion_tokens]
    assert usage and usage[-1].usage_only
    assert (usage[-1].usage.prompt_tokens, usage[-1].usage.completion_tokens) == (14, 9)


def test_cached_prompt_tokens_from_the_metrics_count_as_prompt():
    lines = frames("chat_stream.ndjson")
    stop = {"headers": {":event-type": "chunk", ":message-type": "event"},
            "chunk": {"type": "message_stop", "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": 4, "outputTokenCount": 9, "cacheReadInputTokenCount": 100,
                "cacheWriteInputTokenCount": 10}}}
    events = decode(b"".join([*lines[:7], frame_of(stop)]))
    [usage_chunk] = [c for c in chunks(events) if c.get("usage")]
    assert usage_chunk["usage"]["prompt_tokens"] == 114 and usage_chunk["usage"]["completion_tokens"] == 9
    assert usage_chunk["usage"]["prompt_tokens_details"] == {"cached_tokens": 100, "cache_write_tokens": 10}


def test_a_stream_cut_before_message_stop_still_bills_message_delta_usage():
    events = decode(b"".join(frames("chat_stream.ndjson")[:7]))
    [usage] = [e.usage for e in events if e.usage]
    assert (usage.prompt_tokens, usage.completion_tokens) == (14, 9)
    assert chunks(events)[-1]["choices"] == []


def test_only_an_event_stream_is_accepted_as_a_stream():
    decoder = adapter.stream_decoder(call_context(model="m"))
    assert decoder.accepts("application/vnd.amazon.eventstream")
    assert not decoder.accepts("application/json")


def test_a_relay_without_raw_framing_gets_one_clear_error_not_garbage():
    decoder = adapter.stream_decoder(call_context(model="m"))
    first = decoder.feed(b"", b"\x00\x00\x01binary")
    assert decoder.feed(b"", b"more") == []
    assert orjson.loads(first[0].data)["error"]["code"] == "unsupported_stream_framing"


# --- every other model: the Converse API ----------------------------------------------------------

LLAMA = "meta.llama3-1-70b-instruct-v1:0"


def converse_decode(name: str, piece: int | None = None, model: str = LLAMA):
    return decode(b"".join(frames(name)), piece=piece, decoder=adapter.stream_decoder(call_context(model=model)))


@pytest.mark.parametrize(("model", "path"), [
    (LLAMA, "/model/meta.llama3-1-70b-instruct-v1%3A0/converse"),
    ("llama3-8b-8192", "/model/meta.llama3-8b-instruct-v1%3A0/converse"),  # one-api's name
    ("amazon.nova-pro-v1:0", "/model/amazon.nova-pro-v1%3A0/converse"),
    ("us.amazon.nova-lite-v1:0", "/model/us.amazon.nova-lite-v1%3A0/converse"),
    ("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3",
     "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fa1b2c3/converse"),
])
def test_models_other_than_claude_go_to_converse(model, path):
    request, _ = sent({"model": model, "messages": USER})
    assert str(request.url) == f"https://bedrock-runtime.{REGION}.amazonaws.com{path}"
    request, _ = sent({"model": model, "messages": USER}, stream=True)
    assert str(request.url).endswith(path + "-stream")
    assert request.headers["Accept"] == "application/vnd.amazon.eventstream"


def test_the_converse_body_has_system_turns_and_inference_config():
    _, body = sent({"model": LLAMA, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."}, {"role": "user", "content": [{"type": "text", "text": "Again"}]},
    ], "max_tokens": 300, "temperature": 1.5, "top_p": 0.9, "stop": "END", "n": 1, "user": "u1"})
    assert body == {"system": [{"text": "Be brief."}],
                    "messages": [{"role": "user", "content": [{"text": "Hi"}]},
                                 {"role": "assistant", "content": [{"text": "Hello."}]},
                                 {"role": "user", "content": [{"text": "Again"}]}],
                    "inferenceConfig": {"maxTokens": 300, "temperature": 1.0, "topP": 0.9, "stopSequences": ["END"]}}


def test_converse_sends_no_max_tokens_the_client_did_not_ask_for():
    # Claude's InvokeModel needs max_tokens (4096 by default); Llama 3 8B refuses more than 2048.
    _, body = sent({"model": "llama3-8b-8192", "messages": USER})
    assert body == {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}


def test_converse_tools_history_and_choice():
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                               "parameters": {"type": "object", "properties": {"q": {}}}}},
             {"type": "function", "function": {"name": "get_time"}}]
    history = [{"role": "user", "content": "Weather in Paris?"},
               {"role": "assistant", "content": None, "tool_calls": [
                   {"id": "tooluse_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"q": "Paris"}'}}]},
               {"role": "tool", "tool_call_id": "tooluse_1", "content": "18C"}]
    _, body = sent({"model": LLAMA, "messages": history, "tools": tools,
                    "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})
    assert body["messages"] == [
        {"role": "user", "content": [{"text": "Weather in Paris?"}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather",
                                                       "input": {"q": "Paris"}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "18C"}]}}]}]
    assert body["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "get_weather", "description": "Weather",
                                "inputSchema": {"json": {"type": "object", "properties": {"q": {}}}}}},
                  {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object", "properties": {}}}}}],
        "toolChoice": {"tool": {"name": "get_weather"}}}
    _, body = sent({"model": LLAMA, "messages": USER, "tools": tools, "tool_choice": "required"})
    assert body["toolConfig"]["toolChoice"] == {"any": {}}
    _, body = sent({"model": LLAMA, "messages": USER, "tools": tools})
    assert "toolChoice" not in body["toolConfig"], "auto is the default, and only some models take toolChoice"
    _, body = sent({"model": LLAMA, "messages": USER, "tools": tools, "tool_choice": "none"})
    assert "toolConfig" not in body
    _, body = sent({"model": LLAMA, "messages": history, "tools": tools, "tool_choice": "none"})
    assert "toolChoice" not in body["toolConfig"], "Bedrock wants the tools declared when the history uses them"


def test_converse_images_are_inline_bytes_with_their_format():
    _, body = sent({"model": "amazon.nova-lite-v1:0", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is it?"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}]}]})
    assert body["messages"][0]["content"] == [{"text": "What is it?"},
                                              {"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}}]
    with pytest.raises(UpstreamError) as caught:
        sent({"model": "amazon.nova-lite-v1:0", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]})
    assert caught.value.code == "invalid_image"


def test_a_converse_answer_becomes_a_chat_completion_with_its_usage():
    data, usage = adapter.parse_response(call_context(model="llama3-8b-8192"), body=fixture("converse_chat.json"))
    answer = orjson.loads(data)
    assert answer["object"] == "chat.completion" and answer["model"] == "llama3-8b-8192"
    assert answer["choices"] == [{"index": 0, "message": {"role": "assistant",
                                                          "content": "Hello from Llama on Bedrock."},
                                  "logprobs": None, "finish_reason": "stop"}]
    assert (usage.prompt_tokens, usage.completion_tokens) == (21, 8)
    assert answer["usage"]["total_tokens"] == 29


def test_a_converse_tool_use_becomes_tool_calls():
    data, usage = adapter.parse_response(call_context(model=LLAMA), body=fixture("converse_tool_call.json"))
    choice = orjson.loads(data)["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] == "Let me check the weather."
    assert choice["message"]["tool_calls"] == [{"id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "type": "function",
                                                "function": {"name": "get_weather",
                                                             "arguments": '{"location":"Paris"}'}}]
    assert (usage.prompt_tokens, usage.completion_tokens) == (412, 31)


@pytest.mark.parametrize(("reason", "finish"), [("max_tokens", "length"), ("guardrail_intervened", "content_filter"),
                                                ("content_filtered", "content_filter"), ("stop_sequence", "stop")])
def test_converse_stop_reasons_map_to_openai_finish_reasons(reason, finish):
    body = orjson.dumps({**orjson.loads(fixture("converse_chat.json")), "stopReason": reason})
    data, _ = adapter.parse_response(call_context(model=LLAMA), body=body)
    assert orjson.loads(data)["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize("piece", [None, 7])
def test_a_converse_stream_becomes_openai_chunks_with_usage_last(piece):
    events = converse_decode("converse_chat_stream.ndjson", piece)
    assert content(events) == "Hello from Llama on Bedrock."
    data = chunks(events)
    assert data[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["model"] == LLAMA and c["object"] == "chat.completion.chunk" for c in data)
    assert [c["choices"][0]["finish_reason"] for c in data if c["choices"]][-1] == "stop"
    assert data[-1]["choices"] == [] and events[-1].usage_only
    assert (events[-1].usage.prompt_tokens, events[-1].usage.completion_tokens) == (21, 8)


def test_a_converse_tool_call_stream_becomes_tool_call_deltas():
    events = converse_decode("converse_tool_call_stream.ndjson", 9)
    data = chunks(events)
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in data
             if c.get("choices") and "tool_calls" in c["choices"][0]["delta"]]
    assert calls[0] == {"index": 0, "id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "type": "function",
                        "function": {"name": "get_weather", "arguments": ""}}
    assert orjson.loads("".join(c["function"]["arguments"] for c in calls)) == {"location": "Paris"}
    assert content(events) == "Let me check."
    assert [c["choices"][0]["finish_reason"] for c in data if c.get("choices")][-1] == "tool_calls"
    assert [e.usage for e in events if e.usage][-1].prompt_tokens == 412


def test_a_converse_stream_cut_before_its_usage_still_finishes_without_usage():
    events = decode(b"".join(frames("converse_chat_stream.ndjson")[:6]),
                    decoder=adapter.stream_decoder(call_context(model=LLAMA)))
    assert content(events) == "Hello from Llama on Bedrock."
    assert chunks(events)[-1]["choices"][0]["finish_reason"] == "stop"
    assert not any(e.usage for e in events), "the relay counts a cut stream itself"


def test_a_converse_exception_and_a_garbled_event_mid_stream():
    lines = frames("converse_chat_stream.ndjson")
    garbled = frame_of({"headers": {":event-type": "contentBlockDelta", ":message-type": "event"},
                        "payload_text": "{not json"})
    throttled = frame_of({"headers": {":message-type": "exception", ":exception-type": "throttlingException"},
                          "payload": {"message": "Too many tokens, please wait before trying again."}})
    events = decode(b"".join([*lines[:2], garbled, lines[2], throttled]),
                    decoder=adapter.stream_decoder(call_context(model=LLAMA)))
    assert content(events) == "Hello from Llama"
    assert chunks(events)[-1] == {"error": {"message": "Too many tokens, please wait before trying again.",
                                            "type": "rate_limit_error", "code": "ThrottlingException",
                                            "param": None}}


def test_a_session_token_is_sent_and_signed():
    request, _ = sent({"model": LLAMA, "messages": USER},
                      config={"ak": AK, "sk": SK, "region": REGION, "session_token": "FwoGZXIvYXdzEBYaDH"})
    assert request.headers["X-Amz-Security-Token"] == "FwoGZXIvYXdzEBYaDH"
    assert "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token," in request.headers["Authorization"]
    request, _ = sent({"model": LLAMA, "messages": USER})
    assert "X-Amz-Security-Token" not in request.headers
    assert "session_token" in secret_config_fields(), "kept write-only, like the secret key"


def test_parse_error_reads_the_error_type_from_the_header():
    err = adapter.parse_error(call_context(model=LLAMA), status=400, body=b'{"message": "Too many requests"}',
                              headers={"X-Amzn-ErrorType": "ThrottlingException:http://internal.amazon.com/coral/"})
    assert (err.code, err.type, err.retryable) == ("ThrottlingException", "rate_limit_error", True)
    err = adapter.parse_error(call_context(model=LLAMA), status=400, body=b'{"message": "Bad input"}')
    assert (err.code, err.type, err.retryable) == ("ValidationException", "invalid_request_error", False)
