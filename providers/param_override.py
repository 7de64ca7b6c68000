"""A channel's `param_override`: edits to the JSON body sent upstream, in new-api's format so its configs move.

Two forms, as new-api reads them:
- a plain object (no "operations" key): its keys replace the body's top-level keys (new-api's legacy merge);
- {"operations": [{"path", "mode", "value", "from", "to", "keep_origin", "conditions": [...], "logic"}]}:
  each operation runs in order when its conditions hold (`logic` "OR", the default, or "AND"; a condition is
  {"path", "mode": full/prefix/suffix/contains/gt/gte/lt/lte, "value", "invert", "pass_missing_key"}).

Paths are gjson's dotted paths as new-api uses them: `messages.0.content`, `-1` for an array's last item
(`-1` past the end of an array appends, as sjson does), `*` for every item or key, `\\.` for a dot inside a
key. The modes are new-api's: set, delete, move, copy, append, prepend (strings joined, arrays extended,
objects merged), trim_prefix, trim_suffix, ensure_prefix, ensure_suffix, trim_space, to_lower, to_upper,
replace and regex_replace (`from` -> `to` inside a string), return_error (the request is refused with
`value`: a message, or {"message", "status_code", "code", "type", "skip_retry"}), and the older block
(refuse) and pass (stop here).

Unlike new-api, an operation whose path is missing or holds a value of another kind is skipped rather than
failing the request: a channel's override is written for the bodies it usually gets, and a request it does
not fit is served as it came. Everything that can be checked without a body is checked when the channel is
saved (`compile_override`), so a typo is the operator's 400, never a request's failure.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

PATH_MODES = frozenset({"set", "delete", "append", "prepend", "trim_prefix", "trim_suffix", "ensure_prefix",
                        "ensure_suffix", "trim_space", "to_lower", "to_upper", "replace", "regex_replace"})
FROM_TO_MODES = frozenset({"move", "copy"})
FLOW_MODES = frozenset({"return_error", "block", "pass"})
MODES = PATH_MODES | FROM_TO_MODES | FLOW_MODES
CONDITION_MODES = frozenset({"full", "prefix", "suffix", "contains", "gt", "gte", "lt", "lte"})
MAX_OPERATIONS = 200

_MISSING = object()


class OverrideInvalid(ValueError):
    """A param_override that cannot be applied; the message says which operation and why."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A return_error (or block) operation that fired: the request is refused with this."""

    message: str
    status: int = 400
    code: str = "param_override_refused"
    type: str = "invalid_request_error"
    retryable: bool = False


class Refused(Exception):  # noqa: N818 - it carries the refusal, it is not a fault
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


@dataclass(frozen=True, slots=True)
class Condition:
    path: tuple[str, ...]
    mode: str
    value: Any
    invert: bool = False
    pass_missing_key: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    mode: str
    path: tuple[str, ...] = ()
    source: tuple[str, ...] = ()  # `from` of move/copy
    target: tuple[str, ...] = ()  # `to` of move/copy
    value: Any = None
    keep_origin: bool = False
    old: str = ""  # `from` of replace
    new: str = ""  # `to` of replace
    pattern: re.Pattern | None = None  # regex_replace's `from`
    conditions: tuple[Condition, ...] = ()
    all_conditions: bool = False  # logic AND
    refusal: Refusal | None = None


@dataclass(frozen=True, slots=True)
class Override:
    merge: dict | None = None  # the plain-object form
    operations: tuple[Operation, ...] = field(default=())


def split_path(path: str) -> tuple[str, ...]:
    """gjson's path syntax, the parts new-api's configs use: dots between keys, `\\.` a literal dot."""
    parts, current, escaped = [], [], False
    for char in path:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return tuple(parts)


def as_json(value: Any) -> Any:
    """Python's JSON loader accepts both the stored object and new-api's JSON text."""
    if isinstance(value, str):
        try:
            return json.loads(value) if value.strip() else {}
        except (ValueError, RecursionError):
            raise OverrideInvalid("param_override is not valid JSON") from None
    return value


def compile_override(raw: Any) -> Override | None:
    """The override, checked: None when there is none; OverrideInvalid names what is wrong."""
    raw = as_json(raw)
    if raw in (None, {}):
        return None
    if not isinstance(raw, dict):
        raise OverrideInvalid("param_override must be a JSON object")
    if "operations" not in raw:
        return Override(merge=raw)
    operations = raw["operations"]
    if not isinstance(operations, list):
        raise OverrideInvalid("param_override.operations must be a list of operations")
    if len(operations) > MAX_OPERATIONS:
        raise OverrideInvalid(f"param_override may hold at most {MAX_OPERATIONS} operations")
    return Override(operations=tuple(_operation(number, op) for number, op in enumerate(operations, start=1)))


def _text(op: dict, name: str, where: str) -> str:
    value = op.get(name, "")
    if not isinstance(value, str):
        raise OverrideInvalid(f"{where}: {name} must be a string")
    return value


def _operation(number: int, op: Any) -> Operation:
    where = f"param_override operation {number}"
    if not isinstance(op, dict):
        raise OverrideInvalid(f"{where} must be an object")
    mode = op.get("mode")
    if not isinstance(mode, str) or mode.strip() not in MODES:
        raise OverrideInvalid(f"{where}: unknown mode {mode!r}; the modes are {', '.join(sorted(MODES))}")
    mode = mode.strip()
    logic = op.get("logic") or "OR"
    if not isinstance(logic, str) or logic.upper() not in ("AND", "OR"):
        raise OverrideInvalid(f"{where}: logic must be AND or OR")
    conditions = op.get("conditions") or []
    if not isinstance(conditions, list):
        raise OverrideInvalid(f"{where}: conditions must be a list")
    fields: dict[str, Any] = {
        "mode": mode, "keep_origin": bool(op.get("keep_origin")), "all_conditions": logic.upper() == "AND",
        "conditions": tuple(_condition(f"{where}, condition {n}", c) for n, c in enumerate(conditions, start=1)),
        "value": op.get("value"),
    }
    if mode in PATH_MODES:
        path = _text(op, "path", where)
        if not path:
            raise OverrideInvalid(f"{where}: {mode} needs a path")
        fields["path"] = split_path(path)
    if mode in FROM_TO_MODES:
        source, target = _text(op, "from", where), _text(op, "to", where)
        if not source or not target:
            raise OverrideInvalid(f"{where}: {mode} needs from and to")
        fields["source"], fields["target"] = split_path(source), split_path(target)
    if mode in ("append", "prepend", "set") and "value" not in op:
        raise OverrideInvalid(f"{where}: {mode} needs a value")
    if mode in ("trim_prefix", "trim_suffix", "ensure_prefix", "ensure_suffix"):
        if not isinstance(op.get("value"), str) or not op["value"]:
            raise OverrideInvalid(f"{where}: {mode} needs a string value")
    if mode == "replace":
        fields["old"], fields["new"] = _text(op, "from", where), _text(op, "to", where)
        if not fields["old"]:
            raise OverrideInvalid(f"{where}: replace needs from (the text to replace)")
    if mode == "regex_replace":
        try:
            fields["pattern"] = re.compile(_text(op, "from", where))
        except re.error as exc:
            raise OverrideInvalid(f"{where}: from is not a regular expression: {exc}") from None
        # Go's replacement syntax ($1, ${name}) in Python's (\g<1>, \g<name>).
        fields["new"] = re.sub(r"\$\{(\w+)\}|\$(\d+)", lambda m: rf"\g<{m[1] or m[2]}>",
                               _text(op, "to", where).replace("\\", "\\\\"))
    if mode in ("return_error", "block"):
        fields["refusal"] = _refusal(where, op.get("value") if mode == "return_error" else None)
    return Operation(**fields)


def _refusal(where: str, value: Any) -> Refusal:
    if value is None or value == "":
        return Refusal("The request was blocked by this channel's parameter override.")
    if isinstance(value, str):
        return Refusal(value)
    if not isinstance(value, dict) or not isinstance(value.get("message", ""), str):
        raise OverrideInvalid(f"{where}: return_error's value must be a message or an object with a message")
    status = value.get("status_code", 400)
    if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
        raise OverrideInvalid(f"{where}: status_code must be an HTTP error status (400-599)")
    return Refusal(message=value.get("message") or "The request was refused by this channel's parameter override.",
                   status=status, code=str(value.get("code") or "param_override_refused"),
                   type=str(value.get("type") or "invalid_request_error"),
                   retryable=not value.get("skip_retry", True))


def _condition(where: str, raw: Any) -> Condition:
    if not isinstance(raw, dict):
        raise OverrideInvalid(f"{where} must be an object")
    mode = str(raw.get("mode") or "").lower()
    if mode not in CONDITION_MODES:
        raise OverrideInvalid(f"{where}: unknown mode {raw.get('mode')!r}; the modes are "
                              f"{', '.join(sorted(CONDITION_MODES))}")
    path = raw.get("path")
    if not isinstance(path, str) or not path:
        raise OverrideInvalid(f"{where} needs a path")
    if mode in ("gt", "gte", "lt", "lte") and not _is_number(raw.get("value")):
        raise OverrideInvalid(f"{where}: {mode} compares with a number")
    return Condition(path=split_path(path), mode=mode, value=raw.get("value"), invert=bool(raw.get("invert")),
                     pass_missing_key=bool(raw.get("pass_missing_key")))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- applying ----------------------------------------------------------------------------------------------

def apply(override: Override, body: dict, *, in_place: bool = False) -> dict:
    """The body with the override applied: a new object unless `in_place` (a body the caller has just parsed
    for it), since a body may be reused on failover. Raises Refused for a return_error or block operation
    whose conditions hold."""
    if override.merge is not None:
        return {**body, **copy.deepcopy(override.merge)}
    if not in_place:
        body = copy.deepcopy(body)
    for op in override.operations:
        if not _holds(body, op):
            continue
        if op.refusal is not None:
            raise Refused(op.refusal)
        if op.mode == "pass":
            break
        if op.mode in FROM_TO_MODES:
            found = _get(body, _resolve_index(body, op.source))
            if found is _MISSING:
                continue
            _set(body, _resolve_index(body, op.target), copy.deepcopy(found))
            if op.mode == "move":
                _delete(body, _resolve_index(body, op.source))
            continue
        paths = list(_expand(body, op.path))
        if op.mode == "delete":
            paths.reverse()  # later indexes first, so earlier ones still point where they did
        for path in paths:
            _apply_at(body, op, path)
    return body


def _apply_at(body: dict, op: Operation, path: tuple) -> None:
    current = _get(body, path)
    mode = op.mode
    if mode == "set":
        if not (op.keep_origin and current is not _MISSING):
            _set(body, path, copy.deepcopy(op.value))
        return
    if current is _MISSING:
        return
    if mode == "delete":
        _delete(body, path)
    elif mode in ("append", "prepend"):
        joined = _joined(current, op.value, prepend=mode == "prepend", keep_origin=op.keep_origin)
        if joined is not _MISSING:
            _set(body, path, joined)
    elif isinstance(current, str):
        _set(body, path, _string_op(op, current))


def _joined(current: Any, value: Any, *, prepend: bool, keep_origin: bool) -> Any:
    if isinstance(current, list):
        added = copy.deepcopy(value) if isinstance(value, list) else [copy.deepcopy(value)]
        return added + current if prepend else current + added
    if isinstance(current, str):
        text = value if isinstance(value, str) else _go_text(value)
        return text + current if prepend else current + text
    if isinstance(current, dict) and isinstance(value, dict):
        merged = dict(current)
        for key, item in value.items():
            if not keep_origin or merged.get(key) is None:
                merged[key] = copy.deepcopy(item)
        return merged
    return _MISSING


def _go_text(value: Any) -> str:
    """A non-string value appended to a string, as new-api's fmt.Sprintf("%v") writes the common ones."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _string_op(op: Operation, text: str) -> str:
    mode, value = op.mode, op.value
    if mode == "trim_prefix":
        return text.removeprefix(value)
    if mode == "trim_suffix":
        return text.removesuffix(value)
    if mode == "ensure_prefix":
        return text if text.startswith(value) else value + text
    if mode == "ensure_suffix":
        return text if text.endswith(value) else text + value
    if mode == "trim_space":
        return text.strip()
    if mode == "to_lower":
        return text.lower()
    if mode == "to_upper":
        return text.upper()
    if mode == "replace":
        return text.replace(op.old, op.new)
    if mode == "regex_replace" and op.pattern is not None:
        return op.pattern.sub(op.new, text)
    return text


# --- conditions --------------------------------------------------------------------------------------------

def _holds(body: dict, op: Operation) -> bool:
    if not op.conditions:
        return True
    results = (_condition_holds(body, c) for c in op.conditions)
    return all(results) if op.all_conditions else any(results)


def _condition_holds(body: dict, condition: Condition) -> bool:
    found = _get(body, _resolve_index(body, condition.path))
    if found is _MISSING:
        return condition.pass_missing_key
    result = _compare(found, condition.value, condition.mode)
    return not result if condition.invert else result


def _compare(found: Any, wanted: Any, mode: str) -> bool:
    if mode == "full":
        if isinstance(found, bool) or isinstance(wanted, bool):
            return isinstance(found, bool) and isinstance(wanted, bool) and found == wanted
        if _is_number(found) and _is_number(wanted):
            return float(found) == float(wanted)
        return type(found) is type(wanted) and found == wanted
    if mode in ("prefix", "suffix", "contains"):
        text, part = _gjson_text(found), _gjson_text(wanted)
        return (text.startswith(part) if mode == "prefix" else text.endswith(part) if mode == "suffix"
                else part in text)
    if not (_is_number(found) and _is_number(wanted)):
        return False
    return {"gt": found > wanted, "gte": found >= wanted, "lt": found < wanted, "lte": found <= wanted}[mode]


def _gjson_text(value: Any) -> str:
    """gjson's Result.String(): a string as it is, anything else as its JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")) if value is not None else ""


# --- paths -------------------------------------------------------------------------------------------------

def _index(part: str) -> int | None:
    if part.lstrip("-").isdigit():
        return int(part)
    return None


def _resolve_index(body: Any, path: tuple[str, ...]) -> tuple:
    """Negative indexes counted from the end of the array they index, where it has that many items."""
    resolved: list = []
    node = body
    for part in path:
        index = _index(part)
        if isinstance(node, list) and index is not None and index < 0 and -len(node) <= index:
            part = str(len(node) + index)
        resolved.append(part)
        node = _child(node, part)
    return tuple(resolved)


def _expand(body: Any, path: tuple[str, ...]):
    """The concrete paths `path` names: `*` takes every item or key, negative indexes count from the end."""
    def walk(node: Any, at: int, done: tuple):
        if at == len(path):
            yield done
            return
        part = path[at]
        if part == "*":
            keys = range(len(node)) if isinstance(node, list) else list(node) if isinstance(node, dict) else ()
            for key in keys:
                yield from walk(_child(node, str(key)), at + 1, (*done, str(key)))
            return
        index = _index(part)
        if isinstance(node, list) and index is not None and index < 0 and -len(node) <= index:
            part = str(len(node) + index)
        yield from walk(_child(node, part), at + 1, (*done, part))

    yield from walk(body, 0, ())


def _child(node: Any, part: str) -> Any:
    if isinstance(node, dict):
        return node.get(part, _MISSING)
    if isinstance(node, list):
        index = _index(part)
        if index is not None and 0 <= index < len(node):
            return node[index]
    return _MISSING


def _get(body: Any, path: tuple) -> Any:
    node = body
    for part in path:
        node = _child(node, part)
        if node is _MISSING:
            return _MISSING
    return node


def _set(body: dict, path: tuple, value: Any) -> None:
    """sjson's set: missing objects are made on the way (an array where the next part is an index), an
    index at or past an array's end (or -1) appends; a scalar in the way is replaced."""
    node: Any = body
    for at, part in enumerate(path):
        last = at == len(path) - 1
        following = None if last else path[at + 1]
        fresh: Any = [] if following is not None and _index(following) is not None else {}
        if isinstance(node, list):
            index = _index(part)
            if index is None:
                return  # a key into an array: nothing sjson would do sensibly either
            if index < 0 or index >= len(node):
                if index >= len(node):
                    node.extend([None] * (index - len(node)))
                node.append(value if last else fresh)
                node = node[-1]
                continue
            if last:
                node[index] = value
            else:
                if not isinstance(node[index], (dict, list)):
                    node[index] = fresh
                node = node[index]
        else:
            if last:
                node[part] = value
            else:
                if not isinstance(node.get(part), (dict, list)):
                    node[part] = fresh
                node = node[part]


def _delete(body: dict, path: tuple) -> None:
    parent = _get(body, path[:-1]) if len(path) > 1 else body
    part = path[-1]
    if isinstance(parent, dict):
        parent.pop(part, None)
    elif isinstance(parent, list):
        index = _index(part)
        if index is not None and 0 <= index < len(parent):
            del parent[index]
