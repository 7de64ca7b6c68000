"""Raw OpenAI chat answers for a mock channel to serve: the shapes the mock cannot script itself
(tool calls, reasoning, a whole answer to a streamed request)."""

from __future__ import annotations

import orjson


def _usage(usage: tuple[int, int]) -> dict:
    return {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}


def chat_answer(message: dict, finish: str, usage: tuple[int, int] = (20, 9), model: str = "gpt-4o-mini") -> bytes:
    """A whole chat completion whose one choice is `message`."""
    return orjson.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
                         "choices": [{"index": 0, "message": {"role": "assistant", **message},
                                      "finish_reason": finish}],
                         "usage": _usage(usage)})


def chat_stream(*deltas: dict, finish: str, usage: tuple[int, int] = (20, 9), model: str = "gpt-4o-mini") -> bytes:
    """A streamed chat completion: one chunk per delta, then the finish, the usage chunk and [DONE]."""
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model}
    frames = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    frames.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    frames.append({**base, "choices": [], "usage": _usage(usage)})
    return b"".join(b"data: " + orjson.dumps(f) + b"\n\n" for f in frames) + b"data: [DONE]\n\n"


# Scripts several client protocols' tests replay: each checks what its own SDK makes of the same chat answer.
WEATHER_IN_PARIS = chat_answer({"content": None, "tool_calls": [
    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
    "tool_calls")
THINKING_THEN_TWO_CALLS = chat_stream(
    {"role": "assistant", "reasoning_content": "Paris, "}, {"reasoning_content": "then Rome."},
    {"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"ci'}}]},
    {"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Paris"}'}}]},
    {"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}]},
    finish="tool_calls")
