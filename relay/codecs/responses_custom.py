"""A custom (free-form) tool's input, read back from the arguments of the chat function the bridge made of it.

relay/codecs/responses_request.py gives a custom tool to chat as a function of one string, `{"input": "..."}`.
The answer's custom_tool_call carries that string; a stream carries it as it arrives, so a client such as Codex
sees a long patch being written rather than all at once at the end.
"""

from __future__ import annotations

import json
import re

import orjson

from relay.codecs.responses_request import CUSTOM_INPUT

# Where the string begins in arguments written as asked (JSON allows whitespace around the tokens).
OPENING = re.compile(r'\s*\{\s*"' + CUSTOM_INPUT + r'"\s*:\s*"')
HEX = frozenset("0123456789abcdefABCDEF")


def custom_input(arguments: str) -> str:
    """The input in whole arguments; arguments that are not the one-string object (a model that wrote the
    input bare) are the input as they are."""
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        try:  # models write raw newlines into JSON strings; Python's lenient reader takes them
            value = json.loads(arguments, strict=False)
        except ValueError:
            return arguments
    if isinstance(value, dict) and isinstance(value.get(CUSTOM_INPUT), str):
        return value[CUSTOM_INPUT]
    return value if isinstance(value, str) else arguments


class StreamedInput:
    """The input of a custom tool call decoded as its arguments arrive in pieces cut anywhere (mid-escape too).

    Each piece is scanned once: only the text up to the last whole escape is decoded, the rest waits for the
    next piece. Arguments that do not open as `{"input": "` are only read when whole (`custom_input`)."""

    __slots__ = ("raw", "start", "done", "ended", "bare", "sent")

    def __init__(self) -> None:
        self.raw = ""
        self.start = -1  # where the string's text begins in `raw`, once its opening has arrived
        self.done = 0  # how far into `raw` the text is decoded
        self.ended = False  # the string's closing quote has arrived
        self.bare = False  # not the one-string object: nothing is decoded before the end
        self.sent = ""  # what has been decoded so far

    def feed(self, piece: str) -> str:
        """The input's text that `piece` completes ("" while it waits for more)."""
        self.raw += piece
        if self.bare or self.ended:
            return ""
        if self.start < 0:
            opening = OPENING.match(self.raw)
            if opening is None:
                stripped = self.raw.lstrip()
                # Still the beginning of `{"input": "`? Whitespace between its tokens is not waited for.
                self.bare = not f'{{"{CUSTOM_INPUT}":"'.startswith(stripped.replace(" ", "").replace("\n", ""))
                return ""
            self.start = self.done = opening.end()
        cut = self._cut()
        if cut == self.done:
            return ""
        try:  # lenient, as custom_input is: a raw newline in the string is taken as written
            text = json.loads(f'"{self.raw[self.done:cut]}"', strict=False)
        except ValueError:  # not a JSON string after all: read when whole
            self.bare = True
            return ""
        self.done = cut
        self.sent += text
        return text

    def _cut(self) -> int:
        """Where the decodable text ends: before an escape still cut short, or at the closing quote."""
        raw, index, end = self.raw, self.done, len(self.raw)
        while index < end:
            char = raw[index]
            if char == '"':
                self.ended = True
                return index
            if char != "\\":
                index += 1
                continue
            if index + 1 >= end:
                return index
            if raw[index + 1] != "u":
                index += 2
                continue
            if index + 6 > end or not HEX.issuperset(raw[index + 2:index + 6]):
                return index
            code = int(raw[index + 2:index + 6], 16)
            step = 12 if 0xD800 <= code <= 0xDBFF else 6  # a high surrogate decodes only with its low half
            if index + step > end:
                return index
            index += step
        return index

    def finish(self) -> tuple[str, str]:
        """The whole input, and what of it was not yet sent."""
        whole = custom_input(self.raw)
        return whole, whole[len(self.sent):] if whole.startswith(self.sent) else ""
