"""Ollama adapter, bytes in and bytes out: native /api/chat and /api/embed, NDJSON streams."""

import json
from pathlib import Path

import orjson
import pytest

from providers.adapters import ADAPTERS, adapter_for
from providers.adapters.base import ChannelInfo, UpstreamError
from providers.adapters.ollama import OllamaAdapter
from relay.streaming import LineParser
from tests.providers.vendor_harness import call_context

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "ollama"
BODY = {"model": "llama3.2", "messages": [{"role": "system", "content": "Be brief."},
                                           {"role": "user", "content": "Hello"}]}


def channel(key="", base_url="", config=None):
    return ChannelInfo(id=1, type=30, name="o", key=key, base_url=base_url, models=("llama3.2",), model_mapping={},
                       config=config or {}, system_prompt="", priority=0, weight=0)


def build(body, stream=False, **kwargs):
    request = adapter_for(30).build_request(call_context(channel(**kwargs), body=body, stream=stream))
    return request, orjson.loads(request.body)


def stream(raw: bytes):
    decoder = adapter_for(30).stream_decoder(call_context(model="llama3.2"))
    assert decoder.framing == "ndjson" and decoder.accepts("application/x-ndjson")
    parser = LineParser()
    events = [ev for event, data in [*parser.feed(raw), *parser.close()] for ev in decoder.feed(event, data)]
    return events + decoder.close()


def test_ollama_is_registered():
    assert ADAPTERS[30] is OllamaAdapter
    assert OllamaAdapter.label == "Ollama" and OllamaAdapter.default_base_url == "http://localhost:11434"


def test_request_goes_to_api_chat_with_options_and_no_auth_without_a_key():
    request, sent = build({**BODY, "temperature": 0.2, "top_p": 0.9, "max_tokens": 50, "stop": "END", "seed": 7,
                           "num_ctx": 8192, "stream_options": {"include_usage": True}}, stream=True)
    assert request.url == "http://localhost:11434/api/chat"
    assert "Authorization" not in request.headers
    assert sent == {"model": "llama3.2", "messages": BODY["messages"], "stream": True,
                    "options": {"temperature": 0.2, "top_p": 0.9, "seed": 7, "num_predict": 50, "stop": ["END"],
                                "num_ctx": 8192}}


def test_bearer_key_when_given_and_max_completion_tokens_and_channel_num_ctx():
    request, sent = build({**BODY, "max_completion_tokens": 9, "stop": ["a", "b"]}, key=" sk-proxy ",
                          base_url="http://gpu-box:11434/", config={"num_ctx": 4096})
    assert request.url == "http://gpu-box:11434/api/chat"
    assert request.headers["Authorization"] == "Bearer sk-proxy"
    assert sent["options"] == {"num_predict": 9, "stop": ["a", "b"], "num_ctx": 4096}
    assert sent["stream"] is False


def test_images_become_base64_strings_beside_the_text():
    message = {"role": "user", "content": [
        {"type": "text", "text": "What is in"}, {"type": "text", "text": "this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": "data:image/jpeg;base64,/9j/4AAQ"}]}
    _, sent = build({"model": "llava", "messages": [message]})
    assert sent["messages"] == [{"role": "user", "content": "What is in\nthis picture?",
                                 "images": ["iVBORw0KGgo=", "/9j/4AAQ"]}]


def test_an_image_that_is_not_a_url_is_refused():
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}
    with pytest.raises(UpstreamError) as caught:
        build({"model": "llava", "messages": [message]})
    assert caught.value.status == 400 and caught.value.code == "invalid_image_url"


def test_tools_and_tool_history_are_translated():
    tools = [{"type": "function", "function": {"name": "get_current_weather", "parameters": {"type": "object"}}}]
    history = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_9", "type": "function",
             "function": {"name": "get_current_weather", "arguments": "{\"location\": \"Paris, FR\"}"}}]},
        {"role": "tool", "tool_call_id": "call_9", "content": "22 degrees"},
    ]
    _, sent = build({"model": "llama3.2", "messages": history, "tools": tools, "tool_choice": "auto"})
    assert sent["tools"] == tools
    assert sent["messages"][1] == {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "get_current_weather", "arguments": {"location": "Paris, FR"}}}]}
    assert sent["messages"][2] == {"role": "tool", "content": "22 degrees", "tool_name": "get_current_weather"}
    _, sent = build({**BODY, "tools": tools, "tool_choice": "none"})
    assert "tools" not in sent


def test_response_format_maps_to_ollamas_format():
    _, sent = build({**BODY, "response_format": {"type": "json_object"}})
    assert sent["format"] == "json"
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    _, sent = build({**BODY, "response_format": fmt})
    assert sent["format"] == schema


def test_plain_answer_becomes_an_openai_completion_with_ollamas_counts():
    data, usage = adapter_for(30).parse_response(call_context(), body=(FIXTURES / "chat.json").read_bytes())
    answer = orjson.loads(data)
    assert answer["object"] == "chat.completion" and answer["id"].startswith("chatcmpl-")
    assert answer["model"] == "llama3.2" and answer["created"] == 1721681404
    assert answer["choices"] == [{"index": 0, "message": {"role": "assistant",
                                                          "content": "Hello! How can I help you today?"},
                                  "logprobs": None, "finish_reason": "stop"}]
    assert answer["usage"] == {"prompt_tokens": 26, "completion_tokens": 10, "total_tokens": 36}
    assert (usage.prompt_tokens, usage.completion_tokens) == (26, 10)
    assert adapter_for(30).completion_text(mode="chat", body=data) == "Hello! How can I help you today?"


def test_length_finish_is_mapped():
    payload = {**json.loads((FIXTURES / "chat.json").read_text()), "done_reason": "length"}
    data, _ = adapter_for(30).parse_response(call_context(), body=orjson.dumps(payload))
    assert orjson.loads(data)["choices"][0]["finish_reason"] == "length"


def test_tool_call_answer_gets_ids_and_string_arguments():
    data, usage = adapter_for(30).parse_response(call_context(), body=(FIXTURES / "tool_call.json").read_bytes())
    choice = orjson.loads(data)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"]["name"] == "get_current_weather"
    assert json.loads(call["function"]["arguments"]) == {"format": "celsius", "location": "Paris, FR"}
    assert (usage.prompt_tokens, usage.completion_tokens) == (122, 33)


def test_stream_becomes_openai_chunks_with_a_final_usage_chunk():
    events = stream((FIXTURES / "stream.ndjson").read_bytes())
    chunks = [orjson.loads(e.data) for e in events if e.data and not e.usage_only]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hello! How can I help you today?"
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, "stop"]
    [usage_event] = [e for e in events if e.usage]
    assert usage_event.usage_only
    assert orjson.loads(usage_event.data)["usage"] == {"prompt_tokens": 26, "completion_tokens": 10,
                                                       "total_tokens": 36}
    assert "".join(e.text for e in events) == "Hello! How can I help you today?"


def test_streamed_tool_call_has_index_id_and_string_arguments():
    events = stream((FIXTURES / "stream_tool_call.ndjson").read_bytes())
    chunks = [orjson.loads(e.data) for e in events if e.data and not e.usage_only]
    [call] = chunks[0]["choices"][0]["delta"]["tool_calls"]
    assert call["index"] == 0 and call["id"].startswith("call_") and call["type"] == "function"
    assert json.loads(call["function"]["arguments"]) == {"format": "celsius", "location": "Paris, FR"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert [e.usage.completion_tokens for e in events if e.usage] == [33]


def test_malformed_line_is_skipped_and_the_stream_goes_on():
    events = stream((FIXTURES / "malformed.ndjson").read_bytes())
    chunks = [orjson.loads(e.data) for e in events if e.data and not e.usage_only]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hello world"
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert [(e.usage.prompt_tokens, e.usage.completion_tokens) for e in events if e.usage] == [(5, 2)]


def test_stream_cut_mid_way_and_error_line_mid_stream():
    raw = (FIXTURES / "stream.ndjson").read_bytes()
    events = stream(raw[: raw.index(b"\n", raw.index(b"\n") + 1) + 30])  # two lines and part of the third
    assert "".join(e.text for e in events) == "Hello! How can"
    assert not any(e.usage for e in events)
    events = stream((FIXTURES / "stream_error.ndjson").read_bytes())
    assert orjson.loads(events[-1].data)["error"]["message"].startswith("an error was encountered")


def test_embeddings_go_to_api_embed_and_come_back_as_an_openai_list():
    body = {"model": "all-minilm", "input": ["a", "b"], "encoding_format": "float"}
    request = adapter_for(30).build_request(call_context(channel(), mode="embeddings", body=body))
    assert request.url == "http://localhost:11434/api/embed"
    assert orjson.loads(request.body) == {"model": "all-minilm", "input": ["a", "b"]}
    data, usage = adapter_for(30).parse_response(call_context(mode="embeddings"),
                                                 body=(FIXTURES / "embed.json").read_bytes())
    answer = orjson.loads(data)
    assert answer["object"] == "list" and answer["model"] == "all-minilm"
    assert [d["index"] for d in answer["data"]] == [0, 1] and answer["data"][0]["embedding"][0] == 0.010071029
    assert answer["usage"] == {"prompt_tokens": 8, "total_tokens": 8}
    assert usage.prompt_tokens == 8


def test_errors_keep_ollamas_message():
    err = adapter_for(30).parse_error(call_context(), status=404, body=(FIXTURES / "error_not_found.json").read_bytes())
    assert err.message == "model 'llama9' not found, try pulling it first"
    assert (err.code, err.type, err.retryable) == ("model_not_found", "invalid_request_error", False)
    err = adapter_for(30).parse_error(call_context(), status=500,
                                      body=b'{"error":"llama runner process has terminated"}')
    assert err.retryable and err.message == "llama runner process has terminated"
    err = adapter_for(30).parse_error(call_context(), status=400, body=b'{"error":"invalid options"}')
    assert not err.retryable and err.code == "invalid_request"


def test_a_non_json_answer_is_a_retryable_upstream_error():
    with pytest.raises(UpstreamError) as caught:
        adapter_for(30).parse_response(call_context(), body=b"<html>proxy</html>")
    assert caught.value.retryable and caught.value.status == 502
