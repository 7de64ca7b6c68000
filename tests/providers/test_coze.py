"""The Coze adapter, bytes in and bytes out: what we send to Coze and what the client gets back."""

import orjson
import pytest

from providers.adapters import ADAPTERS, adapter_for
from providers.adapters.base import ChannelInfo, UpstreamError, Usage
from providers.adapters.coze import CozeAdapter
from relay.streaming import ChunkGatherer, SSEParser
from tests.providers.mock_coze import fixture
from tests.providers.vendor_harness import call_context

KEY = "pat_secret_coze_token"
adapter = CozeAdapter()


def channel(base_url="", config=None):
    return ChannelInfo(id=1, type=34, name="coze", key=KEY, base_url=base_url, models=("bot-123",),
                       model_mapping={}, config=config or {}, system_prompt="", priority=0, weight=0)


def build(body, config=None, base_url=""):
    request = adapter.build_request(call_context(channel(base_url, config), body=body, stream=True))
    return request, orjson.loads(request.body)


def decode(name_or_bytes, model="bot-7379462189365198898"):
    """Run a fixture stream through the SSE parser and a fresh decoder: the events, and the chunks."""
    raw = fixture(name_or_bytes) if isinstance(name_or_bytes, str) else name_or_bytes
    decoder = adapter.stream_decoder(call_context(model=model))
    parser = SSEParser()
    events = []
    for event, data in [*parser.feed(raw), *parser.close()]:
        events.extend(decoder.feed(event, data))
    events.extend(decoder.close())
    return events


def chunks(events):
    return [orjson.loads(e.data) for e in events if e.data is not None]


def text_of(chunk_list):
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunk_list if c.get("choices"))


CHAT = {"model": "bot-7379462189365198898", "messages": [{"role": "user", "content": "Say hello"}],
        "stream": True, "stream_options": {"include_usage": True}}


# --- registry and request -------------------------------------------------------------------

def test_coze_is_registered_as_type_34_chat_only_and_stream_only():
    assert ADAPTERS[34] is CozeAdapter and isinstance(adapter_for(34), CozeAdapter)
    assert CozeAdapter.label == "Coze" and CozeAdapter.default_base_url == "https://api.coze.com"
    assert CozeAdapter.config_fields == ("user_id", "api_version")
    assert CozeAdapter.modes == ("chat",) and CozeAdapter.stream_only


def test_v3_request_calls_the_bot_named_by_the_model_with_the_token_as_bearer():
    request, body = build(CHAT)
    assert request.method == "POST" and request.url == "https://api.coze.com/v3/chat"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Content-Type"] == "application/json"
    assert body == {
        "bot_id": "7379462189365198898", "user_id": "oneapi", "stream": True, "auto_save_history": False,
        "additional_messages": [{"role": "user", "type": "question", "content": "Say hello", "content_type": "text"}],
    }


def test_a_bare_bot_id_works_and_the_china_base_url_and_user_id_come_from_the_channel():
    request, body = build({**CHAT, "model": "7379462189365198898"}, config={"user_id": "u-42"},
                          base_url="https://api.coze.cn/")
    assert request.url == "https://api.coze.cn/v3/chat"
    assert body["bot_id"] == "7379462189365198898" and body["user_id"] == "u-42"


def test_non_streaming_client_still_gets_a_streamed_upstream_request():
    request = adapter.build_request(call_context(channel(), body={**CHAT, "stream": False}, stream=True))
    assert orjson.loads(request.body)["stream"] is True


def test_history_keeps_turns_and_system_text_goes_before_the_first_user_message():
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": [{"type": "text", "text": "How "}, {"type": "text", "text": "are you?"}]},
    ]
    _, body = build({**CHAT, "messages": messages, "max_tokens": 50, "temperature": 0.2, "top_p": 0.5,
                     "stop": ["x"], "tools": [{"type": "function", "function": {"name": "f"}}]})
    assert body["additional_messages"] == [
        {"role": "user", "type": "question", "content": "You are terse.\n\nHi", "content_type": "text"},
        {"role": "assistant", "type": "answer", "content": "Hello.", "content_type": "text"},
        {"role": "user", "type": "question", "content": "How are you?", "content_type": "text"},
    ]
    # The bot owns its model settings and plugins: sampling parameters and tools are not sent.
    assert set(body) == {"bot_id", "user_id", "stream", "auto_save_history", "additional_messages"}


def test_a_lone_system_message_becomes_a_user_message():
    _, body = build({**CHAT, "messages": [{"role": "system", "content": "Introduce yourself."}]})
    assert body["additional_messages"] == [
        {"role": "user", "type": "question", "content": "Introduce yourself.", "content_type": "text"}]


def test_image_urls_go_as_an_object_string_with_file_url():
    content = [{"type": "text", "text": "What is this?"},
               {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    _, body = build({**CHAT, "messages": [{"role": "system", "content": "Be brief."},
                                          {"role": "user", "content": content}]})
    [message] = body["additional_messages"]
    assert message["content_type"] == "object_string"
    assert orjson.loads(message["content"]) == [
        {"type": "text", "text": "Be brief.\n\n"}, {"type": "text", "text": "What is this?"},
        {"type": "image", "file_url": "https://example.com/cat.png"}]


def test_inline_images_are_refused_with_a_clear_400():
    content = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
    with pytest.raises(UpstreamError) as caught:
        build({**CHAT, "messages": [{"role": "user", "content": content}]})
    err = caught.value
    assert err.status == 400 and not err.retryable and err.code == "unsupported_image"
    assert "data:" in err.message and KEY not in err.message


def test_other_modes_are_refused():
    with pytest.raises(UpstreamError) as caught:
        adapter.build_request(call_context(channel(), mode="embeddings", body={"model": "bot-1", "input": "x"}))
    assert caught.value.status == 400


def test_v2_request_sends_the_last_user_message_as_query_and_the_rest_as_history():
    messages = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"}]
    request, body = build({**CHAT, "model": "bot-99", "messages": messages},
                          config={"api_version": "v2", "user_id": "u-7"})
    assert request.url == "https://api.coze.com/open_api/v2/chat"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert body == {
        "bot_id": "99", "user": "u-7", "query": "Bye", "stream": True,
        "chat_history": [{"role": "user", "content": "Be kind.\n\nHi", "content_type": "text"},
                         {"role": "assistant", "content": "Hello.", "content_type": "text"}],
    }


def test_v2_refuses_images():
    content = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    with pytest.raises(UpstreamError) as caught:
        build({**CHAT, "messages": [{"role": "user", "content": content}]}, config={"api_version": "v2"})
    assert caught.value.status == 400


# --- v3 stream ------------------------------------------------------------------------------

def test_v3_stream_becomes_openai_chunks_with_coze_usage():
    events = decode("v3_stream.sse")
    got = chunks(events)
    assert text_of(got) == "Hello from the Coze bot."  # the completed message is not repeated
    assert got[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Hello"}
    assert all(c["id"] == "chatcmpl-7382159487131697202" for c in got)
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "bot-7379462189365198898" for c in got)
    finish = [c for c in got if c["choices"] and c["choices"][0]["finish_reason"]]
    assert [c["choices"][0]["finish_reason"] for c in finish] == ["stop"]
    usage_events = [e for e in events if e.usage is not None]
    assert len(usage_events) == 1 and usage_events[0].usage_only
    assert usage_events[0].usage == Usage(prompt_tokens=614, completion_tokens=19)
    assert got[-1]["choices"] == [] and got[-1]["usage"] == {"prompt_tokens": 614, "completion_tokens": 19,
                                                             "total_tokens": 633}
    assert events[-1].done
    assert "".join(e.text for e in events) == "Hello from the Coze bot."


def test_follow_up_verbose_and_plugin_messages_are_not_shown_but_a_completed_only_answer_is():
    got = chunks(decode("v3_stream_plugin.sse"))
    assert text_of(got) == "It is 21 degrees in Paris."
    assert "weather" not in orjson.dumps(got).decode()


def test_the_gathered_v3_stream_is_one_chat_completion():
    gatherer = ChunkGatherer(mode="chat", model="bot-1", request_id="r1")
    events = decode("v3_stream.sse")
    for event in events:
        if event.data is not None:
            gatherer.add(event.data)
    answer = orjson.loads(gatherer.result(events[-2].usage))
    assert answer["id"] == "chatcmpl-7382159487131697202" and answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "Hello from the Coze bot."}
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"] == {"prompt_tokens": 614, "completion_tokens": 19, "total_tokens": 633}


def test_a_chat_that_fails_before_answering_is_an_upstream_error_keeping_coze_message():
    with pytest.raises(UpstreamError) as caught:
        decode("v3_stream_failed.sse")
    err = caught.value
    assert err.status == 429 and err.retryable and err.code == "rate_limit_exceeded"
    assert "The requests exceed the limit" in err.message and "4013" in err.message


def test_a_chat_that_fails_mid_answer_keeps_the_text_and_ends_with_an_error_chunk():
    events = decode("v3_stream_failed_midway.sse")
    got = chunks(events)
    assert text_of(got) == "Partial answer"
    assert got[-1]["error"]["message"].startswith("Internal error, please retry.")
    assert got[-1]["error"]["code"] == "bad_response_status_code"


def test_an_error_event_is_an_upstream_error():
    with pytest.raises(UpstreamError) as caught:
        decode("v3_stream_error_event.sse")
    assert caught.value.status == 400 and "additional_messages is empty" in caught.value.message


def test_requires_action_ends_the_chat_with_a_clear_error():
    with pytest.raises(UpstreamError) as caught:
        decode("v3_stream_requires_action.sse")
    assert "client-side plugin" in caught.value.message


def test_a_malformed_event_is_dropped_and_the_stream_goes_on():
    events = decode("v3_stream_malformed.sse")
    assert text_of(chunks(events)) == "Still here."
    assert [e.usage for e in events if e.usage] == [Usage(prompt_tokens=26, completion_tokens=4)]


def test_a_stream_cut_off_mid_way_yields_what_arrived_without_a_finish():
    raw = fixture("v3_stream.sse")
    cut = raw[: raw.index(b"event:conversation.message.delta", raw.index(b" from"))]
    events = decode(cut)
    got = chunks(events)
    assert text_of(got) == "Hello from"
    assert not any(c["choices"][0]["finish_reason"] for c in got) and not any(e.usage for e in events)


def test_a_stream_with_no_answer_at_all_is_an_error():
    with pytest.raises(UpstreamError) as caught:
        decode(b"event:conversation.chat.created\ndata:{\"id\":\"1\",\"status\":\"created\"}\n\n")
    assert caught.value.status == 502 and caught.value.retryable


# --- v2 -------------------------------------------------------------------------------------

def test_v2_stream_becomes_openai_chunks_without_usage():
    events = decode("v2_stream.sse", model="bot-99")
    got = chunks(events)
    assert text_of(got) == "Hello from the Coze v2 bot."  # the follow-up suggestion is not shown
    assert got[0]["id"] == "chatcmpl-1234567890123456789" and got[0]["model"] == "bot-99"
    assert got[-1]["choices"][0]["finish_reason"] == "stop"
    assert not any(e.usage for e in events) and events[-1].done
    assert "".join(e.text for e in events) == "Hello from the Coze v2 bot."


def test_v2_stream_error_is_an_upstream_error():
    with pytest.raises(UpstreamError) as caught:
        decode("v2_stream_error.sse")
    assert "not published to the API channel" in caught.value.message and not caught.value.retryable


def test_v2_answer_json_becomes_a_chat_completion_and_usage_is_left_to_local_counting():
    data, usage = adapter.parse_response(call_context(), body=fixture("v2_answer.json"))
    answer = orjson.loads(data)
    assert usage is None
    assert answer["object"] == "chat.completion" and answer["id"] == "chatcmpl-1234567890123456789"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "Hello from the Coze v2 bot."}
    assert adapter.completion_text(mode="chat", body=data) == "Hello from the Coze v2 bot."


# --- error bodies ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, status, code, retryable", [
    ("v3_error_auth.json", 401, "invalid_api_key", False),
    ("v2_error.json", 401, "invalid_api_key", False),
    ("v3_error_bot_not_found.json", 404, "bot_not_found", False),
    ("v3_error_rate_limited.json", 429, "rate_limit_exceeded", True),
])
def test_http_200_error_bodies_become_upstream_errors(name, status, code, retryable):
    with pytest.raises(UpstreamError) as caught:
        adapter.parse_response(call_context(), body=fixture(name))
    err = caught.value
    assert (err.status, err.code, err.retryable) == (status, code, retryable)
    assert orjson.loads(fixture(name))["msg"] in err.message and KEY not in err.message


def test_http_errors_keep_coze_message_and_status_meaning():
    err = adapter.parse_error(call_context(), status=401, body=fixture("v3_error_auth.json"))
    assert (err.status, err.retryable) == (401, False) and err.message.startswith("authentication is invalid")
    err = adapter.parse_error(call_context(), status=503, body=b'{"code": 7000001, "msg": "service busy"}')
    assert (err.status, err.retryable) == (503, True) and "service busy" in err.message
    err = adapter.parse_error(call_context(), status=502, body=b"<html>Bad gateway</html>")
    assert err.retryable and "Bad gateway" in err.message


def test_an_unknown_failure_code_with_http_200_is_a_400():
    with pytest.raises(UpstreamError) as caught:
        adapter.parse_response(call_context(), body=b'{"code": 4015, "msg": "The bot is not published."}')
    assert caught.value.status == 400 and not caught.value.retryable
