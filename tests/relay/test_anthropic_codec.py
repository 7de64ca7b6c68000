"""The Messages codec on its own: requests to the internal chat body, chat answers and chunks to Anthropic's."""

from __future__ import annotations

import orjson
import pytest
from anthropic.types import Message

from relay.codecs import ANTHROPIC, for_path
from relay.codecs.base import Translator
from relay.errors import RelayError
from tests.fuzz.checks import anthropic_message_of

WEATHER = {"name": "get_weather", "description": "Weather for a place",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


def decode(**fields) -> dict:
    return ANTHROPIC.decode({"model": "claude-x", "max_tokens": 100,
                             "messages": [{"role": "user", "content": "Hi"}], **fields})


def refusal(body: dict) -> RelayError:
    with pytest.raises(RelayError) as refused:
        ANTHROPIC.decode(body)
    assert refused.value.status == 400
    return refused.value


def test_a_plain_request_becomes_a_chat_request():
    assert decode() == {"model": "claude-x", "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]}


def test_system_blocks_lose_their_cache_marks_and_go_first():
    chat = decode(system=[{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
                          {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}])
    assert chat["messages"][0] == {"role": "system", "content": "You are Claude Code.\n\nBe brief."}
    assert decode(system="Be brief.")["messages"][0] == {"role": "system", "content": "Be brief."}


def test_system_entries_among_the_messages_stay_where_they_are():
    chat = decode(messages=[{"role": "user", "content": "Hi"},
                            {"role": "system", "content": [{"type": "text", "text": "Mind the tools."}]},
                            {"role": "assistant", "content": "Hello"}])
    assert [m["role"] for m in chat["messages"]] == ["user", "system", "assistant"]
    assert chat["messages"][1]["content"] == "Mind the tools."


def test_images_become_image_parts_by_data_url_or_url():
    chat = decode(messages=[{"role": "user", "content": [
        {"type": "text", "text": "Compare", "cache_control": {"type": "ephemeral"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}}]}])
    assert chat["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}}]}]


def test_tool_use_and_tool_results_become_tool_calls_and_tool_messages():
    chat = decode(messages=[
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Two calls.", "signature": "sig"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True,
             "content": [{"type": "text", "text": "timeout"}]},
            {"type": "text", "text": "Summarise."}]}])
    assistant, first, second, user = chat["messages"][1:]
    assert assistant == {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}]}
    assert first == {"role": "tool", "tool_call_id": "toolu_1", "content": "Sunny"}
    assert second == {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: timeout"}
    assert user == {"role": "user", "content": [{"type": "text", "text": "Summarise."}]}


def test_an_assistant_turn_of_calls_alone_has_no_content_and_a_tool_result_may_hold_images():
    chat = decode(messages=[
        {"role": "user", "content": "Screenshot?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "shot", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
            {"type": "text", "text": "taken"},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/s.png"}}]}]}])
    assert chat["messages"][1]["content"] is None
    assert chat["messages"][2] == {"role": "tool", "tool_call_id": "t1", "content": "taken"}
    assert chat["messages"][3] == {"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/s.png"}}]}


def test_tools_keep_their_schema_and_lose_fields_chat_cannot_carry():
    chat = decode(tools=[{**WEATHER, "cache_control": {"type": "ephemeral"}, "defer_loading": True},
                         {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}],
                  tool_choice={"type": "any", "disable_parallel_tool_use": True})
    assert chat["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "parameters": WEATHER["input_schema"], "description": "Weather for a place"}}]
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False


@pytest.mark.parametrize("choice, expected", [
    ({"type": "auto"}, "auto"), ({"type": "any"}, "required"), ({"type": "none"}, "none"),
    ({"type": "tool", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}),
])
def test_tool_choice_maps_to_chat(choice, expected):
    assert decode(tools=[WEATHER], tool_choice=choice)["tool_choice"] == expected


def test_only_server_tools_leave_no_tools_and_no_tool_choice():
    chat = decode(tools=[{"type": "web_search_20250305", "name": "web_search"}], tool_choice={"type": "auto"})
    assert "tools" not in chat and "tool_choice" not in chat


def test_sampling_stop_stream_and_user_carry_over():
    chat = decode(stop_sequences=["END"], temperature=0.2, top_p=0.9, top_k=40, stream=True,
                  metadata={"user_id": "user-7"})
    assert chat["stop"] == ["END"] and (chat["temperature"], chat["top_p"], chat["top_k"]) == (0.2, 0.9, 40)
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert chat["user"] == "user-7"


@pytest.mark.parametrize("thinking, effort", [
    ({"type": "enabled", "budget_tokens": 1024}, "low"),
    ({"type": "enabled", "budget_tokens": 10000}, "medium"),
    ({"type": "enabled", "budget_tokens": 32000}, "high"),
    ({"type": "adaptive"}, None),
    ({"type": "disabled"}, None),
])
def test_thinking_with_a_budget_becomes_a_reasoning_effort(thinking, effort):
    assert decode(thinking=thinking).get("reasoning_effort") == effort


def test_unknown_top_level_fields_are_dropped():
    chat = decode(context_management={"edits": [{"type": "clear_tool_uses_20250919"}]},
                  output_config={"effort": "high"}, service_tier="auto", container=None)
    assert set(chat) == {"model", "max_tokens", "messages"}


@pytest.mark.parametrize("body, where", [
    ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"model": "m", "max_tokens": 5, "messages": "hello"}, "messages"),
    ({"model": "m", "max_tokens": 5, "messages": []}, "messages"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "video"}]}]},
     "messages.0.content.0"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "x"},
      "tools": [WEATHER]}, "tool_choice"),
])
def test_shapes_anthropic_refuses_are_refused(body, where):
    err = refusal(body)
    assert err.param == where and err.message.startswith(where)


def test_a_count_request_needs_no_max_tokens_and_keeps_the_tools():
    chat = ANTHROPIC.decode_count({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [WEATHER]})
    assert "max_tokens" not in chat and chat["tools"][0]["function"]["name"] == "get_weather"


# --- answers -------------------------------------------------------------------------------------------------

def answer(message: dict, finish: str = "stop", usage: dict | None = None) -> dict:
    return orjson.loads(ANTHROPIC.encode_answer(
        {"id": "chatcmpl-1", "model": "gpt-4o-mini-2024", "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
         "usage": usage or {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}},
        model="claude-x", request_id="R1"))


def test_a_chat_answer_becomes_a_message_with_the_clients_model():
    assert answer({"content": "Hello"}) == {
        "id": "msg_R1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{"type": "text", "text": "Hello"}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": 7}}


def test_reasoning_and_tool_calls_become_thinking_and_tool_use_blocks():
    message = answer({"content": None, "reasoning_content": "Let me see.", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "not json"}}]},
        finish="tool_calls")
    assert message["content"] == [
        {"type": "thinking", "thinking": "Let me see.", "signature": ""},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}}]
    assert message["stop_reason"] == "tool_use"


@pytest.mark.parametrize("finish, reason", [("stop", "end_turn"), ("length", "max_tokens"),
                                            ("content_filter", "refusal"), (None, "end_turn")])
def test_finish_reasons_map_to_stop_reasons(finish, reason):
    assert answer({"content": "x"}, finish=finish)["stop_reason"] == reason


def test_cached_prompt_tokens_are_reported_apart_from_input_tokens():
    usage = {"prompt_tokens": 100, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 80}}
    assert answer({"content": "x"}, usage=usage)["usage"] == {"input_tokens": 20, "output_tokens": 5,
                                                              "cache_read_input_tokens": 80}


def test_prompt_tokens_written_to_the_cache_are_reported_apart_too():
    usage = {"prompt_tokens": 100, "completion_tokens": 5,
             "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 30}}
    assert answer({"content": "x"}, usage=usage)["usage"] == {"input_tokens": 10, "output_tokens": 5,
                                                              "cache_read_input_tokens": 60,
                                                              "cache_creation_input_tokens": 30}


JUNK = (None, 5, 2.5, "x", "20", [1], {"a": [1]}, True, -3)


def message_of(raw: bytes) -> Message:
    """The answer as the client's SDK reads it: a Message it would refuse fails the test."""
    return Message.model_validate(orjson.loads(raw))


@pytest.mark.parametrize("junk", JUNK)
def test_a_vendors_answer_in_the_wrong_shapes_is_answered_not_failed(junk):
    for odd in (junk, {"choices": junk}, {"choices": [junk]}, {"choices": [{"message": junk, "finish_reason": junk}]},
                {"choices": [{"message": {"content": junk, "tool_calls": junk, "reasoning_content": junk}}]},
                {"choices": [{"message": {"content": [{"text": junk}, junk], "tool_calls": [
                    junk, {"id": junk, "function": junk}]}}]},
                {"choices": [{"message": {"tool_calls": [{"function": {"name": junk, "arguments": junk}}]}}]},
                {"choices": [{"delta": {"content": "a chunk for an answer"}}]}, {"choices": [], "usage": junk},
                {"choices": [{"message": {"content": "x"}}], "usage": {
                    "prompt_tokens": junk, "completion_tokens": junk, "prompt_tokens_details": junk}},
                {"choices": [{"message": {"content": "x"}}], "usage": {
                    "prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": junk}}}):
        message = message_of(ANTHROPIC.encode_answer(odd, model="claude-x", request_id="R1"))
        assert message.usage.input_tokens >= 0 and message.usage.output_tokens >= 0


@pytest.mark.parametrize("usage, expected", [
    ({"prompt_tokens": "20", "completion_tokens": 9}, {"input_tokens": 0, "output_tokens": 9}),
    ({"prompt_tokens": 20.0, "completion_tokens": -1}, {"input_tokens": 20, "output_tokens": 0}),
    ({"prompt_tokens": 20, "completion_tokens": 9, "prompt_tokens_details": {"cached_tokens": 50}},
     {"input_tokens": 0, "output_tokens": 9, "cache_read_input_tokens": 20}),
    ({"prompt_tokens": 2**70, "completion_tokens": True}, {"input_tokens": 0, "output_tokens": 0}),
])
def test_usage_counts_are_read_as_billing_reads_them(usage, expected):
    assert answer({"content": "x"}, usage=usage)["usage"] == expected


def test_of_several_choices_the_first_is_the_message():
    raw = ANTHROPIC.encode_answer({"choices": [{"index": 0, "message": {"content": "one"}, "finish_reason": "stop"},
                                               {"index": 1, "message": {"content": "two"}, "finish_reason": "length"}]},
                                  model="claude-x", request_id="R1")
    message = message_of(raw)
    assert [block.text for block in message.content] == ["one"] and message.stop_reason == "end_turn"


def test_tool_calls_without_ids_or_names_get_ids_and_empty_names():
    message = message_of(ANTHROPIC.encode_answer({"choices": [{"message": {"tool_calls": [
        {"function": {"arguments": {"city": "Paris"}}}, {"id": 7, "function": {"name": ["f"], "arguments": "[1]"}}]}}]},
        model="claude-x", request_id="R1"))
    assert [(b.id, b.name, b.input) for b in message.content] == [("toolu_R1_0", "", {"city": "Paris"}),
                                                                  ("toolu_R1_1", "", {})]
    assert message.stop_reason == "tool_use"


# --- streams ---------------------------------------------------------------------------------------------------

def chunk(delta: dict | None = None, finish: str | None = None, usage: dict | None = None) -> dict:
    choices = [] if delta is None and finish is None else [{"index": 0, "delta": delta or {},
                                                             "finish_reason": finish}]
    out = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": choices}
    if usage is not None:
        out["usage"] = usage
    return out


def events(raw: bytes) -> list[tuple[str, dict]]:
    out = []
    for frame in raw.split(b"\n\n"):
        if frame:
            kind, data = frame.split(b"\n")
            assert kind.startswith(b"event: ") and data.startswith(b"data: ")
            payload = orjson.loads(data[6:])
            assert payload["type"] == kind[7:].decode()
            out.append((payload["type"], payload))
    return out


def streamed(*chunks: dict) -> list[tuple[str, dict]]:
    encoder = ANTHROPIC.stream_encoder(model="claude-x", request_id="R1")
    return events(b"".join(encoder.feed(c) for c in chunks) + encoder.close())


def test_a_text_stream_is_anthropics_event_sequence():
    got = streamed(chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}), chunk({"content": "lo"}),
                   chunk(finish="stop"), chunk(usage={"prompt_tokens": 11, "completion_tokens": 7}))
    assert [kind for kind, _ in got] == ["message_start", "ping", "content_block_start", "content_block_delta",
                                         "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    start = got[0][1]["message"]
    assert (start["id"], start["model"], start["content"], start["usage"]["input_tokens"]) == ("msg_R1", "claude-x",
                                                                                             [], 0)
    assert got[2][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert got[3][1]["delta"] == {"type": "text_delta", "text": "Hel"}
    assert got[6][1] == {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                         "usage": {"input_tokens": 11, "output_tokens": 7}}


def test_thinking_then_text_are_two_blocks():
    got = streamed(chunk({"reasoning_content": "Hmm"}), chunk({"reasoning": ", yes"}), chunk({"content": "42"}),
                   chunk(finish="stop"))
    blocks = [(kind, p.get("index"), p.get("content_block", p.get("delta"))) for kind, p in got[2:-2]]
    assert blocks == [
        ("content_block_start", 0, {"type": "thinking", "thinking": "", "signature": ""}),
        ("content_block_delta", 0, {"type": "thinking_delta", "thinking": "Hmm"}),
        ("content_block_delta", 0, {"type": "thinking_delta", "thinking": ", yes"}),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, {"type": "text", "text": ""}),
        ("content_block_delta", 1, {"type": "text_delta", "text": "42"}),
        ("content_block_stop", 1, None)]


def tool_call(index, **fields) -> dict:
    return chunk({"tool_calls": [{"index": index, **fields}]})


def blocks_of(got) -> list[tuple]:
    return [(kind, p.get("index"), p.get("content_block", p.get("delta"))) for kind, p in got[2:-2] if kind != "ping"]


def test_tool_calls_stream_as_whole_tool_use_blocks_once_their_run_ends():
    got = streamed(chunk({"content": "Checking."}),
                   tool_call(0, id="call_a", type="function", function={"name": "get_weather", "arguments": ""}),
                   tool_call(0, function={"arguments": '{"city":'}),
                   tool_call(1, id="call_b", type="function", function={"name": "get_time", "arguments": "{}"}),
                   tool_call(0, function={"arguments": '"Paris"}'}),  # a vendor interleaving parallel calls
                   chunk(finish="tool_calls"))
    assert blocks_of(got) == [
        ("content_block_start", 0, {"type": "text", "text": ""}),
        ("content_block_delta", 0, {"type": "text_delta", "text": "Checking."}),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}}),
        ("content_block_delta", 1, {"type": "input_json_delta", "partial_json": '{"city":"Paris"}'}),
        ("content_block_stop", 1, None),
        ("content_block_start", 2, {"type": "tool_use", "id": "call_b", "name": "get_time", "input": {}}),
        ("content_block_delta", 2, {"type": "input_json_delta", "partial_json": "{}"}),
        ("content_block_stop", 2, None)]
    assert got[-2][1]["delta"]["stop_reason"] == "tool_use"


@pytest.mark.parametrize("pieces, expected", [
    (['{"city":', ' "Par'], {}),  # cut short
    (["not json"], {}), (["[1, 2]"], {}), (['"Paris"'], {}),
    ([{"city": "Paris"}], {"city": "Paris"}),  # a vendor sending the object itself
    (["[" * 300 + "]" * 300], {}),  # more than can be written back out
])
def test_streamed_arguments_that_make_no_json_object_arrive_as_an_empty_input(pieces, expected):
    got = streamed(tool_call(0, id="call_a", function={"name": "f"}),
                   *(tool_call(0, function={"arguments": piece}) for piece in pieces), chunk(finish="tool_calls"))
    deltas = [p["delta"]["partial_json"] for kind, p in got if kind == "content_block_delta"]
    assert len(deltas) == 1 and orjson.loads(deltas[0]) == expected


def test_held_tool_calls_go_out_before_the_text_after_them_and_their_late_pieces_are_dropped():
    got = streamed(tool_call(0, id="call_a", function={"name": "f", "arguments": '{"a": 1}'}),
                   chunk({"content": "Done."}), tool_call(0, function={"arguments": "}"}), chunk(finish="stop"))
    assert [(kind, index) for kind, index, _ in blocks_of(got)] == [
        ("content_block_start", 0), ("content_block_delta", 0), ("content_block_stop", 0),
        ("content_block_start", 1), ("content_block_delta", 1), ("content_block_stop", 1)]
    assert blocks_of(got)[1][2]["partial_json"] == '{"a":1}' and blocks_of(got)[4][2]["text"] == "Done."


def test_pings_keep_the_connection_busy_while_tool_calls_are_held(monkeypatch):
    monkeypatch.setattr("relay.codecs.anthropic.PING_EVERY", 0.0)
    encoder = ANTHROPIC.stream_encoder(model="claude-x", request_id="R1")
    encoder.feed(chunk({"content": "Hi"}))
    held = [encoder.feed(tool_call(0, id="c", function={"name": "f", "arguments": p})) for p in ("{", "}")]
    assert [kind for raw in held for kind, _ in events(raw)] == ["content_block_stop", "ping"]


def test_a_stream_that_fails_ends_with_an_error_event_and_no_message_stop():
    encoder = ANTHROPIC.stream_encoder(model="claude-x", request_id="R1")
    raw = encoder.feed(chunk({"content": "Hel"})) + encoder.fail(RelayError(502, "upstream broke"))
    assert encoder.close() == b"" and encoder.feed(chunk({"content": "late"})) == b""
    kind, error = events(raw)[-1]
    assert error == {"type": "error", "error": {"type": "api_error", "message": "upstream broke (request id: R1)"},
                     "request_id": "R1"}


def test_an_empty_stream_is_still_a_whole_message():
    assert [kind for kind, _ in streamed()] == ["message_start", "ping", "message_delta", "message_stop"]


def assert_well_formed(got: list[tuple[str, dict]]) -> Message:
    """Anthropic's event grammar, and the Message the client's SDK builds from the events."""
    assert got[0][0] == "message_start" and got[-1][0] == "message_stop", [kind for kind, _ in got]
    return anthropic_message_of([payload for _, payload in got])


@pytest.mark.parametrize("junk", JUNK)
def test_chunks_in_the_wrong_shapes_are_streamed_past_not_failed(junk):
    got = streamed({"choices": junk}, {"choices": [junk]}, {"choices": [{"delta": junk, "finish_reason": junk}]},
                   {"choices": [{"index": 0, "delta": {"content": "kept", "reasoning_content": junk}}]},
                   {"choices": [{"index": junk, "delta": {"content": junk}}]},
                   {"choices": [{"delta": {"content": junk, "tool_calls": junk}}]},
                   {"choices": [{"delta": {"tool_calls": [junk, {"index": junk, "id": junk, "function": junk}]}}]},
                   {"choices": [{"delta": {"tool_calls": [{"function": {"name": junk, "arguments": junk}}]}}]},
                   {"usage": junk}, {"usage": {"prompt_tokens": junk, "completion_tokens": junk}})
    message = assert_well_formed(got)
    assert "kept" in "".join(block.text for block in message.content if block.type == "text")
    assert message.usage.output_tokens >= 0


def test_the_chunks_of_other_choices_are_left_out():
    got = streamed(chunk({"content": "one"}), {"choices": [{"index": 1, "delta": {"content": "two"}}]},
                   {"choices": [{"index": 1, "delta": {}, "finish_reason": "length"}]}, chunk(finish="stop"))
    message = assert_well_formed(got)
    assert [b.text for b in message.content] == ["one"] and message.stop_reason == "end_turn"


# --- errors and the responder ------------------------------------------------------------------------------------

@pytest.mark.parametrize("status, kind", [
    (400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error"),
    (404, "not_found_error"), (405, "invalid_request_error"), (413, "request_too_large"), (429, "rate_limit_error"),
    (500, "api_error"), (502, "api_error"), (503, "overloaded_error"), (529, "overloaded_error"),
])
def test_errors_take_anthropics_type_for_their_status(status, kind):
    got_status, body = ANTHROPIC.render_error(RelayError(status, "nope", code="x"), "R9")
    assert got_status == status
    assert orjson.loads(body) == {"type": "error", "error": {"type": kind, "message": "nope (request id: R9)"},
                                  "request_id": "R9"}


def test_the_messages_routes_belong_to_the_anthropic_codec():
    assert for_path("/v1/messages") is ANTHROPIC and for_path("/v1/messages/count_tokens") is ANTHROPIC
    assert for_path("/v1/chat/completions") is None and for_path("/v1/messagesx") is None


class Capture:
    def __init__(self):
        self.started = self.finished = False
        self.status, self.body = None, b""

    async def start(self, status, headers):
        self.started, self.status = True, status

    async def write(self, data):
        self.body += data

    async def finish(self, data=b""):
        self.finished = True
        self.body += data

    async def json(self, status, payload, headers=()):
        await self.start(status, list(headers))
        await self.finish(payload)


def frame(payload: dict) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def test_the_translator_reads_frames_split_anywhere_and_drops_done():
    out = Capture()
    translator = Translator(out, ANTHROPIC, model="claude-x", request_id="R1")
    await translator.start(200, [(b"content-type", b"text/event-stream")])
    raw = frame(chunk({"content": "Hi"})) + frame(chunk(finish="stop")) + b"data: [DONE]\n\n"
    await translator.write(raw[:7])
    await translator.write(raw[7:30])
    await translator.finish(raw[30:])
    assert [kind for kind, _ in events(out.body)][-2:] == ["message_delta", "message_stop"]
    assert b"[DONE]" not in out.body and out.finished


async def test_the_translator_turns_an_error_chunk_into_the_error_event():
    out = Capture()
    translator = Translator(out, ANTHROPIC, model="claude-x", request_id="R1")
    await translator.start(200, [(b"content-type", b"text/event-stream")])
    await translator.write(frame(chunk({"content": "Hi"})))
    await translator.finish(frame({"error": {"message": "cut off (request id: R1)", "code": "stream_interrupted"}})
                            + b"data: [DONE]\n\n")
    kinds = [kind for kind, _ in events(out.body)]
    assert kinds[-1] == "error" and "message_stop" not in kinds
    assert events(out.body)[-1][1]["error"]["message"] == "cut off (request id: R1)"


@pytest.mark.parametrize("error", [{"message": 5}, {"message": None}, {}, [1], "plain"])
async def test_an_error_chunk_with_a_message_of_any_type_ends_the_stream_with_an_error_event(error):
    out = Capture()
    translator = Translator(out, ANTHROPIC, model="claude-x", request_id="R1")
    await translator.start(200, [(b"content-type", b"text/event-stream")])
    await translator.write(frame(chunk({"content": "Hi"})))
    await translator.finish(frame({"error": error}) + b"data: [DONE]\n\n")
    kind, payload = events(out.body)[-1]
    assert kind == "error" and payload["error"]["message"].endswith("(request id: R1)")


async def test_the_translator_answers_errors_before_the_answer_in_anthropics_shape():
    out = Capture()
    await Translator(out, ANTHROPIC, model="", request_id="R1").error(RelayError(401, "Invalid API key."))
    assert out.status == 401 and orjson.loads(out.body)["error"]["type"] == "authentication_error"


class Broken:
    """The Messages codec with an encoder that fails, as a codec's bug would."""

    protocol = "anthropic"

    def __getattr__(self, name):
        return getattr(ANTHROPIC, name)

    def encode_answer(self, *args, **kwargs):
        raise KeyError("a field the codec expected")


JSON = [(b"content-type", b"application/json")]


async def test_an_answer_the_codec_cannot_encode_is_an_error_with_its_status_not_under_a_200(caplog):
    out = Capture()
    translator = Translator(out, Broken(), model="claude-x", request_id="R1")
    await translator.start(200, JSON)
    assert not out.started  # nothing goes out before the answer is encoded
    with pytest.raises(RelayError) as failed:
        await translator.finish(orjson.dumps({"choices": [{"message": {"content": "Hi"}}]}))
    await translator.error(failed.value)  # as relay/asgi.py answers it
    assert out.status == 500 and orjson.loads(out.body)["error"]["type"] == "api_error"
    assert "could not be translated" in caplog.text and "KeyError" in caplog.text


async def test_a_whole_answer_that_is_not_json_is_an_error_too():
    out = Capture()
    translator = Translator(out, ANTHROPIC, model="claude-x", request_id="R1")
    await translator.start(200, JSON)
    with pytest.raises(RelayError):
        await translator.finish(b"<html>not json</html>")
    assert not out.started


async def test_a_whole_answer_starts_with_its_status_once_encoded():
    out = Capture()
    translator = Translator(out, ANTHROPIC, model="claude-x", request_id="R1")
    await translator.start(200, JSON)
    await translator.write(b'{"choices": [{"message": {"con')
    assert not out.started and translator.started
    await translator.finish(b'tent": "Hi"}}]}')
    assert out.status == 200 and message_of(out.body).content[0].text == "Hi"


async def test_a_stream_asked_for_and_answered_whole_reaches_the_client_as_events():
    out = Capture()
    translator = Translator(out, ANTHROPIC, model="claude-x", request_id="R1")
    translator.stream = True
    await translator.start(200, JSON)
    await translator.finish(orjson.dumps({"choices": [{"message": {"content": "Hi", "tool_calls": [
        {"id": "c1", "function": {"name": "f", "arguments": '{"a": 1}'}}]}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2}}))
    message = assert_well_formed(events(out.body))
    assert [b.type for b in message.content] == ["text", "tool_use"] and message.content[1].input == {"a": 1}
    assert (message.stop_reason, message.usage.output_tokens) == ("tool_use", 2)
