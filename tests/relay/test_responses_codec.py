"""The Responses codec on its own: requests to the internal chat body, chat answers and chunks to Responses'."""

from __future__ import annotations

import orjson
import pytest

from relay.codecs import RESPONSES, for_path
from relay.codecs.responses_custom import StreamedInput
from relay.errors import RelayError

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a place", "strict": True,
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
CHAT_WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a place",
                                                  "parameters": WEATHER["parameters"], "strict": True}}
FILES = {"type": "namespace", "name": "mcp__files__", "description": "A file server", "tools": [
    {"type": "function", "name": "read", "description": "Read a file",
     "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}]}


def decode(**fields) -> dict:
    return RESPONSES.decode({"model": "gpt-x", "input": "Hi", **fields})


def refusal(**fields) -> RelayError:
    with pytest.raises(RelayError) as refused:
        decode(**fields)
    assert refused.value.status == 400
    return refused.value


def test_the_responses_routes_have_the_codec():
    assert for_path("/v1/responses") is RESPONSES and for_path("/v1/responses/resp_1") is RESPONSES
    assert for_path("/v1/responsesx") is None


def test_a_string_input_and_instructions_become_a_chat_request():
    assert decode() == {"model": "gpt-x", "messages": [{"role": "user", "content": "Hi"}]}
    chat = decode(instructions="Be brief.", max_output_tokens=50, temperature=0.2, top_p=0.9, stream=True)
    assert chat == {"model": "gpt-x", "messages": [{"role": "system", "content": "Be brief."},
                                                   {"role": "user", "content": "Hi"}],
                    "max_tokens": 50, "temperature": 0.2, "top_p": 0.9, "stream": True,
                    "stream_options": {"include_usage": True}}


def test_messages_of_every_role_and_part_become_chat_messages():
    chat = decode(input=[
        {"role": "developer", "content": "Use the tools."},
        {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "A"},
                                                          {"type": "input_text", "text": "B"}]},
        {"role": "user", "content": [{"type": "input_text", "text": "What is this?"},
                                     {"type": "input_image", "image_url": "data:image/png;base64,iVBO",
                                      "detail": "low"}]},
        {"type": "message", "role": "assistant", "status": "completed", "id": "msg_1",
         "content": [{"type": "output_text", "text": "A cat.", "annotations": []}]},
        {"role": "user", "content": [{"type": "input_text", "text": "Thanks"}]}])
    assert chat["messages"] == [
        {"role": "system", "content": "Use the tools."},
        {"role": "system", "content": "A\n\nB"},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO",
                                                                         "detail": "low"}}]},
        {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": "Thanks"}]


def test_function_calls_and_their_outputs_become_tool_calls_and_tool_messages():
    chat = decode(tools=[WEATHER], input=[
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": None},
        {"type": "function_call", "call_id": "call_a", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call", "call_id": "call_b", "name": "get_weather", "arguments": '{"city":"Rome"}'},
        {"type": "function_call_output", "call_id": "call_a", "output": "Sunny"},
        {"type": "function_call_output", "call_id": "call_b", "output": [
            {"type": "input_text", "text": "Rain"}, {"type": "input_image", "image_url": "https://x/r.png"}]}])
    assert chat["tools"] == [CHAT_WEATHER]
    assert chat["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "Sunny"},
        {"role": "tool", "tool_call_id": "call_b", "content": "Rain"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/r.png"}}]}]


def test_a_call_after_the_assistants_text_joins_its_message():
    chat = decode(input=[{"role": "user", "content": "Hi"},
                         {"role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]},
                         {"type": "function_call", "call_id": "c1", "name": "ls", "arguments": "{}"},
                         {"type": "function_call_output", "call_id": "c1", "output": "a.txt"}])
    assert chat["messages"][1] == {"role": "assistant", "content": "Let me look.", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{}"}}]}


def test_namespace_functions_are_flattened_and_hosted_tools_dropped():
    chat = decode(tools=[WEATHER, FILES, {"type": "web_search"}, {"type": "file_search", "vector_store_ids": []},
                         {"type": "namespace", "name": "empty", "description": "", "tools": []}],
                  input=[{"role": "user", "content": "Read a.txt"},
                         {"type": "function_call", "call_id": "c1", "namespace": "mcp__files__", "name": "read",
                          "arguments": '{"path":"a.txt"}'},
                         {"type": "function_call_output", "call_id": "c1", "output": "hello"}])
    assert [tool["function"]["name"] for tool in chat["tools"]] == ["get_weather", "mcp__files__read"]
    assert chat["messages"][1]["tool_calls"][0]["function"]["name"] == "mcp__files__read"
    assert "tools" not in decode(tools=[{"type": "web_search"}], tool_choice="auto", parallel_tool_calls=True)


def test_tool_choice_reasoning_format_and_user_are_carried():
    chat = decode(tools=[WEATHER], tool_choice={"type": "function", "name": "get_weather"},
                  parallel_tool_calls=False, reasoning={"effort": "high", "summary": "auto"},
                  text={"format": {"type": "json_schema", "name": "city", "strict": True,
                                   "schema": {"type": "object", "properties": {}}}}, safety_identifier="u-1")
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert chat["parallel_tool_calls"] is False and chat["reasoning_effort"] == "high" and chat["user"] == "u-1"
    assert chat["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "city", "schema": {"type": "object", "properties": {}}, "strict": True}}
    assert decode(tools=[WEATHER], tool_choice="required")["tool_choice"] == "required"
    # A choice of a tool the bridge dropped leaves the choice to the model.
    assert "tool_choice" not in decode(tools=[WEATHER], tool_choice={"type": "web_search_preview"})
    assert "response_format" not in decode(text={"format": {"type": "text"}, "verbosity": "low"})


def test_what_chat_cannot_carry_and_changes_nothing_is_dropped():
    chat = decode(store=False, include=["reasoning.encrypted_content"], prompt_cache_key="k",
                  client_metadata={"x": "y"}, metadata={"a": "b"}, service_tier="auto", truncation="auto")
    assert chat == {"model": "gpt-x", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.mark.parametrize("fields, param", [
    ({"previous_response_id": "resp_1"}, "previous_response_id"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input"),
])
def test_what_needs_a_stored_response_is_refused_with_the_reason(fields, param):
    refused = refusal(**fields)
    assert refused.param == param and "natively" in refused.message


@pytest.mark.parametrize("fields, param", [
    ({"model": ""}, "model"),
    ({"input": 5}, "input"),
    ({"input": []}, "input"),
    ({"input": [{"role": "robot", "content": "x"}]}, "input"),
    ({"input": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "input"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]}, "input"),
    ({"input": [{"type": "function_call", "name": "f"}]}, "input"),
    ({"input": [{"type": "function_call_output", "output": "x"}]}, "input"),
    ({"tools": [{"type": "function"}]}, "tools"),
    ({"tools": [{"type": "function", "name": "f", "parameters": "x"}]}, "tools"),
    ({"max_output_tokens": 0}, "max_output_tokens"),
])
def test_shapes_openai_refuses_are_a_bad_request_naming_the_field(fields, param):
    assert refusal(**fields).param == param


def chat_answer(message: dict, finish: str = "stop", usage: dict | None = None) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "gpt-x",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
            "usage": usage or {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}}


def encode(answer: dict, request: dict | None = None) -> dict:
    return orjson.loads(RESPONSES.encode_answer(answer, model="alias", request_id="r1",
                                                request=request or {"model": "alias", "input": "Hi"}))


def test_a_chat_answer_becomes_a_response_with_a_message_and_usage():
    response = encode(chat_answer({"content": "Hello"}, usage={
        "prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29,
        "prompt_tokens_details": {"cached_tokens": 16}, "completion_tokens_details": {"reasoning_tokens": 4}}),
        {"model": "alias", "input": "Hi", "instructions": "Be brief.", "temperature": 0.5})
    assert (response["id"], response["object"], response["status"], response["model"]) == (
        "resp_r1", "response", "completed", "alias")
    assert response["output"] == [{"id": "msg_r1_0", "type": "message", "role": "assistant", "status": "completed",
                                   "content": [{"type": "output_text", "text": "Hello", "annotations": [],
                                                "logprobs": []}]}]
    assert response["output_text"] == "Hello"
    assert response["usage"] == {"input_tokens": 20, "input_tokens_details": {"cached_tokens": 16,
                                                                              "cache_write_tokens": 0},
                                 "output_tokens": 9, "output_tokens_details": {"reasoning_tokens": 4},
                                 "total_tokens": 29}
    assert (response["instructions"], response["temperature"], response["tools"]) == ("Be brief.", 0.5, [])


def test_reasoning_and_tool_calls_become_output_items():
    response = encode(chat_answer({"content": None, "reasoning_content": "Look it up.", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "mcp__files__read", "arguments": {"path": "a"}}}]},
        "tool_calls"), {"model": "alias", "input": "Hi", "tools": [WEATHER, FILES]})
    reasoning, paris, read = response["output"]
    assert reasoning == {"id": "rs_r1_0", "type": "reasoning",
                         "summary": [{"type": "summary_text", "text": "Look it up."}]}
    assert paris == {"id": "fc_r1_1", "type": "function_call", "status": "completed",
                     "arguments": '{"city":"Paris"}', "call_id": "call_1", "name": "get_weather"}
    assert (read["namespace"], read["name"], read["arguments"]) == ("mcp__files__", "read", '{"path":"a"}')
    assert response["status"] == "completed" and response["output_text"] == ""


def test_an_answer_cut_by_the_token_limit_is_incomplete():
    response = encode(chat_answer({"content": "Once upon"}, "length"))
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][0]["status"] == "incomplete"


def test_errors_are_in_openais_shape():
    status, body = RESPONSES.render_error(RelayError(401, "Invalid API key", type="invalid_request_error"), "r1")
    assert status == 401
    assert orjson.loads(body)["error"]["message"] == "Invalid API key (request id: r1)"


def chunk(delta: dict | None = None, finish: str | None = None, **extra) -> dict:
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x",
            "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}] if delta is not None or finish
            else [], **extra}


def events(data: bytes) -> list[dict]:
    out = []
    for frame in data.split(b"\n\n"):
        if frame:
            head, body = frame.split(b"\n", 1)
            payload = orjson.loads(body.removeprefix(b"data: "))
            assert head == b"event: " + payload["type"].encode()
            out.append(payload)
    return out


def stream(chunks: list[dict], request: dict | None = None) -> list[dict]:
    encoder = RESPONSES.stream_encoder(model="alias", request_id="r1", request=request or {"input": "Hi"})
    data = b"".join(encoder.feed(c) for c in chunks) + encoder.close()
    assert encoder.close() == b""
    found = events(data)
    assert [e["sequence_number"] for e in found] == list(range(len(found)))
    return found


def test_a_text_stream_has_the_whole_event_sequence():
    found = stream([chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}), chunk({"content": "lo"}),
                    chunk(finish="stop"), chunk(usage={"prompt_tokens": 5, "completion_tokens": 2,
                                                       "total_tokens": 7})])
    assert [e["type"] for e in found] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed"]
    assert found[0]["response"]["status"] == "in_progress" and found[0]["response"]["id"] == "resp_r1"
    assert found[6]["text"] == "Hello" and found[8]["item"]["content"][0]["text"] == "Hello"
    done = found[-1]["response"]
    assert done["status"] == "completed" and done["output"] == [found[8]["item"]]
    assert done["usage"]["input_tokens"] == 5 and done["usage"]["total_tokens"] == 7


def test_streamed_reasoning_then_tool_calls_become_items_in_order():
    found = stream([
        chunk({"reasoning_content": "Paris, "}), chunk({"reasoning_content": "then Rome."}),
        chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                               "function": {"name": "get_weather", "arguments": '{"ci'}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                               "function": {"name": "mcp__files__read", "arguments": '{"path":"a"}'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Paris"}'}}]}),
        chunk(finish="tool_calls")], {"input": "Hi", "tools": [WEATHER, FILES]})
    kinds = [e["type"] for e in found]
    assert kinds[2:8] == ["response.output_item.added", "response.reasoning_summary_part.added",
                          "response.reasoning_summary_text.delta", "response.reasoning_summary_text.delta",
                          "response.reasoning_summary_text.done", "response.reasoning_summary_part.done"]
    assert kinds.count("response.function_call_arguments.delta") == 3
    assert kinds.count("response.function_call_arguments.done") == 2
    reasoning, paris, read = found[-1]["response"]["output"]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "Paris, then Rome."}]
    assert (paris["call_id"], paris["arguments"], paris["status"]) == ("call_a", '{"city":"Paris"}', "completed")
    assert (read["namespace"], read["name"]) == ("mcp__files__", "read")
    added = [e["item"]["id"] for e in found if e["type"] == "response.output_item.added"]
    assert added == [item["id"] for item in found[-1]["response"]["output"]]


def test_a_stream_cut_by_the_token_limit_ends_incomplete():
    found = stream([chunk({"content": "Once"}), chunk(finish="length")])
    assert found[-1]["type"] == "response.incomplete"
    assert found[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert found[-1]["response"]["output"][0]["status"] == "incomplete"


def test_a_failed_stream_ends_with_response_failed_and_what_arrived():
    encoder = RESPONSES.stream_encoder(model="alias", request_id="r1", request={"input": "Hi"})
    data = encoder.feed(chunk({"content": "Half"})) + encoder.fail(RelayError(502, "upstream broke"))
    assert encoder.close() == b"" and encoder.feed(chunk({"content": "more"})) == b""
    failed = events(data)[-1]
    assert failed["type"] == "response.failed" and failed["response"]["status"] == "failed"
    assert failed["response"]["error"] == {"code": "server_error", "message": "upstream broke (request id: r1)"}
    assert failed["response"]["output"][0]["content"][0]["text"] == "Half"


def test_a_stream_the_gateway_breaks_off_ends_with_responses_error_event():
    [error] = events(RESPONSES.stream_error(RelayError(504, "upstream timed out"), "r1"))
    assert error == {"type": "error", "code": "server_error", "message": "upstream timed out (request id: r1)",
                     "param": None}


def test_a_request_for_a_native_channel_is_decoded_whole_with_nothing_left_out():
    # What the bridge can carry is decoded whole; only what builds on a stored response goes natively alone.
    assert RESPONSES.native_headers == ()
    body = {"model": "gpt-x", "input": "Hi", "instructions": "Be brief."}
    assert RESPONSES.decode_native(body) == (RESPONSES.decode(body), None)
    assert RESPONSES.decode_native(body, counting=True) == (RESPONSES.decode_count(body), None)
    with pytest.raises(RelayError):
        RESPONSES.decode_native({"model": "gpt-x"})


def test_an_empty_stream_still_opens_and_completes_the_response():
    assert [e["type"] for e in stream([])] == ["response.created", "response.in_progress", "response.completed"]


def test_usage_a_vendor_reports_in_the_wrong_types_counts_nothing_rather_than_failing():
    response = encode(chat_answer({"content": "Hi"}, usage={"prompt_tokens": "20", "completion_tokens": 9,
                                                            "prompt_tokens_details": [1]}))
    assert response["usage"]["input_tokens"] == 0 and response["usage"]["total_tokens"] == 9
    assert response["usage"]["input_tokens_details"]["cached_tokens"] == 0


JUNK = (None, 5, "x", [1], {"a": [1]}, True)


@pytest.mark.parametrize("junk", JUNK)
def test_a_vendors_answer_in_the_wrong_shapes_is_answered_not_failed(junk):
    for answer in (junk, {"choices": junk}, {"choices": [junk]},
                   {"choices": [{"message": junk, "finish_reason": junk}]},
                   {"choices": [{"message": {"content": junk, "tool_calls": junk}}]},
                   {"choices": [{"message": {"content": [{"text": junk}], "tool_calls": [junk, {"id": junk,
                                                                                           "function": junk}]}}]},
                   {"choices": [{"message": {"tool_calls": [{"function": {"name": junk, "arguments": junk}}]}}]}):
        assert encode(answer)["object"] == "response"


@pytest.mark.parametrize("junk", JUNK)
def test_chunks_in_the_wrong_shapes_are_streamed_past_not_failed(junk):
    found = stream([{"choices": junk}, {"choices": [junk]}, {"choices": [{"delta": junk, "finish_reason": junk}]},
                    {"choices": [{"delta": {"content": junk, "tool_calls": junk}}]},
                    {"choices": [{"delta": {"tool_calls": [junk, {"index": junk, "id": junk, "function": junk}]}}]},
                    {"choices": [{"delta": {"tool_calls": [{"function": {"name": junk, "arguments": junk}}]}}]},
                    {"usage": junk}])
    assert found[-1]["type"] in ("response.completed", "response.incomplete")


@pytest.mark.parametrize("usage, expected", [
    ({"prompt_tokens": -5, "completion_tokens": 9.0}, (0, 9, 0)),
    ({"prompt_tokens": 20, "completion_tokens": 2**70, "prompt_tokens_details": {"cached_tokens": 50}}, (20, 0, 20)),
    ({"prompt_tokens": True, "completion_tokens": "9"}, (0, 0, 0)),
])
def test_usage_counts_are_read_as_billing_reads_them(usage, expected):
    found = encode(chat_answer({"content": "Hi"}, usage=usage))["usage"]
    assert (found["input_tokens"], found["output_tokens"], found["input_tokens_details"]["cached_tokens"]) == expected


def test_of_several_choices_the_first_is_the_response():
    response = encode({"choices": [5, {"index": 0, "message": {"content": "one"}, "finish_reason": "stop"},
                                   {"index": 1, "message": {"content": "two"}, "finish_reason": "length"}]})
    assert response["output_text"] == "one" and response["status"] == "completed"
    found = stream([chunk({"content": "one"}), {"choices": [{"index": 1, "delta": {"content": "two"}}]},
                    {"choices": [{"index": None, "delta": {"content": " more"}}]}, chunk(finish="stop")])
    assert found[-1]["response"]["output"][0]["content"][0]["text"] == "one more"


def test_streamed_arguments_sent_as_an_object_are_written_as_json():
    found = stream([chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f",
                                                                              "arguments": {"city": "Paris"}}}]}),
                    chunk(finish="tool_calls")])
    [call] = found[-1]["response"]["output"]
    assert orjson.loads(call["arguments"]) == {"city": "Paris"}


@pytest.mark.parametrize("item", [{"type": [1], "role": "user"}, {"role": [1], "content": "x"},
                                  {"type": "function_call_output", "call_id": [1], "output": "x"}])
def test_items_with_unhashable_fields_are_refused_not_failed(item):
    assert refusal(input=[item]).param == "input"


def test_the_output_of_a_dropped_call_is_dropped_with_it():
    chat = decode(input=[{"role": "user", "content": "ls"},
                         {"type": "local_shell_call", "call_id": "ls1", "status": "completed",
                          "action": {"type": "exec", "command": ["ls"]}},
                         {"type": "function_call_output", "call_id": "ls1", "output": "a.txt"},
                         {"role": "user", "content": "and then?"}])
    assert chat["messages"] == [{"role": "user", "content": "ls"}, {"role": "user", "content": "and then?"}]


# Codex's apply_patch as it sends it (a custom tool: free-form input with a Lark grammar), its grammar cut short.
PATCH_GRAMMAR = 'start: begin_patch hunk+ end_patch\nbegin_patch: "*** Begin Patch" LF\n'
APPLY_PATCH = {"type": "custom", "name": "apply_patch", "description": "Edit files with a patch.",
               "format": {"type": "grammar", "syntax": "lark", "definition": PATCH_GRAMMAR}}
PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+Hello \"world\"\n*** End Patch\n"


def test_a_custom_tool_becomes_a_function_of_one_string_described_by_its_grammar():
    chat = decode(tools=[WEATHER, APPLY_PATCH, {"type": "custom", "name": "note"}],
                  tool_choice={"type": "custom", "name": "apply_patch"})
    weather, patch, note = chat["tools"]
    assert patch["function"]["name"] == "apply_patch"
    assert patch["function"]["description"] == "Edit files with a patch."
    parameters = patch["function"]["parameters"]
    assert (parameters["required"], parameters["additionalProperties"]) == (["input"], False)
    described = parameters["properties"]["input"]
    assert described["type"] == "string" and "lark grammar" in described["description"]
    assert PATCH_GRAMMAR in described["description"]
    assert note["function"] == {"name": "note", "parameters": {
        "type": "object", "additionalProperties": False, "required": ["input"],
        "properties": {"input": {"type": "string", "description": "The tool's whole input, as free-form text."}}}}
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "apply_patch"}}


def test_a_long_grammar_is_named_not_quoted():
    long = {**APPLY_PATCH, "format": {"type": "grammar", "syntax": "regex", "definition": "a" * 5000}}
    [tool] = decode(tools=[long])["tools"]
    described = tool["function"]["parameters"]["properties"]["input"]["description"]
    assert "regex grammar" in described and "aaaa" not in described


def test_custom_tool_calls_and_their_outputs_become_tool_calls_and_tool_messages():
    chat = decode(tools=[APPLY_PATCH], input=[
        {"role": "user", "content": "Add hello.txt"},
        {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_p", "name": "apply_patch", "input": PATCH},
        {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Success. Updated: A hello.txt"}])
    assert chat["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_p", "type": "function", "function": {
            "name": "apply_patch", "arguments": orjson.dumps({"input": PATCH}).decode()}}]},
        {"role": "tool", "tool_call_id": "call_p", "content": "Success. Updated: A hello.txt"}]


@pytest.mark.parametrize("item", [
    {"type": "custom_tool_call", "call_id": "c", "name": "apply_patch", "input": {"patch": "x"}},
    {"type": "custom_tool_call", "name": "apply_patch", "input": "x"},
    {"type": "custom_tool_call_output", "output": "x"}])
def test_a_malformed_custom_tool_item_is_a_bad_request(item):
    assert refusal(input=[item]).param == "input"


def patch_call(arguments) -> dict:
    return {"id": "call_p", "type": "function", "function": {"name": "apply_patch", "arguments": arguments}}


@pytest.mark.parametrize("arguments, given", [
    (orjson.dumps({"input": PATCH}).decode(), PATCH),
    ({"input": PATCH}, PATCH),  # a vendor that sends arguments as an object
    (PATCH, PATCH),  # a model that wrote the input bare instead of as the one-string object
    ('"just a string"', "just a string")])
def test_a_call_of_a_custom_tool_becomes_a_custom_tool_call_item(arguments, given):
    response = encode(chat_answer({"content": None, "tool_calls": [patch_call(arguments)]}, "tool_calls"),
                      {"model": "alias", "input": "Hi", "tools": [APPLY_PATCH]})
    assert response["output"] == [{"id": "ctc_r1_0", "type": "custom_tool_call", "call_id": "call_p",
                                   "name": "apply_patch", "input": given}]


def test_a_function_named_like_no_custom_tool_stays_a_function_call():
    response = encode(chat_answer({"content": None, "tool_calls": [patch_call('{"input":"x"}')]}, "tool_calls"),
                      {"model": "alias", "input": "Hi", "tools": [{**WEATHER, "name": "apply_patch"}]})
    assert response["output"][0]["type"] == "function_call"


def test_a_streamed_custom_tool_call_has_its_input_events_as_it_arrives():
    arguments = orjson.dumps({"input": PATCH}).decode()
    found = stream([chunk({"content": "Patching."}),
                    chunk({"tool_calls": [{"index": 0, "id": "call_p", "type": "function",
                                           "function": {"name": "apply_patch", "arguments": arguments[:30]}}]}),
                    chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[30:]}}]}),
                    chunk(finish="tool_calls")], {"input": "Hi", "tools": [APPLY_PATCH]})
    kinds = [e["type"] for e in found]
    assert kinds[-6:] == ["response.output_item.added", "response.custom_tool_call_input.delta",
                          "response.custom_tool_call_input.delta", "response.custom_tool_call_input.done",
                          "response.output_item.done", "response.completed"]
    assert "response.function_call_arguments.delta" not in kinds
    added, first, second, done, item_done = found[-6:-1]
    assert added["item"] == {"id": "ctc_r1_1", "type": "custom_tool_call", "call_id": "call_p",
                             "name": "apply_patch", "input": ""}
    where = {"item_id": "ctc_r1_1", "output_index": 1}
    assert {k: first[k] for k in where} == where == {k: done[k] for k in where}
    assert first["delta"] and first["delta"] + second["delta"] == PATCH
    assert done["input"] == PATCH and item_done["item"] == {**added["item"], "input": PATCH}
    message, call = found[-1]["response"]["output"]
    assert call == item_done["item"] and message["content"][0]["text"] == "Patching."


TRICKY = 'a "quote", a back\\slash\n\ttab, é, 雪, 😀 and \u0001.'


@pytest.mark.parametrize("arguments", [orjson.dumps({"input": TRICKY}).decode(),
                                       '{ "input" : "' + TRICKY.replace("😀", "\\ud83d\\ude00")
                                       .replace("é", "\\u00e9").replace("\u0001", "\\u0001")
                                       .replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
                                       .replace("\t", "\\t") + '"}'])
def test_an_input_cut_anywhere_is_decoded_whole_in_order(arguments):
    whole = orjson.loads(arguments)["input"]
    for cut in range(1, len(arguments)):
        decoder = StreamedInput()
        sent = decoder.feed(arguments[:cut]) + decoder.feed(arguments[cut:])
        assert decoder.finish() == (whole, "") and sent == whole, cut
    one_by_one = StreamedInput()
    assert "".join(one_by_one.feed(char) for char in arguments) == whole


@pytest.mark.parametrize("arguments, whole", [(PATCH, PATCH), ('{"patch": "x"}', '{"patch": "x"}'),
                                              ('"bare"', "bare"), ('{"input": "a\nb"}', "a\nb")])
def test_arguments_that_are_not_the_one_string_object_are_read_when_whole(arguments, whole):
    decoder = StreamedInput()
    sent = "".join(decoder.feed(char) for char in arguments)
    assert sent + decoder.finish()[1] == whole and decoder.finish()[0] == whole


def test_a_failed_stream_shows_what_arrived_of_a_custom_tool_calls_input():
    encoder = RESPONSES.stream_encoder(model="alias", request_id="r1", request={"input": "Hi",
                                                                              "tools": [APPLY_PATCH]})
    data = encoder.feed(chunk({"tool_calls": [{"index": 0, "id": "call_p", "type": "function", "function": {
        "name": "apply_patch", "arguments": '{"input":"*** Begin\\'}}]})) + encoder.fail(RelayError(502, "broke"))
    [call] = events(data)[-1]["response"]["output"]
    assert (call["type"], call["input"]) == ("custom_tool_call", "*** Begin")


@pytest.mark.parametrize("model", [None, "", 5])
def test_a_request_for_a_native_channel_without_a_model_is_refused_for_it(model):
    body = {"input": "Hi", "previous_response_id": "resp_1", **({} if model is None else {"model": model})}
    for counting in (False, True):
        with pytest.raises(RelayError) as refused:
            RESPONSES.decode_native(body, counting=counting)
        assert (refused.value.status, refused.value.param) == (400, "model")
