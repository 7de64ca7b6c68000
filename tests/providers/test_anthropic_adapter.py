"""The Anthropic adapter, bytes in and bytes out, against fixtures in Anthropic's documented wire format."""

import dataclasses

import orjson
import pytest

from providers.adapters import ADAPTERS, adapter_for
from providers.adapters.anthropic import AnthropicAdapter
from providers.adapters.base import ChannelInfo, UpstreamError
from relay.streaming import ChunkGatherer, SSEParser
from tests.providers.mock_anthropic import fixture, sse_events
from tests.providers.vendor_harness import call_context

adapter = AnthropicAdapter()


def channel(base_url="", key="sk-ant-secret", config=None):
    return ChannelInfo(id=1, type=14, name="claude", key=key, base_url=base_url, models=("claude",),
                       model_mapping={}, config=config or {}, system_prompt="", priority=0, weight=0)


def sent(body, stream=False, **kwargs):
    request = adapter.build_request(call_context(channel(**kwargs), body=body, stream=stream))
    return request, orjson.loads(request.body)


def decode(events: list[bytes]):
    """Run SSE bytes through the relay's parser and a fresh decoder, as the relay does."""
    decoder = adapter.stream_decoder(call_context(model="claude-client-name"))
    parser = SSEParser()
    out = []
    for raw in events:
        for event, data in parser.feed(raw):
            out.extend(decoder.feed(event, data))
    for event, data in parser.close():
        out.extend(decoder.feed(event, data))
    return out + decoder.close()


def chunks(events):
    return [orjson.loads(e.data) for e in events if e.data is not None]


USER = [{"role": "user", "content": "Hi"}]


def test_anthropic_is_registered_as_type_14_for_chat_only():
    assert ADAPTERS[14] is AnthropicAdapter and isinstance(adapter_for(14), AnthropicAdapter)
    assert AnthropicAdapter.modes == ("chat",) and AnthropicAdapter.label == "Anthropic Claude"
    assert all(m.startswith("claude-") for m in AnthropicAdapter.default_models)


def test_plain_request_goes_to_messages_with_key_version_and_default_max_tokens():
    request, body = sent({"model": "claude-sonnet-4-5-20250929", "messages": USER})
    assert request.method == "POST" and request.url == "https://api.anthropic.com/v1/messages"
    assert request.headers["x-api-key"] == "sk-ant-secret"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["Content-Type"] == "application/json"
    assert "Authorization" not in request.headers
    assert body == {"model": "claude-sonnet-4-5-20250929", "max_tokens": 4096,
                    "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}


def test_base_url_and_api_version_come_from_the_channel():
    request, _ = sent({"model": "m", "messages": USER}, base_url="https://proxy.example/",
                      config={"api_version": "2024-01-01"})
    assert request.url == "https://proxy.example/v1/messages"
    assert request.headers["anthropic-version"] == "2024-01-01"


def test_sampling_options_are_mapped_and_openai_only_keys_are_dropped():
    _, body = sent({"model": "m", "messages": USER, "max_completion_tokens": 300, "temperature": 1.7,
                    "top_p": 0.9, "stop": "END", "user": "u-1", "stream": True,
                    "stream_options": {"include_usage": True}, "n": 1, "presence_penalty": 0.5}, stream=True)
    assert body["max_tokens"] == 300
    assert body["temperature"] == 1.0  # Anthropic's range ends at 1
    assert "top_p" not in body, "newer Claude models refuse temperature and top_p together"
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "u-1"} and body["stream"] is True
    assert not {"stream_options", "n", "presence_penalty", "max_completion_tokens", "stop"} & set(body)
    _, body = sent({"model": "m", "messages": USER, "max_tokens": 50, "stop": ["a", "b"], "temperature": 0.2})
    assert body["max_tokens"] == 50 and body["stop_sequences"] == ["a", "b"] and body["temperature"] == 0.2
    assert "stream" not in body
    _, body = sent({"model": "m", "messages": USER, "top_p": 0.5, "top_k": 40})
    assert body["top_p"] == 0.5 and body["top_k"] == 40 and "temperature" not in body


@pytest.mark.parametrize("limits, effort, max_tokens, budget", [
    ({}, "high", 4096 + 24576, 24576),  # no limit asked: the default answer on top of the thinking
    ({}, "low", 4096 + 2048, 2048),
    ({"max_tokens": 5000}, "medium", 5000, 4999),  # the thinking counts within the client's limit
    ({"max_completion_tokens": 30000}, "minimal", 30000, 1024),
])
def test_reasoning_effort_becomes_a_thinking_budget_and_drops_what_thinking_refuses(limits, effort, max_tokens,
                                                                                     budget):
    _, body = sent({"model": "claude-3-7-sonnet-20250219", "messages": USER, "reasoning_effort": effort,
                    "temperature": 0.3, "top_p": 0.9, "top_k": 5, **limits})
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == max_tokens
    assert not {"temperature", "top_p", "top_k"} & set(body)


@pytest.mark.parametrize("extra", [
    {"reasoning_effort": "none"}, {"reasoning_effort": "high", "max_tokens": 1000}, {"reasoning_effort": 7},
    {"reasoning_effort": "high", "model": "claude-3-5-sonnet-20241022"},
    {"reasoning_effort": "low", "model": "anthropic.claude-3-haiku-20240307-v1:0"},
])
def test_no_thinking_when_none_is_asked_the_limit_leaves_no_room_or_the_model_cannot(extra):
    _, body = sent({"model": "claude-sonnet-4-5", "messages": USER, "temperature": 0.3, **extra})
    assert "thinking" not in body and body["temperature"] == 0.3


def test_tool_results_go_back_without_thinking_whose_signed_block_chat_did_not_keep():
    call = {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    history = [*USER, {"role": "assistant", "content": None, "tool_calls": [call]}]
    _, body = sent({"model": "claude-sonnet-4-5", "reasoning_effort": "high",
                    "messages": [*history, {"role": "tool", "tool_call_id": "toolu_1", "content": "Sunny"}]})
    assert "thinking" not in body and body["max_tokens"] == 4096
    _, body = sent({"model": "claude-sonnet-4-5", "reasoning_effort": "high",
                    "messages": [*history, {"role": "tool", "tool_call_id": "toolu_1", "content": "Sunny"},
                                 {"role": "assistant", "content": "It is sunny."}, *USER]})
    assert body["thinking"]["type"] == "enabled", "a new turn after the loop thinks again"


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_weather"}}])
def test_a_forced_tool_call_goes_without_thinking_which_anthropic_refuses_with_it(choice):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    _, body = sent({"model": "claude-sonnet-4-5", "messages": USER, "reasoning_effort": "high", "tools": tools,
                    "tool_choice": choice})
    assert "thinking" not in body and body["tool_choice"]["type"] in ("any", "tool")
    _, body = sent({"model": "claude-sonnet-4-5", "messages": USER, "reasoning_effort": "high", "tools": tools,
                    "tool_choice": "auto"})
    assert body["thinking"]["type"] == "enabled"


def test_system_messages_go_on_top_and_neighbours_of_one_role_are_merged():
    _, body = sent({"model": "m", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "one"},
        {"role": "user", "content": [{"type": "text", "text": "two"}]},
        {"role": "assistant", "content": "ok"},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "three"},
    ]})
    assert body["system"] == "Be brief.\nAnswer in French."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
        {"role": "user", "content": [{"type": "text", "text": "three"}]},
    ]


def test_images_are_sent_as_base64_or_url_sources():
    _, body = sent({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "data:image/svg+xml,%3Csvg%3E"}},
    ]}]})
    _, jpeg, remote, svg = body["messages"][0]["content"]
    assert jpeg == {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}}
    assert remote == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}
    assert svg["source"] == {"type": "base64", "media_type": "image/svg+xml", "data": "PHN2Zz4="}


def test_an_image_that_is_not_a_url_is_refused_as_a_client_error():
    with pytest.raises(UpstreamError) as caught:
        sent({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]})
    assert caught.value.status == 400 and not caught.value.retryable


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a place",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}]


@pytest.mark.parametrize("choice, expected", [
    (None, {"type": "auto"}),
    ("auto", {"type": "auto"}),
    ("none", {"type": "none"}),
    ("required", {"type": "any"}),
    ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
])
def test_tools_and_tool_choice_are_converted(choice, expected):
    request = {"model": "m", "messages": USER, "tools": TOOLS}
    if choice is not None:
        request["tool_choice"] = choice
    _, body = sent(request)
    assert body["tools"] == [{"name": "get_weather", "description": "Weather for a place",
                              "input_schema": TOOLS[0]["function"]["parameters"]}]
    assert body["tool_choice"] == expected


def test_parallel_tool_calls_off_disables_parallel_tool_use_and_schemaless_tools_get_an_empty_object():
    _, body = sent({"model": "m", "messages": USER, "parallel_tool_calls": False, "tool_choice": "required",
                    "tools": [{"type": "function", "function": {"name": "now"}}]})
    assert body["tools"] == [{"name": "now", "description": "", "input_schema": {"type": "object", "properties": {}}}]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_tool_call_history_becomes_tool_use_and_tool_result_blocks():
    _, body = sent({"model": "m", "tools": TOOLS, "messages": [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "not json"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "22C"}]},
        {"role": "user", "content": "Thanks, and so?"},
    ]})
    user, assistant, results = body["messages"]
    assert user["role"] == "user"
    assert assistant == {"role": "assistant", "content": [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"location": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}}]}
    assert results == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "18C"}]},
        {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "22C"}]},
        {"type": "text", "text": "Thanks, and so?"}]}


def test_embeddings_are_refused_before_anything_is_sent():
    with pytest.raises(UpstreamError) as caught:
        adapter.build_request(call_context(channel(), mode="embeddings", body={"model": "m", "input": "x"}))
    assert caught.value.status == 400


# --- answers -------------------------------------------------------------------------------------


def test_plain_answer_becomes_a_chat_completion_with_anthropic_usage():
    data, usage = adapter.parse_response(call_context(), body=fixture("chat.json"))
    answer = orjson.loads(data)
    assert answer["id"] == "chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL" and answer["object"] == "chat.completion"
    assert answer["model"] == "claude-sonnet-4-5-20250929" and isinstance(answer["created"], int)
    assert answer["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Hello from Claude."},
                                  "logprobs": None, "finish_reason": "stop"}]
    assert answer["usage"]["prompt_tokens"] == 12 and answer["usage"]["completion_tokens"] == 6
    assert answer["usage"]["total_tokens"] == 18
    assert (usage.prompt_tokens, usage.completion_tokens) == (12, 6)
    assert adapter.completion_text(mode="chat", body=data) == "Hello from Claude."


def test_tool_use_answer_becomes_tool_calls_and_cached_input_counts_as_prompt():
    data, usage = adapter.parse_response(call_context(), body=fixture("tool_call.json"))
    choice = orjson.loads(data)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "I'll check the weather."
    [call] = choice["message"]["tool_calls"]
    assert call["id"] == "toolu_01A09q90qw90lq917835lq9" and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert orjson.loads(call["function"]["arguments"]) == {"location": "San Francisco, CA", "unit": "celsius"}
    assert (usage.prompt_tokens, usage.completion_tokens) == (384 + 20 + 100, 58)
    assert orjson.loads(data)["usage"]["prompt_tokens_details"] == {"cached_tokens": 100, "cache_write_tokens": 20}


@pytest.mark.parametrize("stop_reason, finish", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("refusal", "content_filter"),
])
def test_stop_reasons_map_to_openai_finish_reasons(stop_reason, finish):
    payload = {**orjson.loads(fixture("chat.json")), "stop_reason": stop_reason}
    data, _ = adapter.parse_response(call_context(), body=orjson.dumps(payload))
    assert orjson.loads(data)["choices"][0]["finish_reason"] == finish


def test_only_tool_calls_leave_content_null():
    payload = {**orjson.loads(fixture("tool_call.json"))}
    payload["content"] = payload["content"][1:]
    message = orjson.loads(adapter.parse_response(call_context(),
                                                  body=orjson.dumps(payload))[0])["choices"][0]["message"]
    assert message["content"] is None and message["tool_calls"]


def test_an_answer_that_is_not_json_is_a_retryable_upstream_error():
    with pytest.raises(UpstreamError) as caught:
        adapter.parse_response(call_context(), body=b"<html>gateway</html>")
    assert caught.value.status == 502 and caught.value.retryable


# --- streams -------------------------------------------------------------------------------------


def test_stream_becomes_openai_chunks_with_role_first_finish_and_a_usage_only_chunk_last():
    events = decode(sse_events("chat_stream.sse"))
    data = chunks(events)
    assert data[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" for c in data)
    assert {c["id"] for c in data} == {"chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL"}
    assert {c["model"] for c in data} == {"claude-sonnet-4-5-20250929"}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in data if c["choices"])
    assert text == "Hello from Claude."
    assert data[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert data[-1]["choices"] == [] and data[-1]["usage"]["prompt_tokens"] == 12
    usage_events = [e for e in events if e.usage is not None]
    assert len(usage_events) == 1 and usage_events[0].usage_only
    assert (usage_events[0].usage.prompt_tokens, usage_events[0].usage.completion_tokens) == (12, 6)
    assert "".join(e.text for e in events) == "Hello from Claude."
    assert events[-1].done and events[-1].data is None


def test_tool_call_stream_gathers_into_openai_tool_calls():
    events = decode(sse_events("tool_call_stream.sse"))
    data = chunks(events)
    first_call = next(c for c in data if c["choices"] and "tool_calls" in c["choices"][0]["delta"])
    assert first_call["choices"][0]["delta"]["tool_calls"] == [{
        "index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
        "function": {"name": "get_weather", "arguments": ""}}]
    gatherer = ChunkGatherer(mode="chat", model="x", request_id="r")
    for e in events:
        if e.data is not None:
            gatherer.add(e.data)
    usage = [e.usage for e in events if e.usage][-1]
    answer = orjson.loads(gatherer.result(usage))
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] == "Let me check."
    [call] = choice["message"]["tool_calls"]
    assert call["id"] == "toolu_01T1x1fJ34qAmk2tNTrN7Up6" and call["function"]["name"] == "get_weather"
    assert orjson.loads(call["function"]["arguments"]) == {"location": "San Francisco, CA"}
    assert answer["usage"]["prompt_tokens"] == 472 and answer["usage"]["completion_tokens"] == 89


def test_a_malformed_event_is_dropped_and_the_stream_goes_on():
    events = decode(sse_events("malformed_stream.sse"))
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks(events) if c["choices"])
    assert text == "Hello again."
    assert [(e.usage.prompt_tokens, e.usage.completion_tokens) for e in events if e.usage] == [(12, 4)]


def test_a_stream_cut_off_mid_way_has_text_but_no_usage_so_the_relay_counts_locally():
    events = decode(sse_events("chat_stream.sse")[:5])
    assert "".join(e.text for e in events) == "Hello from"
    assert all(e.usage is None for e in events) and not any(e.done for e in events)


def test_an_error_event_becomes_an_openai_error_chunk_keeping_the_message():
    events = decode(sse_events("error_stream.sse"))
    last = chunks(events)[-1]
    assert last == {"error": {"message": "Overloaded", "type": "overloaded_error", "code": "overloaded_error",
                              "param": None}}


def test_events_are_recognised_by_their_type_when_the_event_line_is_missing_and_unknown_ones_ignored():
    decoder = adapter.stream_decoder(call_context(model="m"))
    assert decoder.feed(b"", b'{"type": "ping"}') == []
    assert decoder.feed(b"", b'{"type": "brand_new_event", "x": 1}') == []
    assert decoder.feed(b"", b"[1, 2]") == []
    [event] = decoder.feed(b"", b'{"type": "content_block_delta", "index": 0, '
                                b'"delta": {"type": "text_delta", "text": "hi"}}')
    assert event.text == "hi" and orjson.loads(event.data)["model"] == "m"


def test_thinking_is_passed_as_reasoning_content():
    decoder = adapter.stream_decoder(call_context(model="m"))
    [event] = decoder.feed(b"content_block_delta", b'{"type": "content_block_delta", "index": 0, '
                                                   b'"delta": {"type": "thinking_delta", "thinking": "hmm"}}')
    assert orjson.loads(event.data)["choices"][0]["delta"] == {"reasoning_content": "hmm"}


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status, name, kind, retryable", [
    (529, "error_overloaded", "overloaded_error", True),
    (429, "error_rate_limit", "rate_limit_error", True),
    (401, "error_authentication", "authentication_error", False),
    (400, "error_invalid_request", "invalid_request_error", False),
])
def test_vendor_errors_keep_their_message_and_type(status, name, kind, retryable):
    err = adapter.parse_error(call_context(), status=status, body=fixture(f"{name}.json"))
    vendor = orjson.loads(fixture(f"{name}.json"))["error"]
    assert (err.status, err.message, err.type, err.code, err.retryable) == (
        status, vendor["message"], kind, kind, retryable)
    assert err.error_body["message"] == vendor["message"] and err.error_body["type"] == kind


def test_an_overloaded_error_is_retryable_whatever_the_status_and_html_errors_are_kept_short():
    assert adapter.parse_error(call_context(), status=400, body=fixture("error_overloaded.json")).retryable
    err = adapter.parse_error(call_context(), status=502, body=b"<html>Bad gateway</html>")
    assert err.retryable and "Bad gateway" in err.message
    assert "sk-ant-secret" not in str(adapter.parse_error(call_context(), status=401,
                                                          body=fixture("error_authentication.json")))


def test_usage_adds_the_cache_to_the_prompt_and_keeps_the_writes_lifetimes():
    from providers.adapters.anthropic import usage_from
    from providers.adapters.base import Usage

    full = {"input_tokens": 50, "cache_creation_input_tokens": 3000, "cache_read_input_tokens": 20000,
            "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
            "output_tokens": 300}
    assert usage_from(full) == Usage(23050, 300, cached_tokens=20000, cache_write_tokens=3000,
                                     cache_write_1h_tokens=2000)
    # Only the split (a proxy that drops the total), or only the total (an older API version).
    split_only = {"input_tokens": 5, "cache_creation": {"ephemeral_5m_input_tokens": 10,
                                                        "ephemeral_1h_input_tokens": 20}, "output_tokens": 1}
    assert usage_from(split_only) == Usage(35, 1, cache_write_tokens=30, cache_write_1h_tokens=20)
    assert usage_from({"input_tokens": 5, "cache_creation_input_tokens": 7}) == Usage(12, 0, cache_write_tokens=7)
    assert usage_from({"input_tokens": None, "cache_creation": "odd"}) == Usage()


# --- the Messages API spoken natively (a Claude client's own request) ---------------------------------


def native_context(body, *, stream=False, headers=(), system_prompt="", config=None, mode="chat"):
    info = ChannelInfo(id=1, type=14, name="claude", key="sk-ant-secret", base_url="", models=("claude",),
                       model_mapping={}, config=config or {}, system_prompt=system_prompt, priority=0, weight=0)
    return dataclasses.replace(call_context(info, mode=mode, body=body, stream=stream), protocol="anthropic",
                               headers=headers)


MESSAGE = {"model": "claude-sonnet-4-5-20250929", "max_tokens": 64,
           "system": [{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}],
           "messages": [{"role": "user", "content": "Say hello"}]}


def test_a_native_request_is_the_clients_body_with_its_anthropic_headers():
    request = adapter.build_native_request(native_context(
        MESSAGE, headers=(("anthropic-version", "2023-06-01"), ("anthropic-beta", "context-1m-2025-08-07"))))
    assert request.url == "https://api.anthropic.com/v1/messages" and request.body == orjson.dumps(MESSAGE)
    assert request.headers["anthropic-beta"] == "context-1m-2025-08-07"
    assert request.headers["x-api-key"] == "sk-ant-secret" and request.headers["Accept"] == "application/json"


def test_an_anthropic_beta_header_sent_twice_goes_as_one_list():
    request = adapter.build_native_request(native_context(
        MESSAGE, headers=(("anthropic-beta", "a-2025"), ("anthropic-beta", "b-2025"))))
    assert request.headers["anthropic-beta"] == "a-2025,b-2025"


def test_a_native_request_without_a_version_takes_the_channels_and_its_system_prompt():
    request = adapter.build_native_request(native_context(MESSAGE, stream=True, system_prompt="Be French.",
                                                          config={"api_version": "2023-01-01"}))
    assert request.headers["anthropic-version"] == "2023-01-01" and "anthropic-beta" not in request.headers
    assert orjson.loads(request.body) == {**MESSAGE, "system": "Be French."}
    assert request.headers["Accept"] == "text/event-stream"


def test_count_tokens_is_asked_of_its_own_endpoint():
    request = adapter.build_native_request(native_context(MESSAGE, mode="count_tokens"))
    assert request.url == "https://api.anthropic.com/v1/messages/count_tokens"
    assert adapter.speaks_natively("anthropic", mode="count_tokens", model="claude")
    assert not adapter.speaks_natively("gemini", mode="chat", model="claude")


def test_a_native_answer_is_read_for_its_usage_with_the_cache_in_the_prompt():
    usage, _ = adapter.read_native_answer(native_context(MESSAGE), body=fixture("thinking.json"))
    assert (usage.prompt_tokens, usage.completion_tokens) == (20 + 1500 + 8000, 30)
    with pytest.raises(UpstreamError) as refused:
        adapter.read_native_answer(native_context(MESSAGE), body=fixture("error_overloaded.json"))
    assert refused.value.retryable


def test_a_native_stream_is_read_for_its_usage_its_words_and_its_start():
    stream = adapter.native_stream(native_context(MESSAGE, stream=True))
    parser = SSEParser()
    events = sse_events("thinking_stream.sse")
    for event, data in parser.feed(b"".join(events[:2])):  # message_start, then the thinking block's start
        stream.read(event, data)
    assert stream.answered and stream.begun and stream.usage is None
    for event, data in parser.feed(b"".join(events[2:])):
        stream.read(event, data)
    assert (stream.usage.prompt_tokens, stream.usage.completion_tokens) == (20 + 1500 + 8000, 30)
    assert "".join(stream.texts) == "The user wants a greeting.Hello from Claude, after some thought."


def test_an_error_event_in_a_native_stream_is_kept_with_its_status():
    stream = adapter.native_stream(native_context(MESSAGE, stream=True))
    for event, data in SSEParser().feed(b"".join(sse_events("early_error_stream.sse"))):
        stream.read(event, data)
    assert not stream.begun and (stream.error.status, stream.error.type) == (529, "overloaded_error")
    assert stream.error.retryable
