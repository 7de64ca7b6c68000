"""Hypothesis strategies for hostile request bodies.

A body is drawn as a Python value and written out by `to_json`, so it can hold what Python's own
encoder never writes: number literals past float and BIGINT range (`Raw`), repeated keys (`Pairs`),
lone surrogates written escaped or raw, nesting deeper than any parser's stack. Most bodies start
from a valid one for the route and change a few fields (so they get past the first checks and into
the code behind them); the rest are any JSON at all, or not JSON.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

# Strings long enough to cross column sizes and the request-size limits, yet quick to build.
HUGE_LENGTHS = (300, 5_000, 70_000, int(os.environ.get("FUZZ_HUGE", 1_100_000)))


@dataclass(frozen=True)
class Raw:
    """JSON text written as is: number literals Python would not write, or a ready-made deep nest."""

    text: str


@dataclass(frozen=True)
class Pairs:
    """A JSON object written key by key, so a key may come twice."""

    items: tuple[tuple[str, Any], ...]


def to_json(value: Any, *, ascii: bool = True) -> str:
    if isinstance(value, Raw):
        return value.text
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=ascii)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(to_json(v, ascii=ascii) for v in value) + "]"
    items = value.items if isinstance(value, Pairs) else value.items()
    return "{" + ",".join(f"{json.dumps(k, ensure_ascii=ascii)}:{to_json(v, ascii=ascii)}" for k, v in items) + "}"


def encode(text: str) -> bytes:
    """UTF-8; a lone surrogate written raw (not escaped) becomes bytes no UTF-8 decoder accepts."""
    return text.encode("utf-8", "surrogatepass")


# --- scalars ----------------------------------------------------------------------------------------
# Two tiers. "Plain" values are JSON every parser reads (odd, but valid), so a body made of them gets
# past the parser into the code behind it. The hostile tier adds what strict parsers refuse or choke
# on: NaN and Infinity literals, numbers past float range, lone surrogates, nesting past any stack.

PLAIN_NUMBERS = (
    "0", "-0", "-0.0", "0.0", "1", "-1", "0.5", "1.5", "1e20", "1E+2", "1e-7",
    "2147483647", "2147483648", "-2147483648", "-2147483649",
    "4294967295", "4294967296",
    "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
    "18446744073709551615", "18446744073709551616", "340282366920938463463374607431768211457",
    "1e308", "1.7976931348623157e308", "-1.7976931348623157e308", "5e-324", "1e-400", "1e-500000",
    "123456789012345678901234567890.5",
)
HOSTILE_NUMBERS = ("1e400", "-1e400", "1e500000", "1e999999", "-1e500000", "NaN", "-NaN", "Infinity", "-Infinity")
EDGE_NUMBERS = PLAIN_NUMBERS + HOSTILE_NUMBERS
# Long digit strings, built when drawn (a strategy holding them would print them in every report).
LONG_NUMBERS = (("1", "0", 400), ("9", "9", 5000), ("0.", "1", 1000), ("1e", "9", 30))

PLAIN_STRINGS = (
    "", " ", "\x00", "a\x00b", "\x00" * 8, "\t\r\n", "\r\nX-Injected: 1", "\u2028\u2029",
    "\u202eevil.exe", "\u200f\u05e9\u05dc\u05d5\u05dd", "\u0645\u0631\u062d\u0628\u0627", "\u200b\u200d",
    "👩‍👩‍👧‍👦", "🤖🦄🔥", "\U0010ffff", "\ufeff", "\ufffd", "e\u0301" * 5, "ｆｕｌｌ", "İı", "ß",
    "null", "true", "0", "-1", "1e500000", "NaN", "Infinity", "[]", "{}",
    "<script>alert(1)</script>", "' OR 1=1 --", "%s%s%n", "{{7*7}}", "${jndi:x}", "../../etc/passwd",
    "\\", '"', "sk-", "Bearer ", "gpt-4o-mini", "user", "assistant", "system", "tool", "text", "image_url",
    "data:image/png;base64,iVBORw0KGgo=", "data:,", "http://127.0.0.1:9/x.png", "file:///etc/passwd",
)
LONE_SURROGATES = ("\ud800", "\udfff", "a\ud83dz", "\udc00\ud800")
SPECIAL_STRINGS = PLAIN_STRINGS + LONE_SURROGATES


def _huge(char_and_length: tuple[str, int]) -> str:
    char, length = char_and_length
    return char * length


def long_number(spec: tuple[str, str, int]) -> str:
    head, digit, count = spec
    return head + digit * count


edge_numbers = st.one_of(st.sampled_from(PLAIN_NUMBERS), st.sampled_from(HOSTILE_NUMBERS),
                         st.sampled_from(LONG_NUMBERS).map(long_number))

_finite = st.one_of(st.integers(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=False, allow_infinity=False))
# The edges of the columns and types numbers land in: INT, BIGINT, unsigned, float's exact integers.
_bounds = st.sampled_from((0, 1, -1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**32, 2**53, 2**53 + 1,
                           2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, 10**18, 10**20, 10**30))
plain_numbers = st.one_of(st.sampled_from(PLAIN_NUMBERS).map(Raw), _bounds, _finite)
numbers = st.one_of(st.sampled_from(PLAIN_NUMBERS).map(Raw), _bounds, _finite,
                    st.one_of(st.sampled_from(HOSTILE_NUMBERS), st.sampled_from(LONG_NUMBERS).map(long_number))
                    .map(Raw))

plain_strings = st.one_of(
    st.sampled_from(PLAIN_STRINGS),
    st.text(max_size=30),
    st.tuples(st.sampled_from(("a", "é", "😀", "\x00", " ")), st.sampled_from(HUGE_LENGTHS)).map(_huge),
)
strings = st.one_of(
    plain_strings,
    st.sampled_from(LONE_SURROGATES),
    # Any code point, lone surrogates included (Hypothesis leaves them out of text() by default).
    st.text(alphabet=st.one_of(st.characters(), st.integers(min_value=0xD800, max_value=0xDFFF).map(chr)),
            max_size=12),
)

keys = st.one_of(st.sampled_from(("model", "messages", "content", "role", "type", "text", "input", "id",
                                  "name", "", "\x00", "__proto__")), st.text(max_size=10))
hostile_keys = st.one_of(keys, st.sampled_from(LONE_SURROGATES))


def _pairs(children, key_strategy):
    return st.lists(st.tuples(key_strategy, children), max_size=4).map(lambda items: Pairs(tuple(items)))


def _deep(depth: int, kind: str) -> Raw:
    if kind == "list":
        return Raw("[" * depth + "]" * depth)
    if kind == "object":
        return Raw('{"a":' * depth + "1" + "}" * depth)
    return Raw('[{"role":"user","content":' * depth + '"x"' + "}]" * depth)


def _values(scalar_strategy, key_strategy, depths):
    nested = st.recursive(scalar_strategy, lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(key_strategy, children, max_size=4),
        _pairs(children, key_strategy),
    ), max_leaves=10)
    deep = st.builds(_deep, st.sampled_from(depths), st.sampled_from(("list", "object", "messages")))
    # one_of picks each branch alike: a deep nest in about one value of eight.
    return st.one_of(*[nested] * 7, deep)


# Nesting a strict parser still reads (Python's and orjson's stop near 1000 levels) ...
plain_values = _values(st.one_of(st.none(), st.booleans(), plain_numbers, plain_strings), keys, (32, 200, 900))
# ... and past it, as deep as a body can be in the size limits.
json_values = _values(st.one_of(st.none(), st.booleans(), numbers, strings), hostile_keys,
                      (32, 200, 1_000, 5_000, 100_000))


# --- bodies from a valid one ------------------------------------------------------------------------

def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place inside a body a value can be swapped or removed."""
    found = []
    if isinstance(value, dict):
        for key, child in value.items():
            found.append(prefix + (key,))
            found += _paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.append(prefix + (index,))
            found += _paths(child, prefix + (index,))
    return found


def _container(body: Any, path: tuple) -> Any:
    for step in path[:-1]:
        body = body[step]
    return body


@st.composite
def mutated(draw, base: dict, likely: dict[str, st.SearchStrategy] | None = None, *,
            values: st.SearchStrategy = json_values) -> Any:
    """`base` with a few changes: a value swapped for another of any type (or a likely one for that
    field), a field removed, an unknown field added, a key repeated."""
    likely = likely or {}
    body = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        paths = _paths(body) if isinstance(body, dict) else []
        op = draw(st.sampled_from(("swap", "swap", "likely", "drop", "extra")))
        if op == "likely" and likely:
            field = draw(st.sampled_from(sorted(likely)))
            body[field] = draw(likely[field])
        elif op in ("swap", "likely") and paths:
            path = draw(st.sampled_from(paths))
            _container(body, path)[path[-1]] = draw(values)
        elif op == "drop" and paths:
            path = draw(st.sampled_from(paths))
            del _container(body, path)[path[-1]]
        else:
            body[draw(keys)] = draw(values)
    if draw(st.integers(min_value=0, max_value=9)) == 0:  # a repeated key: which one wins?
        items = list(body.items())
        if items:
            key, _ = draw(st.sampled_from(items))
            items.append((key, draw(values)))
        return Pairs(tuple(items))
    return body


MALFORMED = (
    b"", b" ", b"\x00", b"{", b"}", b"[", b'{"model":', b'{"model": "gpt-4o-mini",}', b"{'model': 'x'}",
    b"nul", b"undefined", b'{"a":1}{"b":2}', b'{"a":1} trailing', b"\xff\xfe{\x00}\x00", b"\xef\xbb\xbf{}",
    b'{"a":"\\ud800"}', b'{"a":"\\u00"}', b'{"a":"\\x41"}', b'{"a":01}', b'{"a":1.}', b'{"a":.5}', b'{"a":+1}',
    b'{"a":0x10}', b'{"a":1e}', b'{"a":--1}', b'{"a":"\x01"}', b'{"a"\x00:1}', b"\xc3\x28", b"\xed\xa0\x80",
    b"\x80\x81\x82", b"[" * 300, b"{}" * 10,
)


@st.composite
def malformed(draw, base: dict) -> bytes:
    """Not JSON, or not the JSON that was meant: cut short, bytes that are no UTF-8, JavaScript-isms."""
    choice = draw(st.integers(min_value=0, max_value=2))
    if choice == 0:
        return draw(st.sampled_from(MALFORMED))
    if choice == 1:
        text = encode(to_json(base))
        return text[:draw(st.integers(min_value=0, max_value=max(0, len(text) - 1)))]
    return draw(st.binary(max_size=64))


class Body:
    """Bytes and the Content-Type they are sent with."""

    __slots__ = ("data", "content_type")

    def __init__(self, data: bytes, content_type: str):
        self.data = data
        self.content_type = content_type

    def __repr__(self) -> str:  # what a failing example prints: short enough to read
        shown = self.data if len(self.data) <= 600 else self.data[:300] + b"..." + self.data[-100:]
        return f"Body({shown!r}, {len(self.data)} bytes, content_type={self.content_type!r})"


JSON_TYPES = ("application/json",) * 6 + (
    "application/json; charset=utf-8", "application/json; charset=utf-16", "application/json; charset=latin-1",
    "application/json; charset=nonsense", "APPLICATION/JSON", "application/vnd.api+json", "text/json",
)
OTHER_TYPES = (
    "", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
    "multipart/form-data; boundary=xyz", "application/octet-stream", "application/xml", "*/*", ";;;",
    "application/json\r\nX-Evil: 1", "\u00e9/\u00e9",
)


@st.composite
def bodies(draw, base: dict, likely: dict[str, st.SearchStrategy] | None = None, *,
           content_types: tuple[str, ...] = JSON_TYPES + OTHER_TYPES) -> Body:
    """A request body for a route whose valid body looks like `base`."""
    kind = draw(st.integers(min_value=0, max_value=9))
    if kind <= 3:
        value = draw(mutated(base, likely, values=plain_values))
    elif kind <= 5:
        value = draw(mutated(base, likely))
    elif kind <= 7:
        value = draw(json_values)
    else:
        return Body(draw(malformed(base)), draw(st.sampled_from(content_types)))
    text = to_json(value, ascii=draw(st.booleans()))
    if draw(st.integers(min_value=0, max_value=19)) == 0:
        text = draw(st.sampled_from(("\ufeff", " \n\t", "\x00"))) + text
    return Body(encode(text), draw(st.sampled_from(content_types)))


def json_only(strategy: st.SearchStrategy[Body]) -> st.SearchStrategy[Body]:
    """The same bodies, all declared application/json (to reach the parser rather than a 415)."""
    return strategy.map(lambda body: Body(body.data, "application/json"))


# --- query strings and forms ------------------------------------------------------------------------

# Form fields and query parameters are text; numbers at the edges are the likeliest trouble, so twice.
param_values = st.one_of(
    edge_numbers,
    edge_numbers,
    strings.filter(lambda s: len(s) < 100_000),
    st.integers().map(str),
    st.sampled_from(("2024-01-31", "2024-01-31T12:00", "9999-12-31T23:59", "0001-01-01", "0000-00-00",
                     "2024-02-30", "10000-01-01", "-1", "1_000", " 1 ", "١٢٣", "²", "0x10", "1e3")),
)
