"""The Gemini codec on its own: routes, requests to the internal bodies, chat answers and chunks to Gemini's."""

from __future__ import annotations

import orjson
import pytest

from relay.codecs import ANTHROPIC, GEMINI, for_path
from relay.codecs.gemini import Route, route
from relay.errors import RelayError

MODEL = "gemini-2.5-flash"
GENERATE = GEMINI.bind(Route("generateContent", MODEL))
HI = [{"role": "user", "parts": [{"text": "Hi"}]}]


def decode(**fields) -> dict:
    return GENERATE.decode({"contents": HI, **fields})


def refusal(body: dict, codec=GENERATE) -> RelayError:
    with pytest.raises(RelayError) as refused:
        codec.decode(body)
    assert refused.value.status == 400
    return refused.value


@pytest.mark.parametrize("path, query, expected", [
    ("/v1beta/models/gemini-2.5-flash:generateContent", b"", Route("generateContent", MODEL)),
    ("/v1beta/models/gemini-2.5-flash:streamGenerateContent", b"alt=sse",
     Route("streamGenerateContent", MODEL, sse=True)),
    ("/v1beta/models/gemini-2.5-flash:streamGenerateContent", b"key=abc", Route("streamGenerateContent", MODEL)),
    ("/v1/models/meta-llama/Llama-3-8b:countTokens", b"", Route("countTokens", "meta-llama/Llama-3-8b")),
    ("/v1beta/models/text-embedding-004:batchEmbedContents", b"", Route("batchEmbedContents", "text-embedding-004")),
    # Bedrock's model ids end in a version after a colon: the method is what follows the last one.
    ("/v1beta/models/amazon.nova-pro-v1:0:generateContent", b"", Route("generateContent", "amazon.nova-pro-v1:0")),
    ("/v1beta/models/amazon.nova-pro-v1:0", b"", Route("models", "amazon.nova-pro-v1:0")),
    ("/v1beta/models", b"pageSize=50", Route("models", "")),
    ("/v1beta/models/gemini-2.5-flash", b"", Route("models", MODEL)),
    ("/v1beta/models/gemini-2.5-flash:predict", b"", None),
    ("/v1beta/cachedContents", b"", None),
])
def test_a_path_names_the_method_and_the_model(path, query, expected):
    assert route(path, query) == expected


def test_paths_of_gemini_belong_to_its_codec_and_openais_stay_openais():
    assert for_path("/v1beta/models") is GEMINI
    assert for_path("/v1/models/gemini-2.5-flash:generateContent") is GEMINI
    assert for_path("/v1/models") is None and for_path("/v1/models/gpt-4o") is None
    assert for_path("/v1/models/amazon.nova-pro-v1:0") is None, "an OpenAI client retrieving a Bedrock model"
    assert for_path("/v1/models/amazon.nova-pro-v1:0:countTokens") is GEMINI
    assert for_path("/v1/chat/completions") is None and for_path("/v1/messages") is ANTHROPIC


def test_a_plain_request_becomes_a_chat_request_on_the_paths_model():
    assert decode() == {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}
    streamed = GEMINI.bind(Route("streamGenerateContent", MODEL, sse=True)).decode({"contents": HI})
    assert streamed["stream"] is True and streamed["stream_options"] == {"include_usage": True}


def test_the_system_instruction_of_any_role_goes_first():
    for instruction in ({"role": "user", "parts": [{"text": "Be brief."}, {"text": "Be kind."}]},
                        {"parts": [{"text": "Be brief."}, {"text": "Be kind."}]}, "Be brief.\n\nBe kind."):
        assert decode(systemInstruction=instruction)["messages"][0] == {"role": "system",
                                                                        "content": "Be brief.\n\nBe kind."}
    assert decode(system_instruction={"parts": [{"text": "snake"}]})["messages"][0]["content"] == "snake"


def test_images_and_files_become_content_parts():
    chat = decode(contents=[{"role": "user", "parts": [
        {"text": "Compare"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"inline_data": {"mime_type": "image/jpeg", "data": "/9j/"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/a.jpg"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}}]}])
    assert chat["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0="}}]}]


def test_function_calls_and_responses_without_ids_are_paired_by_name_and_order():
    chat = decode(contents=[
        {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
        {"role": "model", "parts": [
            {"text": "Thinking it over", "thought": True}, {"text": "Checking."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
            {"functionCall": {"name": "get_time"}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_time", "response": {"time": "12:00"}}},
            {"functionResponse": {"name": "get_weather", "response": {"output": "Sunny"}}},
            {"functionResponse": {"name": "get_weather", "response": {"error": "timeout"}}},
            {"text": "Summarise."}]}])
    assistant, time, paris, rome, user = chat["messages"][1:]
    assert assistant == {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "call_0_get_weather", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "call_1_get_weather", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
        {"id": "call_2_get_time", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]}
    assert time == {"role": "tool", "tool_call_id": "call_2_get_time", "content": '{"time":"12:00"}'}
    assert paris == {"role": "tool", "tool_call_id": "call_0_get_weather", "content": "Sunny"}
    assert rome == {"role": "tool", "tool_call_id": "call_1_get_weather", "content": "Error: timeout"}
    assert user == {"role": "user", "content": "Summarise."}
    # The same history decodes to the same ids: a provider's prompt cache sees the same prompt.
    assert decode(contents=[{"role": "model", "parts": [{"functionCall": {"name": "f"}}]}]) == decode(
        contents=[{"role": "model", "parts": [{"functionCall": {"name": "f"}}]}])


def test_the_clients_own_call_ids_are_kept():
    chat = decode(contents=[
        {"role": "model", "parts": [{"functionCall": {"id": "cli-1", "name": "ls", "args": {}},
                                     "thoughtSignature": "c2ln"}]},
        {"role": "user", "parts": [{"functionResponse": {"id": "cli-1", "name": "ls", "response": {"output": "a"}}}]}])
    call = chat["messages"][0]["tool_calls"][0]
    assert call["id"] == "cli-1" and call["extra_content"] == {"google": {"thought_signature": "c2ln"}}
    assert chat["messages"][1] == {"role": "tool", "tool_call_id": "cli-1", "content": "a"}


def test_function_declarations_in_each_spelling_become_tools_and_googles_tools_are_dropped():
    schema = {"type": "OBJECT", "properties": {"city": {"type": "STRING", "description": "where"},
                                               "days": {"type": "ARRAY", "items": {"type": "INTEGER"}}},
              "required": ["city"], "propertyOrdering": ["city", "days"]}
    json_schema = {"type": "object", "properties": {"path": {"type": "string"}}, "additionalProperties": False}
    chat = decode(tools=[
        {"functionDeclarations": [{"name": "weather", "description": "Weather", "parameters": schema}]},
        {"function_declarations": [{"name": "ls", "parameters_json_schema": json_schema},
                                   {"name": "pwd", "parametersJsonSchema": json_schema, "behavior": "BLOCKING"},
                                   {"name": "now"}]},
        {"googleSearch": {}}, {"codeExecution": {}}])
    assert chat["tools"] == [
        {"type": "function", "function": {"name": "weather", "description": "Weather", "parameters": {
            "type": "object", "required": ["city"],
            "properties": {"city": {"type": "string", "description": "where"},
                           "days": {"type": "array", "items": {"type": "integer"}}}}}},
        {"type": "function", "function": {"name": "ls", "parameters": json_schema}},
        {"type": "function", "function": {"name": "pwd", "parameters": json_schema}},
        {"type": "function", "function": {"name": "now"}}]
    assert "tools" not in decode(tools=[{"googleSearch": {}}])


FUNCTIONS = [{"functionDeclarations": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}]


@pytest.mark.parametrize("config, choice, names", [
    ({"mode": "AUTO"}, "auto", ["a", "b", "c"]),
    ({"mode": "NONE"}, "none", ["a", "b", "c"]),
    ({"mode": "ANY"}, "required", ["a", "b", "c"]),
    ({"mode": "ANY", "allowedFunctionNames": ["b"]}, {"type": "function", "function": {"name": "b"}}, ["b"]),
    ({"mode": "ANY", "allowed_function_names": ["a", "c"]}, "required", ["a", "c"]),
    ({"mode": "MODE_UNSPECIFIED"}, None, ["a", "b", "c"]),
])
def test_the_function_calling_mode_becomes_tool_choice(config, choice, names):
    chat = decode(tools=FUNCTIONS, toolConfig={"functionCallingConfig": config})
    assert chat.get("tool_choice") == choice
    assert [tool["function"]["name"] for tool in chat["tools"]] == names


def test_the_generation_config_maps_to_chats_sampling_and_format():
    chat = decode(generationConfig={"temperature": 0.3, "topP": 0.8, "topK": 20, "maxOutputTokens": 100,
                                    "stopSequences": ["END"], "candidateCount": 1, "seed": 7,
                                    "presencePenalty": 0.5, "frequencyPenalty": 0.25,
                                    "responseMimeType": "application/json", "responseModalities": ["TEXT"]},
                  safetySettings=[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
                  cachedContent="cachedContents/x", labels={"team": "a"})
    assert chat == {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "temperature": 0.3,
                    "top_p": 0.8, "presence_penalty": 0.5, "frequency_penalty": 0.25, "top_k": 20, "seed": 7,
                    "max_tokens": 100, "stop": ["END"], "response_format": {"type": "json_object"}}


def test_a_response_schema_becomes_a_json_schema_format():
    schema = {"type": "OBJECT", "properties": {"name": {"type": "STRING"}}}
    for key in ("responseSchema", "responseJsonSchema", "response_json_schema"):
        chat = decode(generationConfig={"responseMimeType": "application/json", key: schema})
        assert chat["response_format"] == {"type": "json_schema", "json_schema": {
            "name": "response", "schema": {"type": "object", "properties": {"name": {"type": "string"}}}}}


@pytest.mark.parametrize("thinking, effort", [
    ({"includeThoughts": True}, None),
    ({"includeThoughts": True, "thinkingBudget": -1}, None),
    ({"thinkingBudget": 0}, None),
    ({"thinkingBudget": 1024}, "low"),
    ({"thinking_budget": 10000}, "medium"),
    ({"thinkingBudget": 24576}, "high"),
    ({"thinkingLevel": "LOW"}, "low"),
    ({"thinkingLevel": "high"}, "high"),
])
def test_a_thinking_budget_or_level_becomes_a_reasoning_effort(thinking, effort):
    assert decode(generationConfig={"thinkingConfig": thinking}).get("reasoning_effort") == effort


@pytest.mark.parametrize("body, where", [
    ({"contents": []}, "contents"),
    ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "contents[0].role"),
    ({"contents": [{"parts": "text"}]}, "contents[0].parts"),
    ({"contents": [{"parts": [{"inlineData": {"data": "x"}}]}]}, "contents[0].parts[0].inlineData"),
    ({"contents": [{"parts": [{"functionResponse": {"response": {}}}]}]},
     "contents[0].parts[0].functionResponse.name"),
    ({"contents": HI, "tools": [{"functionDeclarations": [{"description": "nameless"}]}]},
     "tools[0].functionDeclarations[0]"),
    ({"contents": HI, "generationConfig": {"maxOutputTokens": 0}}, "generationConfig.maxOutputTokens"),
    ({"contents": HI, "generationConfig": {"topK": 1.5}}, "generationConfig.topK"),
    ({"contents": HI, "generationConfig": {"stopSequences": "END"}}, "generationConfig.stopSequences"),
    ({"contents": HI, "generationConfig": {"candidateCount": 3}}, "generationConfig.candidateCount"),
])
def test_shapes_gemini_refuses_are_refused_naming_the_field(body, where):
    assert refusal(body).message.startswith(f"{where}: ")


def test_what_nests_too_deep_to_be_written_out_is_refused():
    deep = orjson.loads(b"[" * 400 + b"]" * 400)
    error = refusal({"contents": [{"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"x": deep}}}]}]})
    assert "nested deeper" in error.message


def test_count_tokens_takes_contents_or_a_whole_request():
    count = GEMINI.bind(Route("countTokens", MODEL))
    assert count.decode_count({"contents": HI}) == {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}
    whole = count.decode_count({"generateContentRequest": {
        "model": f"models/{MODEL}", "contents": HI, "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "tools": FUNCTIONS, "generationConfig": {"maxOutputTokens": 10}}})
    assert [m["role"] for m in whole["messages"]] == ["system", "user"] and len(whole["tools"]) == 3
    assert "max_tokens" not in whole and count.encode_count(42) == b'{"totalTokens":42}'


def test_embedding_requests_become_embeddings_bodies():
    one = GEMINI.bind(Route("embedContent", "text-embedding-004"))
    batch = GEMINI.bind(Route("batchEmbedContents", "text-embedding-004"))
    assert one.mode == batch.mode == "embeddings" and GENERATE.mode == "chat"
    assert one.decode({"content": {"parts": [{"text": "a"}, {"text": "b"}]}, "taskType": "RETRIEVAL_DOCUMENT",
                       "outputDimensionality": 256}) == {"model": "text-embedding-004", "input": "a\nb",
                                                         "dimensions": 256}
    assert batch.decode({"requests": [{"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}},
                                      {"content": {"parts": [{"text": "b"}]}}]}) == {
        "model": "text-embedding-004", "input": ["a", "b"]}
    assert refusal({"content": {"parts": [{"inlineData": {}}]}}, one).message.startswith("request.content.parts")
    assert refusal({"requests": []}, batch).message.startswith("requests")


def test_embeddings_answers_are_geminis():
    answer = {"object": "list", "data": [{"index": 1, "embedding": [0.3]}, {"index": 0, "embedding": [0.1, 0.2]}]}
    one = GEMINI.bind(Route("embedContent", "e"))
    batch = GEMINI.bind(Route("batchEmbedContents", "e"))
    assert orjson.loads(batch.encode_answer(answer, model="e", request_id="r")) == {
        "embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3]}]}
    assert orjson.loads(one.encode_answer({"data": [{"index": 0, "embedding": [0.5]}]}, model="e", request_id="r")) \
        == {"embedding": {"values": [0.5]}}


def chat_completion(message: dict, finish: str, usage: dict | None = None) -> dict:
    answer = {"id": "chatcmpl-1", "object": "chat.completion", "model": "upstream-name",
              "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}]}
    if usage is not None:
        answer["usage"] = usage
    return answer


def test_an_answer_becomes_a_generate_content_response_with_thoughts_calls_and_usage():
    answer = chat_completion({"content": "Checking.", "reasoning_content": "Two cities.", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
         "extra_content": {"google": {"thought_signature": "c2ln"}}},
        {"type": "function", "function": {"name": "get_time", "arguments": "not json"}}]}, "tool_calls", {
        "prompt_tokens": 100, "completion_tokens": 30, "total_tokens": 130,
        "prompt_tokens_details": {"cached_tokens": 80}, "completion_tokens_details": {"reasoning_tokens": 12}})
    body = orjson.loads(GENERATE.encode_answer(answer, model=MODEL, request_id="req1"))
    assert body == {
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "Two cities.", "thought": True}, {"text": "Checking."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"},
             "thoughtSignature": "c2ln"},
            {"functionCall": {"name": "get_time", "args": {}, "id": "call_req1_1"}}]},
            "index": 0, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 18, "totalTokenCount": 130,
                          "thoughtsTokenCount": 12, "cachedContentTokenCount": 80},
        "modelVersion": MODEL, "responseId": "req1"}


@pytest.mark.parametrize("finish, reason", [("stop", "STOP"), ("length", "MAX_TOKENS"),
                                            ("content_filter", "SAFETY"), ("something_new", "OTHER")])
def test_finish_reasons_map_to_geminis(finish, reason):
    body = orjson.loads(GENERATE.encode_answer(chat_completion({"content": "x"}, finish), model=MODEL,
                                               request_id="r"))
    assert body["candidates"][0]["finishReason"] == reason and "usageMetadata" not in body


def chunk(delta: dict | None = None, finish: str | None = None, usage: dict | None = None) -> dict:
    out = {"id": "c", "object": "chat.completion.chunk", "choices": []}
    if delta is not None or finish is not None:
        out["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    if usage is not None:
        out["usage"] = usage
    return out


def run_stream(sse: bool, chunks: list[dict]) -> bytes:
    encoder = GEMINI.bind(Route("streamGenerateContent", MODEL, sse=sse)).stream_encoder(model=MODEL,
                                                                                        request_id="req1")
    return b"".join(encoder.feed(c) for c in chunks) + encoder.close()


STREAM = [chunk({"role": "assistant", "reasoning_content": "Hmm."}), chunk({"content": "Hel"}),
          chunk({"content": "lo"}),
          chunk({"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "f", "arguments": '{"x"'}}]}),
          chunk({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
          chunk(finish="tool_calls"),
          chunk(usage={"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9})]


def test_a_stream_sends_text_as_it_comes_and_calls_whole_with_the_finish_and_usage_last():
    frames = run_stream(True, STREAM).split(b"\r\n\r\n")
    assert frames[-1] == b"" and all(f.startswith(b"data: ") for f in frames[:-1])
    chunks = [orjson.loads(f.removeprefix(b"data: ")) for f in frames[:-1]]
    assert [c["candidates"][0]["content"]["parts"] for c in chunks] == [
        [{"text": "Hmm.", "thought": True}], [{"text": "Hel"}], [{"text": "lo"}],
        [{"functionCall": {"name": "f", "args": {"x": 1}, "id": "call_a"}}]]
    assert [c["candidates"][0].get("finishReason") for c in chunks] == [None, None, None, "STOP"]
    assert chunks[-1]["usageMetadata"] == {"promptTokenCount": 5, "candidatesTokenCount": 4, "totalTokenCount": 9}
    assert {(c["modelVersion"], c["responseId"]) for c in chunks} == {(MODEL, "req1")}


def test_a_stream_without_alt_sse_is_a_json_array_written_as_it_comes():
    body = run_stream(False, STREAM)
    assert body.startswith(b"[{") and body.endswith(b"}]")
    chunks = orjson.loads(body)
    assert len(chunks) == 4 and chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert orjson.loads(run_stream(False, [])) == [{"candidates": [{"content": {"role": "model", "parts": []},
                                                                     "index": 0, "finishReason": "STOP"}],
                                                     "modelVersion": MODEL, "responseId": "req1"}]


@pytest.mark.parametrize("sse", [True, False])
def test_a_broken_stream_ends_with_googles_error(sse):
    encoder = GEMINI.bind(Route("streamGenerateContent", MODEL, sse=sse)).stream_encoder(model=MODEL,
                                                                                        request_id="req1")
    body = encoder.feed(chunk({"content": "Hel"})) + encoder.fail(RelayError(502, "upstream went away"))
    assert encoder.close() == b"" and encoder.feed(chunk({"content": "late"})) == b""
    if sse:
        last = orjson.loads(body.split(b"\r\n\r\n")[-2].removeprefix(b"data: "))
    else:
        last = orjson.loads(body)[-1]
    assert last == {"error": {"code": 502, "message": "upstream went away (request id: req1)", "status": "INTERNAL"}}


@pytest.mark.parametrize("sse", [True, False])
def test_a_stream_the_gateway_breaks_off_ends_as_the_encoders_failure_does(sse):
    codec = GEMINI.bind(Route("streamGenerateContent", MODEL, sse=sse))
    encoder = codec.stream_encoder(model=MODEL, request_id="req1")
    begun = encoder.feed(chunk({"content": "Hel"}))
    err = RelayError(502, "upstream went away")
    assert begun + codec.stream_error(err, "req1") == begun + encoder.fail(err)


def test_a_request_for_a_native_channel_is_decoded_whole_when_chat_can_carry_it():
    assert GEMINI.native_headers == ()
    assert GENERATE.decode_native({"contents": HI}) == (decode(), None)
    assert GENERATE.decode_native({"contents": HI}, counting=True) == (GENERATE.decode_count({"contents": HI}), None)
    embed = GEMINI.bind(Route("embedContent", "text-embedding-004"))
    body = {"content": {"parts": [{"text": "Hi"}]}}
    assert embed.decode_native(body) == (embed.decode(body), None)


def test_what_chat_cannot_carry_is_priced_by_its_words_and_comes_with_the_conversions_refusal():
    body = {"contents": [{"role": "user", "parts": [{"text": "Two"}, {"text": "ideas"}]}],
            "generationConfig": {"candidateCount": 2}}
    streamed = GEMINI.bind(Route("streamGenerateContent", MODEL, sse=True))
    chat, refused = streamed.decode_native(body)
    assert chat == {"model": MODEL, "messages": [{"role": "user", "content": "Two\nideas"}], "stream": True}
    assert refused.status == 400 and "candidateCount" in refused.message
    embed = GEMINI.bind(Route("embedContent", "text-embedding-004"))
    image = {"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "iVBO"}}]}}
    chat, refused = embed.decode_native(image)
    assert chat == {"model": "text-embedding-004", "input": [" "]} and refused.status == 400


def test_a_native_stream_without_alt_sse_is_written_as_one_json_array():
    assert GENERATE.bind(Route("streamGenerateContent", MODEL, sse=True)).native_framer() is None
    framer = GEMINI.bind(Route("streamGenerateContent", MODEL)).native_framer()
    assert framer.content_type == b"application/json"
    written = framer.feed(b'data: {"a": 1}\r\n\r\ndata: {"b"') + framer.feed(b': 2}\r\n\r\n: keep-alive\r\n\r\n')
    assert written + framer.close() == b'[{"a": 1},\r\n{"b": 2}]'
    empty = GEMINI.bind(Route("streamGenerateContent", MODEL)).native_framer()
    assert empty.close() == b"[]"


def test_a_vendors_error_keeps_googles_status_name():
    code, body = GEMINI.render_error(RelayError(400, "Not now.", code="failed_precondition"), "")
    assert orjson.loads(body) == {"error": {"code": 400, "message": "Not now.", "status": "FAILED_PRECONDITION"}}
    code, body = GEMINI.render_error(RelayError(400, "Bad.", code="invalid_json"), "")
    assert orjson.loads(body)["error"]["status"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize("status, name", [(400, "INVALID_ARGUMENT"), (401, "UNAUTHENTICATED"),
                                          (403, "PERMISSION_DENIED"), (404, "NOT_FOUND"),
                                          (429, "RESOURCE_EXHAUSTED"), (500, "INTERNAL"), (503, "UNAVAILABLE"),
                                          (422, "INVALID_ARGUMENT"), (502, "INTERNAL")])
def test_errors_are_in_googles_shape(status, name):
    code, body = GEMINI.render_error(RelayError(status, "No."), "req1")
    assert code == status
    assert orjson.loads(body) == {"error": {"code": status, "message": "No. (request id: req1)", "status": name}}


def test_the_model_list_and_one_model_are_in_geminis_shape():
    status, body = GEMINI.encode_models(["gemini-2.5-flash", "gpt-4o"], "")
    models = orjson.loads(body)["models"]
    assert status == 200 and [m["name"] for m in models] == ["models/gemini-2.5-flash", "models/gpt-4o"]
    assert "generateContent" in models[0]["supportedGenerationMethods"]
    assert GEMINI.encode_models(["gpt-4o"], "gpt-4o")[0] == 200
    status, body = GEMINI.encode_models(["gpt-4o"], "gemini-2.5-pro")
    assert status == 404 and orjson.loads(body)["error"]["status"] == "NOT_FOUND"


JUNK = (None, 5, 2.5, "x", "20", [1], {"a": [1]}, True, -3)


def generate_response(answer: bytes | dict):
    """The answer (or a stream's chunk) as the google-genai SDK reads it: one it would refuse fails the test."""
    from google.genai import types

    return types.GenerateContentResponse.model_validate(orjson.loads(answer) if isinstance(answer, bytes) else answer)


@pytest.mark.parametrize("junk", JUNK)
def test_a_vendors_answer_in_the_wrong_shapes_is_answered_not_failed(junk):
    for odd in (junk, {"choices": junk}, {"choices": [junk]}, {"choices": [{"message": junk, "finish_reason": junk}]},
                {"choices": [{"message": {"content": junk, "tool_calls": junk, "reasoning_content": junk}}]},
                {"choices": [{"message": {"content": [{"text": junk}, junk], "tool_calls": [
                    junk, {"id": junk, "function": junk, "extra_content": junk}]}}]},
                {"choices": [{"message": {"tool_calls": [{"function": {"name": junk, "arguments": junk},
                                                          "extra_content": {"google": junk}}]}}]},
                {"choices": [{"message": {"content": "x"}}], "usage": {
                    "prompt_tokens": junk, "completion_tokens": junk, "total_tokens": junk,
                    "prompt_tokens_details": junk, "completion_tokens_details": {"reasoning_tokens": junk}}}):
        response = generate_response(GENERATE.encode_answer(odd, model=MODEL, request_id="r"))
        usage = response.usage_metadata
        assert usage is None or min(usage.prompt_token_count, usage.candidates_token_count) >= 0


@pytest.mark.parametrize("junk", JUNK)
def test_embeddings_in_the_wrong_shapes_are_answered_not_failed(junk):
    for method in ("embedContent", "batchEmbedContents"):
        codec = GEMINI.bind(Route(method, "e"))
        for odd in (junk, {"data": junk}, {"data": [junk, {"index": junk, "embedding": junk}]},
                    {"data": [{"embedding": [0.5, junk]}]}):
            body = orjson.loads(codec.encode_answer(odd, model="e", request_id="r"))
            values = [body["embedding"]] if method == "embedContent" else body["embeddings"]
            assert all(all(isinstance(v, float | int) for v in item["values"]) for item in values)


@pytest.mark.parametrize("junk", JUNK)
def test_chunks_in_the_wrong_shapes_are_streamed_past_not_failed(junk):
    chunks = [{"choices": junk}, {"choices": [junk]}, {"choices": [{"delta": junk, "finish_reason": junk}]},
              {"choices": [{"index": 0, "delta": {"content": "kept", "reasoning_content": junk}}]},
              {"choices": [{"delta": {"content": junk, "tool_calls": junk}}]},
              {"choices": [{"delta": {"tool_calls": [junk, {"index": junk, "id": junk, "function": junk}]}}]},
              {"choices": [{"delta": {"tool_calls": [{"function": {"name": junk, "arguments": junk}}]}}]},
              {"usage": junk}, {"usage": {"prompt_tokens": junk, "completion_tokens": junk}}]
    responses = [generate_response(chunk) for chunk in orjson.loads(run_stream(False, chunks))]
    assert "kept" in "".join(part.text or "" for response in responses
                             for part in response.candidates[0].content.parts)


def test_usage_counts_are_read_as_billing_reads_them():
    usage = {"prompt_tokens": "20", "completion_tokens": 9.0, "total_tokens": -1,
             "prompt_tokens_details": {"cached_tokens": 50}, "completion_tokens_details": {"reasoning_tokens": 12}}
    body = orjson.loads(GENERATE.encode_answer(chat_completion({"content": "x"}, "stop", usage), model=MODEL,
                                               request_id="r"))
    assert body["usageMetadata"] == {"promptTokenCount": 0, "candidatesTokenCount": 0, "totalTokenCount": 9,
                                     "thoughtsTokenCount": 9}
