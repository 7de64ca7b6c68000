"""Hypothesis strategies for hostile answers of an OpenAI-protocol upstream: what the codecs translate.

Each answer is near a chat.completion (or a stream of chunks) with any part of it possibly in another
shape or type: counts as strings or floats, a choice without its message, content null or a list, tool
calls whose arguments are no JSON, several choices, huge and unicode text. Values are plain JSON, which
the relay's parser reads, so that the answer reaches the codec rather than the adapter's 502.
"""

from __future__ import annotations

from hypothesis import strategies as st

from tests.fuzz.strategies import encode, plain_numbers, plain_strings, plain_values, to_json

FINISH_REASONS = ("stop", "length", "tool_calls", "function_call", "content_filter", "", "STOP", "end_turn")


def odd(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """The field as it should be, mostly; now and then any JSON value at all."""
    return st.one_of(strategy, strategy, strategy, plain_values)


texts = st.one_of(plain_strings, st.text(max_size=40))
counts = st.one_of(st.integers(min_value=0, max_value=10_000), plain_numbers, plain_strings, st.none(),
                   st.booleans())
arguments = st.one_of(st.sampled_from(('{"city": "Paris"}', "{}", '{"city":', '"Paris"}', "not json", "[1, 2]",
                                       "null", "", '{"a": {"b": [1, {"c": "\\u00e9"}]}}')),
                      texts, st.dictionaries(st.text(max_size=5), plain_values, max_size=3))


def _tool_call(index: st.SearchStrategy | None) -> st.SearchStrategy:
    function = st.fixed_dictionaries({}, optional={"name": odd(st.sampled_from(("get_weather", "f", ""))),
                                                   "arguments": odd(arguments)})
    optional = {"id": odd(st.sampled_from(("call_1", "call_2", ""))), "type": odd(st.just("function")),
                "function": odd(function)}
    if index is not None:
        optional["index"] = odd(index)
    return st.fixed_dictionaries({}, optional=optional)


content_parts = st.lists(odd(st.fixed_dictionaries({"type": odd(st.just("text")), "text": odd(texts)})), max_size=3)


def _said(tool_calls: st.SearchStrategy) -> st.SearchStrategy:
    """A message (or a delta): text, thinking, tool calls, each maybe missing or odd."""
    return st.fixed_dictionaries({}, optional={
        "role": odd(st.just("assistant")), "content": odd(st.one_of(texts, st.none(), content_parts)),
        "reasoning_content": odd(texts), "reasoning": odd(texts), "tool_calls": odd(st.lists(tool_calls, max_size=3)),
    })


usages = st.fixed_dictionaries({}, optional={
    "prompt_tokens": counts, "completion_tokens": counts, "total_tokens": counts,
    "prompt_tokens_details": odd(st.fixed_dictionaries({}, optional={"cached_tokens": counts})),
    "completion_tokens_details": odd(st.fixed_dictionaries({}, optional={"reasoning_tokens": counts})),
})
finish_reasons = odd(st.one_of(st.sampled_from(FINISH_REASONS), st.none()))
indexes = st.sampled_from((0, 0, 0, 1, 2))


def _choice(part: str, said: st.SearchStrategy) -> st.SearchStrategy:
    return st.fixed_dictionaries({}, optional={"index": odd(indexes), part: odd(said), "finish_reason": finish_reasons})


# A whole answer: `choices` is there (an answer without it is the adapter's 502, not the codec's business).
answers = st.fixed_dictionaries(
    {"choices": odd(st.lists(odd(_choice("message", _said(_tool_call(None)))), max_size=3))},
    optional={"id": odd(st.just("chatcmpl-1")), "object": odd(st.just("chat.completion")), "usage": odd(usages),
              "model": odd(st.just("gpt-4o-mini"))})

chunks = st.fixed_dictionaries(
    {"choices": odd(st.lists(odd(_choice("delta", _said(_tool_call(indexes)))), max_size=2))},
    optional={"id": odd(st.just("chatcmpl-1")), "object": odd(st.just("chat.completion.chunk")),
              "usage": odd(usages)})
# What else a stream may carry: events that are no JSON, errors, comments, other event names.
odd_frames = st.sampled_from((b"data: {not json\n\n", b"data: \n\n", b": keep-alive\n\n", b"event: ping\ndata: {}\n\n",
                              b'data: {"error": {"message": "upstream overloaded", "type": "server_error"}}\n\n',
                              b'data: {"error": "plain"}\n\n', b'data: {"error": {"message": 5}}\n\n',
                              b'data: {"error": {"message": null, "code": [1]}, "choices": []}\n\n',
                              b'data: {"error": []}\n\n', b"data: [1, 2]\n\n", b"data: null\n\n", b"\n\n"))


def _frame(chunk) -> bytes:
    return b"data: " + encode(to_json(chunk)) + b"\n\n"


@st.composite
def streams(draw) -> bytes:
    """An SSE body: chunks and odd frames in any order, ended with [DONE] or not."""
    frames = draw(st.lists(st.one_of(*[chunks.map(_frame)] * 4, odd_frames), max_size=8))
    done = draw(st.sampled_from((b"data: [DONE]\n\n", b"data: [DONE]\n\n", b"")))
    return b"".join(frames) + done


def whole(answer) -> bytes:
    return encode(to_json(answer))
