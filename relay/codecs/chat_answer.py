"""The relay's chat answer as a codec reads it: anything in it may be what a vendor sent, in any type.

An OpenAI-protocol channel's answer reaches a codec as the vendor wrote it, checked only for having
`choices`: a count may be a string, a choice may have no message, a tool call's arguments may not be JSON.
These readers take what is in the expected shape and let the rest count as absent, so an odd answer is
still translated into a sane one instead of failing after the client's headers have gone out.
"""

from __future__ import annotations

from typing import Any

import orjson

from providers.adapters.openai_shapes import count

# Where OpenAI-shaped answers carry the model's thinking (as providers/adapters/openai.py reads them).
REASONING_FIELDS = ("reasoning_content", "reasoning")


def text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def items(value: Any) -> list:
    return value if isinstance(value, list) else []


def obj(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def first_choice(answer: Any) -> dict:
    """A whole answer's choice; a client of these protocols gets one answer, so with several the first."""
    return next((choice for choice in items(obj(answer).get("choices")) if isinstance(choice, dict)), {})


def is_first(choice: Any) -> bool:
    """Whether a streamed choice belongs to the one answer: chunks of other choices (n > 1) do not. A vendor
    that numbers its only choice oddly (null, "0") still has it read."""
    if not isinstance(choice, dict):
        return False
    index = choice.get("index", 0)
    return index == 0 or not isinstance(index, int) or isinstance(index, bool)


def content_text(content: Any) -> str:
    """A message's text: its string, or the text of its parts when a vendor answers in content parts."""
    if isinstance(content, list):
        return "".join(text(part.get("text")) for part in content if isinstance(part, dict))
    return text(content)


def reasoning(message: dict) -> str:
    for name in REASONING_FIELDS:
        value = message.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def finish_reason(choice: dict) -> str | None:
    reason = choice.get("finish_reason")
    return reason if isinstance(reason, str) and reason else None


def tool_calls(message: dict) -> list[dict]:
    return [call for call in items(message.get("tool_calls")) if isinstance(call, dict)]


def call_index(call: dict) -> int:
    """A streamed tool call's position among the answer's calls (0 when the vendor gives none usable)."""
    index = call.get("index", 0)
    return index if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < 2**31 else 0


def arguments_object(arguments: Any) -> dict:
    """A tool call's arguments as the object Anthropic's `input` and Gemini's `args` are: a vendor's broken JSON,
    or JSON that is no object or too deep to write back out, is {}."""
    if isinstance(arguments, str):
        try:
            arguments = orjson.loads(arguments or "{}")
        except orjson.JSONDecodeError:
            return {}
    if not isinstance(arguments, dict):
        return {}
    try:
        orjson.dumps(arguments)
    except orjson.JSONEncodeError:
        return {}
    return arguments


def tokens(where: Any, name: str) -> int:
    """A token count as billing reads it (providers/adapters/openai_shapes.count): junk counts nothing."""
    return count(where.get(name)) if isinstance(where, dict) else 0


def as_chunk(answer: Any) -> dict:
    """A whole answer as the one chunk that streams it, for a client that asked for a stream."""
    choice = first_choice(answer)
    message = obj(choice.get("message"))
    delta = {name: message[name] for name in REASONING_FIELDS if name in message}
    delta["content"] = content_text(message.get("content"))
    delta["tool_calls"] = [{**call, "index": position} for position, call in enumerate(tool_calls(message))]
    chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason(choice)}]}
    if isinstance(obj(answer).get("usage"), dict):
        chunk["usage"] = answer["usage"]
    return chunk
