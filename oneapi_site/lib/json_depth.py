"""JSON from outside is checked for nesting depth before Python's json module parses it.

The json module recurses once per level, so a body of 100,000 `[` (200 kB) raised RecursionError, a 500
with a traceback, on /api/user/login and every other JSON route, signed in or not (issue 8). No request
or option of oneapi nests past a handful of levels; MAX_DEPTH leaves room to spare. The relay parses with
orjson, which refuses past 1024 levels itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from django.utils.translation import gettext

MAX_DEPTH = 64

# A string (whose brackets do not count) or one bracket.
_TOKENS = {bytes: re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]'),
           str: re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')}
_OPENS = {bytes: (b"[", b"{"), str: ("[", "{")}


class JSONTooDeep(json.JSONDecodeError):
    """A JSONDecodeError, so every caller's handler for bad JSON reports it with its line and column."""


def check_depth(doc: str | bytes, *, limit: int = MAX_DEPTH) -> None:
    """Raise JSONTooDeep at the first array or object nested more than `limit` deep."""
    kind = bytes if isinstance(doc, (bytes, bytearray)) else str
    square, curly = _OPENS[kind]
    if doc.count(square) + doc.count(curly) <= limit:
        return  # too few brackets to be too deep, whatever they are
    depth = 0
    for token in _TOKENS[kind].finditer(doc):
        text = token.group()
        if text in _OPENS[kind]:
            depth += 1
            if depth > limit:
                text_doc = doc.decode("utf-8", "replace") if kind is bytes else doc
                position = len(doc[:token.start()].decode("utf-8", "replace")) if kind is bytes else token.start()
                raise JSONTooDeep(gettext("nested deeper than %(limit)d levels") % {"limit": limit},
                                  text_doc, position)
        elif len(text) == 1:
            depth -= 1


def loads(doc: str | bytes, **kwargs: Any) -> Any:
    """json.loads for text from outside: too deep a document is a JSONDecodeError, not a RecursionError."""
    check_depth(doc)
    return json.loads(doc, **kwargs)


def _strings(data: Any) -> Iterator[str]:
    """Every string of a parsed document, keys included."""
    pending = [data]  # iterative, though check_depth already bounds the nesting
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _is_text(string: str) -> bool:
    try:
        string.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def holds_lone_surrogate(data: Any) -> bool:
    """Whether a parsed document holds a string (or key) with an unpaired UTF-16 surrogate: Python's json module
    reads "\\ud800" into one, yet it is no Unicode text, and no UTF-8 column or page can hold it."""
    return not all(_is_text(string) for string in _strings(data))


def holds_nul(data: Any) -> bool:
    """Whether a parsed document holds a string (or key) with a NUL character ("\\u0000"): JSON allows it, but
    PostgreSQL stores no NUL in text or jsonb and refuses the statement, so saving it or querying with it was a 500."""
    return any("\x00" in string for string in _strings(data))
