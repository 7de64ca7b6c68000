"""Gemini adapters, bytes in and bytes out, against fixtures in Gemini's documented wire format."""

import base64
import dataclasses
import struct
from pathlib import Path

import orjson
import pytest

from providers.adapters import adapter_for
from providers.adapters.base import ChannelInfo, UpstreamError
from providers.adapters.gemini.adapter import GeminiAdapter, GeminiOpenAIAdapter
from providers.adapters.gemini.convert import inline_remote_images
from relay.streaming import SSEParser
from tests.providers.vendor_harness import call_context

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "providers" / "gemini"
KEY = "AIzaSy-gemini-secret"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def channel(type_id=24, base_url="", config=None):
    return ChannelInfo(id=1, type=type_id, name="g", key=KEY, base_url=base_url, models=("gemini-2.5-flash",),
                       model_mapping={}, config=config or {}, system_prompt="", priority=0, weight=0)


def build(body, stream=False, mode="chat", **kwargs):
    request = adapter_for(24).build_request(call_context(channel(**kwargs), mode=mode, body=body, stream=stream))
    return request, orjson.loads(request.body)


def decode_stream(raw: bytes, model="gemini-2.5-flash"):
    """Feed an SSE body through the decoder as the relay does; returns (events, chunks sent)."""
    decoder = adapter_for(24).stream_decoder(call_context(model=model))
    parser = SSEParser()
    events = [e for event, data in [*parser.feed(raw), *parser.close()] for e in decoder.feed(event, data)]
    events += decoder.close()
    return events, [orjson.loads(e.data) for e in events if e.data]


CHAT = {"model": "gemini-2.5-flash", "messages": [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                 {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
]}


# --- what we send ------------------------------------------------------------------------------


def test_chat_request_goes_to_generate_content_with_the_key_in_a_header_only():
    request, body = build(CHAT)
    assert request.method == "POST"
    assert request.url == ("https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
                           ":generateContent")
    assert request.headers["x-goog-api-key"] == KEY
    assert KEY not in request.url and "key=" not in request.url
    assert "Authorization" not in request.headers


def test_stream_uses_stream_generate_content_with_sse_and_the_configured_version_and_base():
    request, _ = build(CHAT, stream=True, base_url="https://proxy.example/", config={"api_version": "v1"})
    assert request.url == "https://proxy.example/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse"


def test_messages_become_contents_with_system_instruction_roles_and_inline_images():
    _, body = build(CHAT)
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {"role": "model", "parts": [{"text": "Hello!"}]},
        {"role": "user", "parts": [{"text": "What is this?"},
                                   {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}]},
    ]
    assert {s["threshold"] for s in body["safetySettings"]} == {"BLOCK_NONE"}
    assert len(body["safetySettings"]) == 5
    assert "generationConfig" not in body and "tools" not in body


def test_a_lone_system_prompt_becomes_the_user_turn():
    _, body = build({"model": "gemini-2.5-flash", "messages": [{"role": "system", "content": "Tell a joke"}]})
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Tell a joke"}]}]
    assert "systemInstruction" not in body


def test_sampling_options_map_to_generation_config():
    _, body = build({**CHAT, "max_tokens": 100, "temperature": 0.2, "top_p": 0.9, "stop": "END", "n": 2, "seed": 7})
    assert body["generationConfig"] == {"maxOutputTokens": 100, "temperature": 0.2, "topP": 0.9,
                                        "stopSequences": ["END"], "candidateCount": 2, "seed": 7}
    _, body = build({**CHAT, "max_completion_tokens": 50, "stop": ["a", "b"], "temperature": 0})
    assert body["generationConfig"] == {"maxOutputTokens": 50, "stopSequences": ["a", "b"], "temperature": 0}


@pytest.mark.parametrize("model, effort, thinking", [
    ("gemini-2.5-flash", "low", {"thinkingBudget": 1024, "includeThoughts": True}),
    ("gemini-2.5-flash", "high", {"thinkingBudget": 24576, "includeThoughts": True}),
    ("gemini-2.5-flash-lite", "minimal", {"thinkingBudget": 1024, "includeThoughts": True}),
    ("gemini-2.5-flash", "none", {"thinkingBudget": 0, "includeThoughts": False}),
    ("gemini-2.5-pro", "none", {"thinkingBudget": 128, "includeThoughts": True}),  # Pro cannot stop thinking
    ("gemini-3-pro-preview", "medium", {"thinkingLevel": "high", "includeThoughts": True}),  # Pro: low or high
    ("gemini-3-pro-preview", "minimal", {"thinkingLevel": "low", "includeThoughts": True}),
    ("gemini-3-flash-preview", "medium", {"thinkingLevel": "medium", "includeThoughts": True}),
    ("gemini-3-flash-preview", "minimal", {"thinkingLevel": "minimal", "includeThoughts": True}),
    ("gemini-2.0-flash", "high", None),  # models that do not think
    ("gemini-2.5-flash-image", "high", None),
    ("gemini-2.5-flash-preview-tts", "low", None),
    ("gemini-2.5-flash", "extreme", None),
])
def test_reasoning_effort_asks_for_thinking_by_the_models_family_with_thoughts_back(model, effort, thinking):
    _, body = build({**CHAT, "model": model, "reasoning_effort": effort, "temperature": 0.5})
    assert body["generationConfig"].get("thinkingConfig") == thinking
    assert body["generationConfig"]["temperature"] == 0.5
    _, body = build({**CHAT, "model": model})
    assert "generationConfig" not in body


def test_json_response_format_sets_the_mime_type_and_a_cleaned_schema():
    _, body = build({**CHAT, "response_format": {"type": "json_object"}})
    assert body["generationConfig"] == {"responseMimeType": "application/json"}
    schema = {"type": "object", "additionalProperties": False, "$schema": "x",
              "properties": {"name": {"type": "string", "format": "email"},
                             "age": {"type": ["integer", "null"]},
                             "kind": {"const": "cat"}},
              "required": ["name"]}
    _, body = build({**CHAT, "response_format": {"type": "json_schema",
                                                 "json_schema": {"name": "p", "strict": True, "schema": schema}}})
    assert body["generationConfig"]["responseSchema"] == {
        "type": "object", "required": ["name"],
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "nullable": True},
                       "kind": {"enum": ["cat"]}}}


TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city", "strict": True,
        "parameters": {"type": "object", "additionalProperties": False,
                       "properties": {"city": {"type": "string"},
                                      "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                       "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
]


def test_tools_become_function_declarations():
    _, body = build({**CHAT, "tools": TOOLS})
    assert body["tools"] == [{"functionDeclarations": [
        {"name": "get_weather", "description": "Weather for a city",
         "parameters": {"type": "object", "required": ["city"],
                        "properties": {"city": {"type": "string"},
                                       "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}}},
        {"name": "get_time"},
    ]}]
    assert "toolConfig" not in body


@pytest.mark.parametrize("choice, config", [
    ("auto", {"mode": "AUTO"}),
    ("none", {"mode": "NONE"}),
    ("required", {"mode": "ANY"}),
    ({"type": "function", "function": {"name": "get_time"}}, {"mode": "ANY", "allowedFunctionNames": ["get_time"]}),
])
def test_tool_choice_maps_to_function_calling_config(choice, config):
    _, body = build({**CHAT, "tools": TOOLS, "tool_choice": choice})
    assert body["toolConfig"] == {"functionCallingConfig": config}


HISTORY = [
    {"role": "user", "content": "Weather and time in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
         "extra_content": {"google": {"thought_signature": "sig-one"}}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "call_a", "content": '{"temp": 21}'},
    {"role": "tool", "tool_call_id": "call_b", "content": "12:00"},
]


def test_tool_history_becomes_function_calls_and_one_turn_of_function_responses():
    _, body = build({"model": "gemini-2.5-flash", "messages": HISTORY, "tools": TOOLS})
    assert body["contents"][1:] == [
        {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "sig-one"},
            {"functionCall": {"name": "get_time", "args": {}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
            {"functionResponse": {"name": "get_time", "response": {"output": "12:00"}}}]},
    ]


def test_gemini_3_calls_without_a_signature_get_googles_placeholder_once_per_turn():
    messages = [HISTORY[0], {**HISTORY[1], "tool_calls": [
        {**call, "extra_content": None} for call in HISTORY[1]["tool_calls"]]}, *HISTORY[2:]]
    _, body = build({"model": "gemini-3-pro-preview", "messages": messages})
    parts = body["contents"][1]["parts"]
    assert parts[0]["thoughtSignature"] == "skip_thought_signature_validator"
    assert "thoughtSignature" not in parts[1]
    _, body = build({"model": "gemini-2.5-flash", "messages": messages})
    assert all("thoughtSignature" not in p for p in body["contents"][1]["parts"])


def test_text_completions_are_refused_clearly():
    with pytest.raises(UpstreamError) as caught:
        build({"model": "gemini-2.5-flash", "prompt": "hi"}, mode="completions")
    assert caught.value.status == 400 and "chat/completions" in caught.value.message


# --- what the client gets back ----------------------------------------------------------------


def test_plain_answer_becomes_a_chat_completion_with_geminis_own_usage():
    data, usage = adapter_for(24).parse_response(call_context(), body=fixture("chat.json"))
    answer = orjson.loads(data)
    assert answer["object"] == "chat.completion" and answer["id"] == "chatcmpl-mJ0hZ8ujAuGvz7IPq4SQ2QU"
    assert answer["model"] == "gemini-2.5-flash"
    assert answer["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Hello from Gemini."},
                                  "logprobs": None, "finish_reason": "stop"}]
    # thinking tokens are output the user pays for
    assert (usage.prompt_tokens, usage.completion_tokens) == (9, 17)
    assert answer["usage"] == {"prompt_tokens": 9, "completion_tokens": 17, "total_tokens": 26,
                               "completion_tokens_details": {"reasoning_tokens": 12}}


def test_function_calls_become_openai_tool_calls():
    data, usage = adapter_for(24).parse_response(call_context(), body=fixture("tool_call.json"))
    choice = orjson.loads(data)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None
    first, second = message["tool_calls"]
    assert first["id"].startswith("call_") and second["id"].startswith("call_") and first["id"] != second["id"]
    assert first["type"] == "function" and first["function"]["name"] == "get_weather"
    assert orjson.loads(first["function"]["arguments"]) == {"city": "Paris", "unit": "celsius"}
    assert first["extra_content"] == {"google": {"thought_signature": "CiQB0e2Kb3Vz..sig-one"}}
    assert "extra_content" not in second and "index" not in first
    assert (usage.prompt_tokens, usage.completion_tokens) == (61, 23)


def test_tool_calls_returned_in_history_round_trip_their_signature():
    data, _ = adapter_for(24).parse_response(call_context(), body=fixture("tool_call.json"))
    message = orjson.loads(data)["choices"][0]["message"]
    results = [{"role": "tool", "tool_call_id": c["id"], "content": "ok"} for c in message["tool_calls"]]
    _, body = build({"model": "gemini-3-pro-preview",
                     "messages": [{"role": "user", "content": "go"}, message, *results]})
    model_turn, results_turn = body["contents"][1:]
    assert model_turn["parts"][0]["thoughtSignature"] == "CiQB0e2Kb3Vz..sig-one"
    assert [p["functionResponse"]["name"] for p in results_turn["parts"]] == ["get_weather", "get_time"]


def test_safety_stop_maps_to_content_filter():
    data, _ = adapter_for(24).parse_response(call_context(), body=fixture("safety.json"))
    assert orjson.loads(data)["choices"][0]["finish_reason"] == "content_filter"


def test_a_blocked_prompt_is_a_clear_error():
    with pytest.raises(UpstreamError) as caught:
        adapter_for(24).parse_response(call_context(), body=fixture("blocked.json"))
    assert caught.value.status == 400 and caught.value.code == "content_filter"
    assert "PROHIBITED_CONTENT" in caught.value.message and not caught.value.retryable


# --- streams -----------------------------------------------------------------------------------


def test_stream_becomes_openai_chunks_with_usage_last_and_flagged():
    events, chunks = decode_stream(fixture("chat_stream.sse"))
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "gemini-2.5-flash" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Hello"}
    assert "role" not in chunks[1]["choices"][0]["delta"]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1]) == "Hello from Gemini."
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None, None, "stop"]
    last = events[-1]
    assert last.usage_only and chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 9 and chunks[-1]["usage"]["completion_tokens"] == 17
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (9, 17)
    # only the final event bills: a stream cut before its end is counted locally instead
    assert all(e.usage is None for e in events[:-1])
    assert "".join(e.text for e in events) == "Hello from Gemini."


def test_streamed_function_calls_become_indexed_tool_call_deltas():
    events, chunks = decode_stream(fixture("tool_call_stream.sse"))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Let me check."}
    choice = chunks[1]["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    calls = choice["delta"]["tool_calls"]
    assert [c["index"] for c in calls] == [0, 1]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert orjson.loads(calls[0]["function"]["arguments"]) == {"city": "Paris"}
    assert all(c["id"].startswith("call_") and c["type"] == "function" for c in calls)
    assert events[-1].usage.completion_tokens == 23


def test_a_malformed_event_is_dropped_without_breaking_the_stream():
    events, chunks = decode_stream(fixture("malformed_stream.sse"))
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "Hello Gemini."
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert events[-1].usage.completion_tokens == 5


def test_a_stream_cut_off_mid_way_yields_what_arrived_and_no_usage():
    raw = fixture("chat_stream.sse")
    decoder = adapter_for(24).stream_decoder(call_context(model="gemini-2.5-flash"))
    parser = SSEParser()
    events = [e for event, data in parser.feed(raw[: len(raw) // 2]) for e in decoder.feed(event, data)]
    assert events and all(e.usage is None for e in events)
    assert "".join(e.text for e in events) == "Hello"


def test_an_error_or_a_block_mid_stream_becomes_an_error_event():
    decoder = adapter_for(24).stream_decoder(call_context(model="gemini-2.5-flash"))
    [event] = decoder.feed(b"", fixture("error_503.json"))
    assert orjson.loads(event.data)["error"]["message"] == "The model is overloaded. Please try again later."
    [event] = decoder.feed(b"", orjson.dumps(orjson.loads(fixture("blocked.json"))))
    error = orjson.loads(event.data)["error"]
    assert error["code"] == "content_filter" and "PROHIBITED_CONTENT" in error["message"]


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, status, code, kind, retryable", [
    ("error_400.json", 400, "invalid_argument", "invalid_request_error", False),
    ("error_api_key.json", 400, "invalid_api_key", "authentication_error", False),
    ("error_403.json", 403, "permission_denied", "permission_error", False),
    ("error_429.json", 429, "resource_exhausted", "upstream_error", True),
    ("error_503.json", 503, "unavailable", "upstream_error", True),
])
def test_gemini_errors_keep_their_message_and_classify_retry(name, status, code, kind, retryable):
    err = adapter_for(24).parse_error(call_context(), status=status, body=fixture(name))
    expected = orjson.loads(fixture(name))["error"]["message"]
    assert (err.status, err.code, err.type, err.retryable) == (status, code, kind, retryable)
    assert err.message == expected and err.error_body["message"] == expected
    assert KEY not in str(err)


def test_an_api_key_error_answered_with_500_is_still_not_retried():
    err = adapter_for(24).parse_error(call_context(), status=500,
                                      body=b'{"error":{"message":"API key expired. Please renew."}}')
    assert not err.retryable and err.code == "invalid_api_key"


def test_a_non_json_error_falls_back_to_the_body_text():
    err = adapter_for(24).parse_error(call_context(), status=502, body=b"<html>Bad gateway</html>")
    assert err.retryable and "Bad gateway" in err.message


# --- embeddings --------------------------------------------------------------------------------


def test_embeddings_go_to_batch_embed_contents_one_request_per_input():
    body = {"model": "gemini-embedding-001", "input": ["a", "b"], "dimensions": 4}
    request, sent = build(body, mode="embeddings")
    assert request.url.endswith("/v1beta/models/gemini-embedding-001:batchEmbedContents")
    assert request.headers["x-goog-api-key"] == KEY
    assert sent == {"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 4},
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 4},
    ]}
    data, usage = adapter_for(24).parse_response(call_context(channel(), "embeddings", body),
                                                 body=fixture("embeddings.json"))
    assert usage is None  # Gemini reports none: the relay counts the input itself
    answer = orjson.loads(data)
    assert answer["object"] == "list" and answer["model"] == "gemini-embedding-001"
    assert [d["index"] for d in answer["data"]] == [0, 1]
    assert answer["data"][1]["embedding"] == [-0.0125, 0.25, 0.5, -1.0]
    assert answer["usage"]["prompt_tokens"] == answer["usage"]["total_tokens"] > 0


def test_embeddings_honour_base64_encoding_as_openai_sdks_ask():
    body = {"model": "gemini-embedding-001", "input": "a", "encoding_format": "base64"}
    build(body, mode="embeddings")
    data, _ = adapter_for(24).parse_response(call_context(channel(), "embeddings", body),
                                             body=fixture("embeddings.json"))
    packed = base64.b64decode(orjson.loads(data)["data"][1]["embedding"])
    assert list(struct.unpack("<4f", packed)) == pytest.approx([-0.0125, 0.25, 0.5, -1.0])


def test_interleaved_requests_on_one_adapter_keep_their_own_facts():
    """The request's facts travel in its context, not in the (shared) adapter: two calls whose
    build and parse interleave each get their own model and encoding back."""
    adapter = adapter_for(24)
    floats = call_context(channel(), "embeddings", {"model": "gemini-embedding-001", "input": "a"})
    packed = call_context(channel(), "embeddings",
                          {"model": "text-embedding-004", "input": "b", "encoding_format": "base64"})
    adapter.build_request(floats)
    adapter.build_request(packed)
    first, _ = adapter.parse_response(floats, body=fixture("embeddings.json"))
    second, _ = adapter.parse_response(packed, body=fixture("embeddings.json"))
    first, second = orjson.loads(first), orjson.loads(second)
    assert first["model"] == "gemini-embedding-001" and first["data"][1]["embedding"] == [-0.0125, 0.25, 0.5, -1.0]
    assert second["model"] == "text-embedding-004" and isinstance(second["data"][1]["embedding"], str)


def test_token_array_input_is_refused():
    with pytest.raises(UpstreamError) as caught:
        build({"model": "gemini-embedding-001", "input": [[1, 2, 3]]}, mode="embeddings")
    assert caught.value.status == 400


# --- the OpenAI-compatible endpoint (type 51) -------------------------------------------------


def test_openai_compatible_endpoint_uses_bearer_and_paths_without_v1():
    adapter = adapter_for(51)
    assert isinstance(adapter, GeminiOpenAIAdapter) and isinstance(adapter_for(24), GeminiAdapter)
    request = adapter.build_request(call_context(channel(51), body=CHAT))
    assert request.url == "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert orjson.loads(request.body) == CHAT
    request = adapter.build_request(call_context(channel(51), mode="embeddings",
                                                 body={"model": "gemini-embedding-001", "input": "x"}))
    assert request.url == "https://generativelanguage.googleapis.com/v1beta/openai/embeddings"


def test_openai_compatible_endpoint_takes_image_requests_as_openai_sends_them():
    body = {"model": "imagen-4.0-generate-001", "prompt": "a cat", "n": 2, "response_format": "b64_json"}
    request = adapter_for(51).build_request(call_context(channel(51), mode="images", body=body))
    assert request.url == "https://generativelanguage.googleapis.com/v1beta/openai/images/generations"
    assert request.headers["Authorization"] == f"Bearer {KEY}" and orjson.loads(request.body) == body


def test_openai_compatible_endpoint_unwraps_geminis_listed_errors():
    err = adapter_for(51).parse_error(call_context(), status=400, body=fixture("openai_error.json"))
    assert err.message == "API key not valid. Please pass a valid API key."
    assert err.code == "invalid_api_key" and not err.retryable


def test_both_types_name_gemini_models():
    assert "gemini-2.5-flash" in GeminiAdapter.default_models
    assert GeminiOpenAIAdapter.default_models == GeminiAdapter.default_models
    assert GeminiAdapter.config_fields == ("api_version",)


def test_a_refused_key_takes_the_channel_out_and_overload_only_counts_as_transient():
    from providers import health

    adapter = adapter_for(24)
    assert health.is_fatal(adapter.parse_error(call_context(), status=400, body=fixture("error_api_key.json")))
    overloaded = adapter.parse_error(call_context(), status=429, body=fixture("error_429.json"))
    assert not health.is_fatal(overloaded) and health.is_transient(overloaded)


async def test_inlining_does_no_io_without_remote_images():
    body = {**CHAT, "messages": [*CHAT["messages"], {"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://generativelanguage.googleapis.com/v1beta/files/abc"}}]}]}
    prepared = await inline_remote_images(body, None)
    assert prepared is body
    _, sent = build(prepared)
    assert sent["contents"][-1]["parts"][-1:] == [{"fileData": {
        "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc", "mimeType": "image/jpeg"}}]


def test_usage_tells_the_cached_content_thoughts_and_audio():
    from providers.adapters.base import Usage
    from providers.adapters.gemini.answers import usage_from

    metadata = {"promptTokenCount": 1200, "cachedContentTokenCount": 1000, "candidatesTokenCount": 40,
                "thoughtsTokenCount": 160, "toolUsePromptTokenCount": 10,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 1100},
                                        {"modality": "AUDIO", "tokenCount": 100}],
                "candidatesTokensDetails": [{"modality": "AUDIO", "tokenCount": 40}]}
    assert usage_from(metadata) == Usage(1210, 200, cached_tokens=1000, reasoning_tokens=160,
                                         input_audio_tokens=100, output_audio_tokens=40)


def test_usage_tells_the_image_tokens_of_the_prompt_and_of_images_drawn():
    from providers.adapters.gemini.answers import usage_from

    # gemini-2.5-flash-image: a photo in (258 tokens), an image out (1290 tokens).
    metadata = {"promptTokenCount": 270, "candidatesTokenCount": 1300,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12},
                                        {"modality": "IMAGE", "tokenCount": 258}],
                "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 10},
                                            {"modality": "IMAGE", "tokenCount": 1290}]}
    usage = usage_from(metadata)
    assert (usage.input_image_tokens, usage.output_image_tokens, usage.input_audio_tokens) == (258, 1290, 0)


# --- Gemini's own requests, passed through (gemini/native.py) ------------------------------------


def native(mode="chat", body=None, stream=False, system_prompt=""):
    info = ChannelInfo(id=1, type=24, name="g", key=KEY, base_url="", models=(), model_mapping={}, config={},
                       system_prompt=system_prompt, priority=0, weight=0)
    ctx = call_context(info, mode=mode, body={**(body or {}), "model": "gemini-2.5-flash"}, stream=stream)
    return dataclasses.replace(ctx, protocol="gemini")


@pytest.mark.parametrize("mode, body, stream, method", [
    ("chat", {"contents": []}, False, "generateContent"),
    ("chat", {"contents": []}, True, "streamGenerateContent?alt=sse"),
    ("count_tokens", {"contents": []}, False, "countTokens"),
    ("embeddings", {"content": {"parts": [{"text": "a"}]}}, False, "embedContent"),
    ("embeddings", {"requests": [{"model": "models/mine", "content": {}}]}, False, "batchEmbedContents"),
])
def test_a_native_request_goes_to_its_method_with_the_key_in_a_header(mode, body, stream, method):
    request = GeminiAdapter().build_native_request(native(mode, body, stream))
    assert request.url == f"https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:{method}"
    assert request.headers["x-goog-api-key"] == KEY and KEY not in request.url
    sent = orjson.loads(request.body)
    assert "model" not in sent
    if "requests" in body:  # each request names the model the channel maps to
        assert sent["requests"][0]["model"] == "models/gemini-2.5-flash"


def test_a_native_count_of_a_whole_request_names_the_mapped_model_and_the_system_prompt_replaces_the_clients():
    request = GeminiAdapter().build_native_request(native("count_tokens", {"generateContentRequest": {
        "model": "models/house", "contents": []}}))
    assert orjson.loads(request.body)["generateContentRequest"]["model"] == "models/gemini-2.5-flash"
    body = {"systemInstruction": {"parts": [{"text": "mine"}]}, "contents": []}
    request = GeminiAdapter().build_native_request(native(body=body, system_prompt="the channel's"))
    assert orjson.loads(request.body) == {"systemInstruction": {"parts": [{"text": "the channel's"}]}, "contents": []}


def test_a_native_answer_is_read_for_its_usage_and_a_200_that_is_no_answer_fails_over():
    usage, words = GeminiAdapter().read_native_answer(native(), body=fixture("chat_cached.json"))
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.reasoning_tokens) == (
        1200, 200, 1000, 160)
    assert words == "The file defines three classes."
    assert GeminiAdapter().read_native_answer(native("count_tokens"), body=b'{"totalTokens": 3}') == (None, "")
    for body in (b"<html>busy</html>", b'{"error": {"code": 503, "message": "Overloaded", "status": "UNAVAILABLE"}}'):
        with pytest.raises(UpstreamError) as failed:
            GeminiAdapter().read_native_answer(native(), body=body)
        assert failed.value.retryable


def test_a_native_stream_is_billed_by_its_last_usage_and_an_error_before_it_begins_is_the_vendors():
    stream = GeminiAdapter().native_stream(native(stream=True))
    parser = SSEParser()
    for event, data in [*parser.feed(fixture("chat_stream.sse")), *parser.close()]:
        stream.read(event, data)
    assert stream.begun and (stream.usage.prompt_tokens, stream.usage.completion_tokens) == (9, 17)
    failing = GeminiAdapter().native_stream(native(stream=True))
    failing.read(b"", b'{"error": {"code": 429, "message": "Slow down", "status": "RESOURCE_EXHAUSTED"}}')
    assert not failing.begun and failing.error.retryable and failing.error.message == "Slow down"
