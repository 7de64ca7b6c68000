"""Offline token counting, for pre-consumption and when an upstream gives no usage.

bpe-openai ships the cl100k and o200k vocabularies inside the wheel, so nothing
is downloaded at run time (tiktoken fetches its files on first use).

It lives here, below the apps, because the relay is not its only user: the adapters count with it too (a
vendor that reports no usage for embeddings), and they may not import the relay.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson

_O200K_PREFIXES = ("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4")


@lru_cache(maxsize=2)
def _encoding(name: str):
    # Imported on first use: the vocabularies take 60-110 MB, and a relay whose vendors
    # report usage (nearly all of them) never needs them.
    import bpe_openai

    return bpe_openai.get_encoding(name)


def encoding_for(model: str):
    return _encoding("o200k_base" if model.startswith(_O200K_PREFIXES) else "cl100k_base")


# bpe-openai refuses a text of a million characters or more, and one that makes more than 200,000
# tokens; a character makes at most 4 tokens (one per UTF-8 byte), so 40,000 characters stay under both.
# Cutting a text there miscounts a token or two at each cut, which an estimate can afford.
SLICE = 40_000


def _count(enc, text: str) -> int:
    # disallowed_special=(): "<|endoftext|>" in a client's text is text to count, not an error.
    return sum(len(enc.encode(text[start:start + SLICE], disallowed_special=()))
               for start in range(0, len(text), SLICE))


def count_text(text: str, model: str) -> int:
    if not text:
        return 0
    return _count(encoding_for(model), text)


def _content_text(content: Any) -> tuple[str, int]:
    """Text of a message's content, and the flat token cost of its images."""
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        return "", 0
    texts: list[str] = []
    images = 0
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif part.get("type") == "image_url":
            detail = (part.get("image_url") or {}).get("detail") if isinstance(part.get("image_url"), dict) else None
            # Without fetching the image its tiles are unknown: OpenAI's low-detail cost, or one high tile.
            images += 85 if detail == "low" else 255
    return "\n".join(texts), images


def count_messages(messages: Any, model: str) -> int:
    """OpenAI's chat accounting as one-api applies it: 3 per message, 1 per name, 3 to prime the reply."""
    if not isinstance(messages, list):
        return 0
    enc = encoding_for(model)
    total = 3
    for message in messages:
        if not isinstance(message, dict):
            continue
        total += 3
        text, images = _content_text(message.get("content"))
        total += images
        if text:
            total += _count(enc, text)
        role = message.get("role")
        if isinstance(role, str):
            total += _count(enc, role)
        name = message.get("name")
        if isinstance(name, str):
            total += 1 + _count(enc, name)
        calls = message.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                total += _count(enc, str(fn.get("name", "")) + str(fn.get("arguments", "")))
    return total


def count_input(value: Any, model: str) -> int:
    """A completions prompt or an embeddings input: a string, a list of strings, or token ids.

    Walked without recursion: the client's lists may nest as deep as the JSON parser allows (1024 levels),
    past Python's recursion limit."""
    total = 0
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            total += count_text(item, model)
        elif isinstance(item, list):
            if item and all(isinstance(v, int) for v in item):
                total += len(item)
            else:
                pending.extend(item)
    return total


def count_request(mode: str, body: dict, model: str) -> int:
    """The prompt tokens of a client's request, counted here when the vendor reports none."""
    if mode == "chat":
        return count_messages(body.get("messages"), model)
    if mode == "completions":
        return count_input(body.get("prompt"), model)
    if mode == "rerank":
        documents = [d if isinstance(d, str) else str((d or {}).get("text", "")) for d in body.get("documents", [])]
        return count_input([body.get("query", ""), *documents], model)
    if mode in ("embeddings", "moderations"):
        return count_input(body.get("input"), model)
    return 0


def count_prompt(body: dict, model: str) -> int:
    """A chat request's prompt with its tools' definitions, which the vendor counts as prompt too (a token
    count answered here; billing counts the messages only, as one-api does)."""
    total = count_messages(body.get("messages"), model)
    tools = body.get("tools")
    if tools:
        total += count_text(orjson.dumps(tools).decode(), model)
    return total
