"""Cohere adapter, bytes in and bytes out: v2 chat and embed, SSE stream events."""

import json
from pathlib import Path

import orjson
import pytest

from providers.adapters import ADAPTERS, adapter_for
from providers.adapters.base import ChannelInfo, UpstreamError
from providers.adapters.cohere import CohereAdapter
from relay.streaming import ChunkGatherer, SSEParser
from tests.providers.vendor_harness import call_context

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "cohere"
BODY = {"model": "command-a-03-2025", "messages": [{"role": "system", "content": "Be brief."},
                                                    {"role": "user", "content": "Hello"}]}


def channel(key="co-secret", base_url=""):
    return ChannelInfo(id=1, type=35, name="c", key=key, base_url=base_url, models=("command-a-03-2025",),
                       model_mapping={}, config={}, system_prompt="", priority=0, weight=0)


def build(body, stream=False, mode="chat", **kwargs):
    request = adapter_for(35).build_request(call_context(channel(**kwargs), mode=mode, body=body, stream=stream))
    return request, orjson.loads(request.body)


def decode(raw: bytes):
    decoder = adapter_for(35).stream_decoder(call_context(model="command-a-03-2025"))
    assert decoder.framing == "sse" and decoder.accepts("text/event-stream")
    parser = SSEParser()
    events = [ev for event, data in [*parser.feed(raw), *parser.close()] for ev in decoder.feed(event, data)]
    return events + decoder.close()


def chunks_of(events):
    return [orjson.loads(e.data) for e in events if e.data is not None]


def test_cohere_is_registered():
    assert ADAPTERS[35] is CohereAdapter
    assert CohereAdapter.label == "Cohere" and CohereAdapter.default_base_url == "https://api.cohere.ai"
    assert CohereAdapter.modes == ("chat", "embeddings", "rerank")


def test_request_goes_to_v2_chat_with_bearer_key_and_mapped_parameters():
    request, sent = build({**BODY, "max_tokens": 50, "temperature": 0.2, "top_p": 1.0, "top_k": 40, "seed": 7,
                           "stop": "END", "frequency_penalty": 0.1, "stream_options": {"include_usage": True},
                           "response_format": {"type": "json_object"}}, stream=True)
    assert request.url == "https://api.cohere.ai/v2/chat"
    assert request.headers["Authorization"] == "Bearer co-secret"
    assert request.headers["Accept"] == "text/event-stream"
    assert sent == {"model": "command-a-03-2025", "stream": True, "max_tokens": 50, "temperature": 0.2,
                    "p": 0.99, "k": 40, "seed": 7, "frequency_penalty": 0.1, "stop_sequences": ["END"],
                    "response_format": {"type": "json_object"},
                    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]}


def test_max_completion_tokens_custom_base_url_and_internet_suffix():
    request, sent = build({**BODY, "model": "command-r-internet", "max_completion_tokens": 9,
                           "stop": ["a", "b"]}, base_url="https://cohere.example.com/")
    assert request.url == "https://cohere.example.com/v2/chat"
    # v2 has no web-search connector: the suffix is dropped and the base model answers.
    assert sent["model"] == "command-r" and sent["max_tokens"] == 9 and sent["stop_sequences"] == ["a", "b"]
    assert sent["stream"] is False


def test_history_tools_and_images_are_translated():
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                                               "parameters": {"type": "object", "properties": {
                                                   "location": {"type": "string"}}}}},
             {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]
    messages = [
        {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=",
                                                                         "detail": "low"}}]},
        {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather",
                                                              "arguments": '{"location":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "22C"},
    ]
    _, sent = build({"model": "command-a-vision-07-2025", "messages": messages, "tools": tools,
                     "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"}, {
            "type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}]},
        {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "tool_plan": "Let me check.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather",
                                                              "arguments": '{"location":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "22C"},
    ]
    # A named tool_choice: only that tool, and REQUIRED (v2 has no named choice).
    assert sent["tools"] == [{"type": "function", "function": tools[0]["function"]}]
    assert sent["tool_choice"] == "REQUIRED"
    _, sent = build({**BODY, "tools": tools, "tool_choice": "none"})
    assert sent["tool_choice"] == "NONE" and len(sent["tools"]) == 2
    _, sent = build({**BODY, "tools": tools, "tool_choice": "auto"})
    assert "tool_choice" not in sent


class FakeImageResponse:
    status, content_length, headers = 200, 4, {"Content-Type": "image/jpeg; charset=binary"}

    class content:
        @staticmethod
        async def iter_chunked(size):
            yield b"\xff\xd8\xff\xe0"

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False


class FakeSession:
    def __init__(self):
        self.fetched = []
        self.sent = []

    def get(self, url, **kwargs):
        self.fetched.append(url)
        return FakeImageResponse()

    async def request(self, method, url, *, headers, data):
        self.sent.append(data)
        return "the response"


async def test_open_inlines_http_images_on_a_copy_and_leaves_others_alone():
    content = [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
               {"type": "image_url", "image_url": "http://x.test/b.jpg"}]
    body = {**BODY, "messages": [{"role": "user", "content": content}]}
    session = FakeSession()
    opened = await adapter_for(35).open(call_context(channel(), body=body), session=session)
    prepared = opened.ctx.body  # the answer is read with the context the request was built from
    assert session.fetched == ["https://x.test/a.jpg", "http://x.test/b.jpg"]
    urls = [p["image_url"]["url"] for p in prepared["messages"][0]["content"][1:]]
    assert urls == ["data:image/jpeg;base64,/9j/4A=="] * 2
    assert session.sent[0].count(b"data:image/jpeg;base64,/9j/4A==") == 2 and opened.response == "the response"
    assert content[1]["image_url"]["url"] == "https://x.test/a.jpg", "the relay's body is left as it was"
    assert (await adapter_for(35).open(call_context(channel(), body=BODY), session=session)).ctx.body is BODY


def test_an_image_that_is_not_a_url_is_refused():
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}
    with pytest.raises(UpstreamError) as caught:
        build({"model": "command-a-vision-07-2025", "messages": [message]})
    assert caught.value.status == 400 and caught.value.code == "invalid_image_url"


def test_plain_answer_uses_actual_tokens_not_billed_units():
    data, usage = adapter_for(35).parse_response(call_context(), body=(FIXTURES / "chat.json").read_bytes())
    answer = orjson.loads(data)
    assert answer["object"] == "chat.completion" and answer["id"] == "chatcmpl-c14c80c3-18eb-4519-9460-6c92edd8cfb4"
    assert answer["choices"] == [{"index": 0, "logprobs": None, "finish_reason": "stop", "message": {
        "role": "assistant", "content": "Hello! How can I help you today?"}}]
    assert answer["usage"] == {"prompt_tokens": 71, "completion_tokens": 9, "total_tokens": 80}
    assert (usage.prompt_tokens, usage.completion_tokens) == (71, 9)
    assert adapter_for(35).completion_text(mode="chat", body=data) == "Hello! How can I help you today?"


def test_billed_units_are_used_when_tokens_are_missing():
    body = orjson.dumps({"id": "x", "finish_reason": "MAX_TOKENS", "usage": {"billed_units": {
        "input_tokens": 3, "output_tokens": 4}}, "message": {"role": "assistant", "content": [
            {"type": "text", "text": "cut"}]}})
    data, usage = adapter_for(35).parse_response(call_context(), body=body)
    assert (usage.prompt_tokens, usage.completion_tokens) == (3, 4)
    assert orjson.loads(data)["choices"][0]["finish_reason"] == "length"


def test_tool_call_answer_becomes_openai_tool_calls():
    data, usage = adapter_for(35).parse_response(call_context(), body=(FIXTURES / "tool_call.json").read_bytes())
    choice = orjson.loads(data)["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [{"id": "get_weather_1byjy32y4hvq", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"location":"Toronto"}'}}]
    assert (usage.prompt_tokens, usage.completion_tokens) == (913, 81)


@pytest.mark.parametrize(("fixture", "status", "kind", "code", "retryable"), [
    ("error_unauthorized.json", 401, "authentication_error", "invalid_api_key", False),
    ("error_rate_limit.json", 429, "rate_limit_error", "rate_limit_exceeded", True),
])
def test_errors_keep_cohere_message(fixture, status, kind, code, retryable):
    body = (FIXTURES / fixture).read_bytes()
    err = adapter_for(35).parse_error(call_context(), status=status, body=body)
    assert (err.status, err.type, err.code, err.retryable) == (status, kind, code, retryable)
    assert err.message == json.loads(body)["message"]
    assert err.error_body == {"message": err.message, "type": kind, "param": None, "code": code}
    assert adapter_for(35).parse_error(call_context(), status=503, body=b'{"message": "service unavailable"}').retryable


def test_a_body_that_is_not_json_is_a_retryable_bad_response():
    with pytest.raises(UpstreamError) as caught:
        adapter_for(35).parse_response(call_context(), body=b"<html>")
    assert caught.value.status == 502 and caught.value.retryable


def test_stream_events_become_openai_chunks_with_a_usage_chunk_at_message_end():
    events = decode((FIXTURES / "stream.sse").read_bytes())
    chunks = chunks_of(events)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["id"] == "chatcmpl-29f14a5a-11de-4cae-9800-25e4747408ea" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Hello there!"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {
        "prompt_tokens": 69, "completion_tokens": 3, "total_tokens": 72}
    assert events[-1].usage_only and events[-1].usage.prompt_tokens == 69
    assert [e for e in events if e.usage] == [events[-1]]
    assert "".join(e.text for e in events) == text


def test_a_stream_cut_before_message_end_has_no_usage_but_keeps_the_text():
    raw = (FIXTURES / "stream.sse").read_bytes()
    events = decode(raw[: raw.index(b"event: content-end")])
    assert not any(e.usage for e in events)  # the relay counts the text locally
    assert "".join(e.text for e in events) == "Hello there!"


def test_streamed_parallel_tool_calls_get_their_own_indexes():
    events = decode((FIXTURES / "stream_tool_call.sse").read_bytes())
    chunks = chunks_of(events)
    calls = [c for ch in chunks if ch["choices"] for c in ch["choices"][0]["delta"].get("tool_calls", [])]
    starts = [c for c in calls if "id" in c]
    assert [(c["index"], c["id"], c["function"]["name"]) for c in starts] == [
        (0, "get_weather_p0dage9q1nv4", "get_weather"), (1, "get_weather_vdn9mqblvqjx", "get_weather")]
    for index, city in ((0, "Madrid"), (1, "Brasilia")):
        arguments = "".join(c["function"]["arguments"] for c in calls if c["index"] == index)
        assert json.loads(arguments) == {"location": city}
    finish = [c for c in chunks if c["choices"]][-1]["choices"][0]["finish_reason"]
    assert finish == "tool_calls"
    gatherer = ChunkGatherer(mode="chat", model="command-a-03-2025", request_id="r")
    for e in events:
        gatherer.add(e.data)
    message = orjson.loads(gatherer.result(events[-1].usage))["choices"][0]["message"]
    assert [c["id"] for c in message["tool_calls"]] == ["get_weather_p0dage9q1nv4", "get_weather_vdn9mqblvqjx"]


def test_a_garbled_event_is_dropped_and_the_stream_goes_on():
    events = decode((FIXTURES / "malformed.sse").read_bytes())
    chunks = chunks_of(events)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "Hello world"
    assert [c for c in chunks if c["choices"]][-1]["choices"][0]["finish_reason"] == "length"
    assert events[-1].usage.completion_tokens == 2


def test_an_error_at_message_end_reaches_the_client_and_usage_still_counts():
    events = decode((FIXTURES / "stream_error.sse").read_bytes())
    chunks = chunks_of(events)
    error = next(c["error"] for c in chunks if "error" in c)
    assert error["message"].startswith("internal server error")
    assert events[-1].usage.completion_tokens == 1


def test_embeddings_go_to_v2_embed_and_come_back_in_openais_shape():
    request, sent = build({"model": "embed-v4.0", "input": ["hello", "goodbye"], "dimensions": 256},
                          mode="embeddings")
    assert request.url == "https://api.cohere.ai/v2/embed"
    assert sent == {"model": "embed-v4.0", "texts": ["hello", "goodbye"], "input_type": "search_document",
                    "embedding_types": ["float"], "output_dimension": 256}
    _, sent = build({"model": "embed-english-v3.0", "input": "hi", "input_type": "search_query"}, mode="embeddings")
    assert sent["texts"] == ["hi"] and sent["input_type"] == "search_query"
    with pytest.raises(UpstreamError):
        build({"model": "embed-v4.0", "input": [[1, 2]]}, mode="embeddings")
    data, usage = adapter_for(35).parse_response(call_context(mode="embeddings"),
                                                 body=(FIXTURES / "embed.json").read_bytes())
    answer = orjson.loads(data)
    assert answer["object"] == "list" and [d["index"] for d in answer["data"]] == [0, 1]
    assert answer["data"][1]["embedding"] == [-0.0076904297, 0.018432617, 0.0234375, -0.032226562]
    assert answer["usage"] == {"prompt_tokens": 2, "total_tokens": 2} and usage.prompt_tokens == 2
